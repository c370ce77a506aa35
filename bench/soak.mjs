// A soak of everything that ends long runs, in one run on the demo data (docs/reliability.md, "Soak"):
// N kill -9s at random moments, each followed by `srgan start --resume`; a NaN burst that rolls the run
// back; a full disk; another process holding runs.db's write lock for 30 s. Prints, per incident, the
// step it hit, the steps lost and the seconds until training went on; then integrity_check and the
// duplicate or missing metric rows of the run; last, one JSON line.
//
//   npm run bench -- soak [--kills 5] [--seed 1] [--lock-seconds 30] [--preset espcn-x2-fast]
//
// The full disk needs $SRGAN_HOME on a small tmpfs, which needs root (mount); elsewhere that incident
// is skipped and says why.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const { hasExited } = await import('../dist/util/lock-file.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const KILLS = Number(opt('kills', 5));
const LOCK_S = Number(opt('lock-seconds', 30));
const PRESET = opt('preset', 'espcn-x2-fast');
let seed = Number(opt('seed', 1));
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

const bin = path.join(here, '../bin/srgan.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-soak-'));
const home = path.join(root, 'home');
fs.mkdirSync(home);
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=384m', 'tmpfs', home], { encoding: 'utf8' });
const tmpfs = mounted.status === 0;
if (!tmpfs)
  console.error(`no tmpfs for SRGAN_HOME (${(mounted.stderr || String(mounted.error)).trim()}): the full-disk incident is skipped`);
const env = { ...process.env, SRGAN_HOME: home };
const cli = (cmd, extraEnv = {}) => {
  const r = spawnSync(process.execPath, [bin, ...cmd, '--json'], { env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`srgan ${cmd.join(' ')}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
};
const status = () => cli(['status']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 120_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}
const query = (sql, ...a) => {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare(sql).all(...a);
  } finally {
    db.close();
  }
};

const cfgFile = path.join(root, 'run.json');
fs.writeFileSync(
  cfgFile,
  JSON.stringify({
    preset: PRESET,
    checkpointEvery: 20,
    checkpointMinutes: 0,
    checkpointKeep: 3,
    previewEvery: 25,
    valEvery: 200,
    minFreeMiB: 8,
  }),
);
const incidents = [];
const t0 = performance.now();
let info = cli(['start', '--config', cfgFile]);
const runId = info.runId;
console.log(`run ${runId} (${PRESET}) on the demo data; SRGAN_HOME ${home}${tmpfs ? ' (tmpfs, 384 MiB)' : ''}`);

/** Steps the run is at now. */
const stepNow = () => status().step;

// ---- kill -9 at random moments, each followed by a resume -----------------------------------------
for (let k = 0; k < KILLS; k++) {
  await until('training', () => stepNow() >= 5);
  await sleep(1500 + rand() * 5000);
  const at = stepNow();
  process.kill(info.pid, 'SIGKILL');
  await until('the daemon to be gone', () => hasExited(info.pid), 30_000);
  const t = performance.now();
  info = cli(['start', '--resume', runId]);
  const from = query("SELECT data FROM events WHERE run_id = ? AND kind = 'resume_run' ORDER BY id DESC LIMIT 1", runId)[0];
  const resumedAt = JSON.parse(from.data).step;
  await until('training past the kill', () => stepNow() > resumedAt);
  incidents.push({ kind: 'kill -9', step: at, lost: Math.max(0, at - resumedAt), recoverS: (performance.now() - t) / 1000 });
}

// ---- a NaN burst: maxBadSteps (3) in a row roll the run back once -----------------------------------
{
  const at = stepNow() + 40;
  process.kill(info.pid, 'SIGTERM'); // a clean stop, to restart with the fault armed
  await until('the daemon to stop', () => hasExited(info.pid), 60_000);
  info = cli(['start', '--resume', runId], { SRGAN_FAULT_NAN_AT_STEP: String(at), SRGAN_FAULT_NAN_STEPS: '3' });
  const t = await until('the rollback', () => {
    const r = query("SELECT data FROM events WHERE run_id = ? AND kind = 'rollback' ORDER BY id DESC LIMIT 1", runId)[0];
    return r ? { ...JSON.parse(r.data), time: performance.now() } : null;
  });
  await until('training past the bad steps', () => stepNow() > at + 3);
  incidents.push({
    kind: 'NaN × 3',
    step: at + 2,
    lost: at + 2 - t.step,
    recoverS: (performance.now() - t.time) / 1000,
    lrScale: t.lrScale,
  });
}

// ---- a full disk -------------------------------------------------------------------------------------
if (tmpfs) {
  const filler = path.join(home, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(1 << 20, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch {
    /* ENOSPC: full */
  } finally {
    fs.closeSync(fd);
  }
  const paused = await until(
    'the pause for the disk',
    () => {
      const s = status();
      return s.state === 'paused' && s.pauseReason ? s : null;
    },
    60_000,
  );
  const t = performance.now();
  fs.rmSync(filler);
  await until(
    'training again',
    () => {
      const s = status();
      return s.state === 'training' && s.step > paused.step;
    },
    60_000,
  );
  incidents.push({ kind: 'disk full', step: paused.step, lost: 0, recoverS: (performance.now() - t) / 1000, reason: paused.pauseReason });
}

// ---- another process holds runs.db's write lock --------------------------------------------------------
{
  const holder = path.join(root, 'holder.cjs');
  fs.writeFileSync(
    holder,
    `const D = require(${JSON.stringify(require.resolve('better-sqlite3'))}); const db = new D(process.argv[2]); db.exec('BEGIN IMMEDIATE');
     process.send('locked'); setTimeout(() => { db.exec('COMMIT'); db.close(); process.exit(0); }, Number(process.argv[3]));`,
  );
  const at = stepNow();
  const child = fork(holder, [path.join(home, 'runs.db'), String(LOCK_S * 1000)]);
  await new Promise((r) => child.once('message', r));
  await new Promise((r) => child.once('exit', r));
  const released = performance.now();
  const during = stepNow() - at;
  const before = query("SELECT count(*) AS n FROM events WHERE run_id = ? AND kind = 'storage'", runId)[0].n;
  await until(
    'the kept writes in runs.db',
    () => query("SELECT count(*) AS n FROM events WHERE run_id = ? AND kind = 'storage'", runId)[0].n > before,
    60_000,
  );
  incidents.push({
    kind: `db locked ${LOCK_S} s`,
    step: at,
    lost: 0,
    recoverS: (performance.now() - released) / 1000,
    stepsWhileLocked: during,
  });
}

// ---- the end: stop, and check the database -------------------------------------------------------------
cli(['stop']);
const db = new Database(path.join(home, 'runs.db'), { readonly: true });
const integrity = db.pragma('integrity_check', { simple: true });
const last = db.prepare('SELECT last_step FROM runs WHERE id = ?').pluck().get(runId);
const rows = db
  .prepare("SELECT count(*) AS n, count(DISTINCT step) AS d, min(step) AS lo FROM metrics WHERE run_id = ? AND key = 'g_loss'")
  .get(runId);
db.close();
const duplicates = rows.n - rows.d;
const missing = last - rows.d;
if (tmpfs) spawnSync('umount', ['-l', home]);
fs.rmSync(root, { recursive: true, force: true });

console.log('');
console.log(['incident', 'at step', 'steps lost', 'recover s'].map((h, i) => (i === 0 ? h.padEnd(16) : h.padStart(11))).join(''));
for (const x of incidents) {
  console.log([x.kind.padEnd(16), String(x.step).padStart(11), String(x.lost).padStart(11), x.recoverS.toFixed(1).padStart(11)].join(''));
}
console.log(
  `\nrun of ${last} steps in ${((performance.now() - t0) / 1000).toFixed(0)} s: integrity_check ${integrity}; g_loss rows ${rows.n} for ${last} steps ` +
    `(${duplicates} duplicate, ${missing} missing)`,
);
console.log(JSON.stringify({ bench: 'soak', preset: PRESET, tmpfs, incidents, lastStep: last, integrity, duplicates, missing }));
process.exit(integrity === 'ok' && duplicates === 0 && missing === 0 ? 0 : 1);
