// Checkpoints and resume through the real CLI and daemon: a run stopped and resumed computes exactly
// what an uninterrupted run computes, on the wasm rung and on wasm-native (the one users get where
// oneDNN is installed); after kill -9 it continues from the last checkpoint with an intact database
// that holds each step once; damaged and half-written checkpoints are passed over with an event; a
// trainer that keeps dying is restarted at most 3 times.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { DAEMON_SERIES_KEYS } from '../../src/daemon/trainer-output.js';
import { tempDir } from '../support/tmp.js';
import { hasExited } from '../../src/util/lock-file.js';
import { listCheckpoints, openDb, recordCheckpoint, type CheckpointRow } from '../../src/store/db.js';
import { writeCheckpoint } from '../../src/models/train/checkpoint.js';
import { loadNativeKernels } from '../../src/models/backend/native/kernels.js';

// .ci/run builds the oneDNN addon and sets this: there the wasm-native rung must be tested, not skipped.
const REQUIRE_NATIVE = process.env['SRGAN_REQUIRE_NATIVE'] === '1';
const native = loadNativeKernels();

const tmp = tempDir('srgan-resume-');
const photos = path.join(tmp.dir, 'photos');
const configFile = path.join(tmp.dir, 'tiny.json');
const pids: number[] = [];

// Small enough that a step takes milliseconds on the wasm backend (tfjs' cpu backend is ~10× slower here); 2 loader threads so frames really
// arrive out of order; validation on, so val_psnr and the best checkpoint are exercised.
const TINY = {
  backend: 'wasm',
  dataDir: photos,
  patchSize: 32,
  batchSize: 2,
  generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
  discriminator: { kind: 'patch', mid: 4 },
  loaderWorkers: 2,
  patchesPerImage: 2,
  previewEvery: 0,
  checkpointEvery: 4,
  checkpointMinutes: 0,
  checkpointKeep: 2,
  valEvery: 4,
  valImages: 2,
  seed: 3,
};

beforeAll(async () => {
  fs.mkdirSync(photos, { recursive: true });
  for (let i = 0; i < 10; i++) {
    const w = 80 + i * 4;
    const data = Buffer.alloc(w * 72 * 3);
    for (let p = 0; p < data.length; p++) data[p] = (Math.sin(p * 0.01 * (i + 1)) * 120 + 128 + ((p / 240) | 0) * (i % 3)) & 255;
    await sharp(data, { raw: { width: w, height: 72, channels: 3 } })
      .png()
      .toFile(path.join(photos, `p${i}.png`));
  }
  fs.writeFileSync(configFile, JSON.stringify(TINY));
});

afterEach(() => {
  for (const pid of pids.splice(0)) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
});

interface Info {
  pid: number;
  runId: string;
}

function start(home: string, args: string[], faults: Record<string, string> = {}): Info {
  // The daemon inherits the environment of `srgan start`: fault-injection variables reach it this way.
  Object.assign(process.env, faults);
  try {
    const info = srganJson<Info>(home, ['start', ...args]);
    pids.push(info.pid);
    return info;
  } finally {
    for (const k of Object.keys(faults)) delete process.env[k];
  }
}

async function waitExit(pid: number): Promise<void> {
  await waitFor(`daemon ${pid} to exit`, () => hasExited(pid), 120_000, 100);
}

function query<T>(home: string, sql: string, ...args: unknown[]): T[] {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare(sql).all(...args) as T[];
  } finally {
    db.close();
  }
}

/** step → value of `key`, from the runs database; fails when a step is there more than once. */
function curve(home: string, runId: string, key: string): Map<number, number> {
  const rows = query<{ step: number; value: number }>(
    home,
    'SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid',
    runId,
    key,
  );
  const m = new Map(rows.map((r) => [r.step, r.value]));
  expect(
    rows.map((r) => r.step),
    `${key}: one row per step`,
  ).toEqual([...m.keys()]);
  return m;
}

/** Every (key, step) of a run logged more than once; a resumed run must log each step once. */
function repeated(home: string, runId: string): { key: string; step: number; n: number }[] {
  return query(
    home,
    'SELECT key, step, count(*) AS n FROM metrics WHERE run_id = ? GROUP BY key, step HAVING n > 1 ORDER BY key, step',
    runId,
  );
}

/**
 * All of a run's training metric rows, by key then step (repeats included, in the order written); not
 * the daemon's measurements of the machine (rates, memory), which no two runs share.
 */
function metricRows(home: string, runId: string): { key: string; step: number; value: number }[] {
  return query<{ key: string; step: number; value: number }>(
    home,
    'SELECT key, step, value FROM metrics WHERE run_id = ? ORDER BY key, step, rowid',
    runId,
  ).filter((r) => !(DAEMON_SERIES_KEYS as readonly string[]).includes(r.key));
}

const stepName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** The checkpoint folders of a run on disk, by step. */
function onDisk(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => /^step-\d+$/.test(n))
    .sort();
}

/**
 * The folders retention must have left, worked out from the checkpoints table (every checkpoint the
 * run wrote, deleted or not): the newest `keep`, and the one with the highest validation gain (the
 * newer on a tie). A folder written twice (a manual checkpoint at a step just checkpointed) holds the
 * later write, so its later row speaks for it.
 */
function retained(home: string, runId: string, keep: number): string[] {
  const db = openDb(path.join(home, 'runs.db'), { readonly: true });
  const rows = listCheckpoints(db, runId, { includeDeleted: true });
  db.close();
  const folders = [...new Map(rows.map((r) => [r.path, r])).values()].sort((a, b) => a.step - b.step);
  const best = folders.filter((c) => c.gain !== null).sort((a, b) => b.gain! - a.gain! || b.step - a.step)[0] as CheckpointRow | undefined;
  return [...new Set([...folders.slice(-keep), ...(best ? [best] : [])].map((c) => path.basename(c.path)))].sort();
}

function events(home: string, runId: string, kind: string): { message: string }[] {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare('SELECT message FROM events WHERE run_id = ? AND kind = ? ORDER BY id').all(runId, kind) as { message: string }[];
  } finally {
    db.close();
  }
}

interface StatusJson {
  state: string;
  step: number;
  backend: string;
}

/**
 * Pauses a training run at a step where `wanted(step, newest checkpoint's step)` holds, resuming and
 * pausing again until it does, and returns both steps. Everything before the pause is then committed to
 * the database.
 */
async function pauseWhen(
  home: string,
  runId: string,
  dir: string,
  wanted: (step: number, checkpoint: number) => boolean,
): Promise<{ step: number; checkpoint: number }> {
  for (let attempt = 0; attempt < 40; attempt++) {
    expect(srgan(home, ['pause']).status).toBe(0);
    const step = await waitFor(
      'paused',
      () => {
        const st = srganJson<StatusJson>(home, ['status']);
        return st.state === 'paused' ? st.step : null;
      },
      60_000,
      50,
    );
    // The store commits in the order it is told: once the run's row says paused, the metrics, checkpoint
    // rows and retention's deletions that came before the pause are in the file too.
    await waitFor(
      'the pause in runs.db',
      () => query<{ status: string }>(home, 'SELECT status FROM runs WHERE id = ?', runId)[0]?.status === 'paused',
      30_000,
      50,
    );
    const checkpoint = Number(onDisk(dir).at(-1)!.slice(5));
    if (wanted(step, checkpoint)) return { step, checkpoint };
    expect(srgan(home, ['resume']).status).toBe(0);
    await waitFor('a step after the resume', () => srganJson<StatusJson>(home, ['status']).step > step, 60_000, 50);
  }
  throw new Error('never paused where wanted');
}

describe('checkpoints and resume', () => {
  // One uninterrupted reference run, shared by the tests below.
  const refHome = path.join(tmp.dir, 'ref');
  let ref: Map<number, number>;
  let refRun: string;

  beforeAll(async () => {
    const info = start(refHome, ['--config', configFile, '--max-steps', '12']);
    await waitExit(info.pid);
    refRun = info.runId;
    ref = curve(refHome, refRun, 'g_loss');
  }, 180_000);

  it('a run stopped and resumed gives the same losses, step for step, as one that never stopped', async () => {
    expect([...ref.keys()]).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const home = path.join(tmp.dir, 'stopped');
    const first = start(home, ['--config', configFile, '--max-steps', '6']);
    await waitExit(first.pid); // stops itself at step 6, writing a 'stop' checkpoint
    const ckpts = fs.readdirSync(path.join(home, 'checkpoints', first.runId)).sort();
    expect(ckpts).toEqual(['step-00000004', 'step-00000006']);

    // The token must stay private: a daemon starting on a home whose token was opened up closes it again.
    const tokenFile = path.join(home, 'token');
    const token = fs.readFileSync(tokenFile, 'utf8');
    fs.chmodSync(tokenFile, 0o644);
    const second = start(home, ['--resume', first.runId.slice(0, 17), '--max-steps', '12']);
    expect(second.runId).toBe(first.runId);
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(tokenFile, 'utf8')).toBe(token);
    await waitExit(second.pid);
    const resumed = curve(home, first.runId, 'g_loss');
    expect([...resumed.keys()]).toEqual([...ref.keys()]);
    for (const [step, v] of ref) expect({ step, v: resumed.get(step) }).toEqual({ step, v });
    // Discriminator and validation values too.
    expect([...curve(home, first.runId, 'd_loss')]).toEqual([...curve(refHome, refRun, 'd_loss')]);
    expect([...curve(home, first.runId, 'val_psnr').keys()]).toEqual([4, 8, 12]);
    expect([...curve(home, first.runId, 'val_psnr')]).toEqual([...curve(refHome, refRun, 'val_psnr')]);
    expect(repeated(home, first.runId)).toEqual([]);
    expect(events(home, first.runId, 'resume_run')[0].message).toMatch(/from step-00000006 \(step 6\)/);

    const runs = srganJson<{ runs: { id: string; status: string; last_step: number; backend: string }[] }>(home, ['runs']).runs;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ id: first.runId, status: 'stopped', last_step: 12, backend: 'wasm' });

    // Nothing left to train is refused, and the run stays as it was.
    const rows = metricRows(home, first.runId);
    const none = srgan(home, ['start', '--resume', first.runId, '--max-steps', '12']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/continues from step 12 \(step-00000012\), so --max-steps 12 leaves nothing to train/);
    expect(srganJson<{ runs: { status: string; last_step: number }[] }>(home, ['runs']).runs[0]).toMatchObject({
      status: 'stopped',
      last_step: 12,
    });
    expect(metricRows(home, first.runId)).toEqual(rows);
    // One step: the daemon may be done before `srgan start` looks; start still reports it came up.
    const one = start(home, ['--resume', first.runId, '--max-steps', '13']);
    expect(one.runId).toBe(first.runId);
    await waitExit(one.pid);
    expect(srganJson<{ runs: { status: string; last_step: number }[] }>(home, ['runs']).runs[0]).toMatchObject({
      status: 'stopped',
      last_step: 13,
    });
    expect([...curve(home, first.runId, 'g_loss').keys()]).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
  }, 240_000);

  // The same on the native rung, which the ladder picks wherever the oneDNN addon is built.
  const nativeSkip =
    native.ok || REQUIRE_NATIVE
      ? ''
      : ` [skipped: the wasm-native rung is unavailable here: ${native.reason}; SRGAN_REQUIRE_NATIVE=1 makes this a failure]`;
  /** On wasm-native in `precision`: a run stopped at 6 and resumed to 12 equals one that ran to 12. Returns both homes and runs. */
  const nativeRuns = new Map<string, ReturnType<typeof stopAndResumeNative>>();
  /** stopAndResumeNative's result for `precision`, run once. */
  function nativeStopAndResume(precision: 'fp32' | 'bf16') {
    if (!nativeRuns.has(precision)) nativeRuns.set(precision, stopAndResumeNative(precision));
    return nativeRuns.get(precision)!;
  }
  async function stopAndResumeNative(precision: 'fp32' | 'bf16') {
    const config = path.join(tmp.dir, `tiny-native-${precision}.json`);
    // G 24 wide: bf16 leaves convolutions with 16 channels or fewer on a side in fp32 (docs/native.md).
    const generator = { ...TINY.generator, channels: 24 };
    fs.writeFileSync(config, JSON.stringify({ ...TINY, generator, backend: 'wasm-native', precision }));
    const refNative = path.join(tmp.dir, `ref-native-${precision}`);
    const r = start(refNative, ['--config', config, '--max-steps', '12']);
    await waitExit(r.pid);
    const home = path.join(tmp.dir, `stopped-native-${precision}`);
    const first = start(home, ['--config', config, '--max-steps', '6']);
    await waitExit(first.pid);
    const second = start(home, ['--resume', first.runId, '--max-steps', '12']);
    await waitExit(second.pid);
    for (const h of [refNative, home]) {
      expect(srganJson<{ runs: { status: string; backend: string; last_step: number }[] }>(h, ['runs']).runs[0]).toMatchObject({
        status: 'stopped',
        backend: 'wasm-native',
        last_step: 12,
      });
    }
    expect(events(home, first.runId, 'resume_run')[0].message).toMatch(/from step-00000006 \(step 6\)/);
    expect(repeated(home, first.runId)).toEqual([]);
    const want = metricRows(refNative, r.runId);
    expect(new Set(want.map((x) => x.step)).size).toBe(12);
    expect(metricRows(home, first.runId)).toEqual(want);
    return { home, runId: first.runId, refHome: refNative, refRun: r.runId };
  }

  it.skipIf(nativeSkip !== '')(
    `on wasm-native too: stopped and resumed, the same values step for step as a run that never stopped${nativeSkip}`,
    async () => {
      await nativeStopAndResume('fp32');
    },
    240_000,
  );

  // bf16 convolutions (config precision) where the CPU has bf16 units: resumed exactly in bf16, and its
  // checkpoints (fp32, as always) serve fp32 upscaling.
  const isa = native.ok ? (/, (\w+)\), \d+ threads/.exec(native.version)?.[1] ?? '?') : '?';
  const bf16Skip =
    nativeSkip || (isa === 'avx512_core_bf16' || isa === 'avx512_core_amx' ? '' : ` [skipped: oneDNN runs on ${isa} here, no bf16 units]`);
  it.skipIf(bf16Skip !== '')(
    `in bf16 on wasm-native: resumed exactly in bf16, its curve not fp32's, its checkpoint upscales in fp32${bf16Skip}`,
    async () => {
      const bf16 = await nativeStopAndResume('bf16');
      const show = srganJson<{ run: { backend_reason: string; config: { precision: string } } }>(bf16.home, ['show', bf16.runId]);
      expect(show.run.config.precision).toBe('bf16');
      expect(show.run.backend_reason).toMatch(new RegExp(`${isa}\\).*; convolutions in bf16`));
      // The same config in fp32 (the fp32 test above ran it) trains a curve that is close, but not equal.
      const f = await nativeStopAndResume('fp32');
      const fp32 = curve(f.refHome, f.refRun, 'g_loss');
      const b = curve(bf16.refHome, bf16.refRun, 'g_loss');
      expect(fp32.size).toBe(12);
      expect([...b.values()]).not.toEqual([...fp32.values()]);
      for (const [step, v] of fp32) expect(Math.abs(b.get(step)! - v) / Math.abs(v), `g_loss at ${step}`).toBeLessThan(0.05);
      const out = path.join(tmp.dir, 'bf16-upscaled');
      const up = srgan(bf16.home, ['upscale', path.join(photos, 'p0.png'), '--out', out, '--run', bf16.runId, '--backend', 'wasm']);
      expect(up.status, up.stderr).toBe(0);
      expect(await sharp(path.join(out, 'p0.png')).metadata()).toMatchObject({ width: 160, height: 144 });
    },
    240_000,
  );

  it('bf16 off the wasm-native rung is refused at start with the reason; so is an unknown precision', () => {
    const home = path.join(tmp.dir, 'bf16-on-wasm');
    const r = srgan(home, ['start', '--config', configFile, '--precision', 'bf16', '--max-steps', '3']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /precision "bf16" runs on the wasm-native rung .*this run is on wasm, which computes in fp32: give --precision fp32, or --backend wasm-native/,
    );
    expect(srgan(home, ['start', '--config', configFile, '--precision', 'fp16']).stderr).toMatch(
      /config field "precision" must be one of "fp32", "bf16"/,
    );
  });

  it('after kill -9 it resumes from the last checkpoint, trains the steps after it again (each logged once), and the database is intact', async () => {
    const home = path.join(tmp.dir, 'killed');
    const info = start(home, ['--config', configFile, '--max-steps', '1000000']);
    const dir = path.join(home, 'checkpoints', info.runId);
    await waitFor(
      'a checkpoint past step 8',
      () => fs.existsSync(dir) && fs.readdirSync(dir).some((n) => /^step-\d+$/.test(n) && Number(n.slice(5)) >= 8),
      120_000,
      50,
    );
    // Paused at a validated step (valEvery 4), `srgan checkpoint` writes at once, at that step, in place
    // of the periodic checkpoint written there, and answers once it is on disk. It keeps that step's
    // validation: the checkpoint it replaces may be the run's best, which retention must still see.
    const at = await pauseWhen(home, info.runId, dir, (step) => step >= 8 && step % 4 === 0);
    const manual = srganJson<{ step: number; dir: string; kind: string; valGain: number | null }>(home, ['checkpoint']);
    expect(manual).toMatchObject({ kind: 'manual', step: at.step, dir: path.join(dir, stepName(at.step)) });
    expect(fs.existsSync(path.join(manual.dir, 'checksums.json'))).toBe(true);
    const gain = curve(home, info.runId, 'val_gain').get(at.step);
    expect(gain).toEqual(expect.any(Number));
    expect(manual.valGain).toBe(gain);
    expect(JSON.parse(fs.readFileSync(path.join(manual.dir, 'state.json'), 'utf8')).valGain).toBe(gain);
    expect(srgan(home, ['resume']).status).toBe(0);
    // Killed while paused a few steps after its newest checkpoint: the database then holds steps that
    // the resumed run must train again.
    const { step: paused, checkpoint: last } = await pauseWhen(home, info.runId, dir, (step, checkpoint) => step - checkpoint >= 2);
    const before = metricRows(home, info.runId);
    expect(before.at(-1)).toBeDefined();
    expect(Math.max(...before.map((r) => r.step))).toBe(paused);
    process.kill(info.pid, 'SIGKILL');
    await waitExit(info.pid);
    const db = new Database(path.join(home, 'runs.db'));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    // Retention (checkpointKeep 2): exactly the newest 2 and the best by validation gain are left.
    expect(onDisk(dir)).toEqual(retained(home, info.runId, 2));
    expect(onDisk(dir).at(-1)).toBe(stepName(last));

    // Resumed to one step short of where it was killed: steps last+1 .. paused-1 are trained again, and
    // the killed run's row for step `paused` must go with the rest of what came after the checkpoint.
    const end = paused - 1;
    const again = start(home, ['--resume', info.runId, '--max-steps', String(end)]);
    await waitExit(again.pid);
    expect(events(home, info.runId, 'resume_run')[0].message).toContain(`from ${stepName(last)} (step ${last})`);
    expect(repeated(home, info.runId)).toEqual([]);
    const after = metricRows(home, info.runId);
    expect(new Set(after.filter((r) => r.key === 'g_loss').map((r) => r.step))).toEqual(
      new Set(Array.from({ length: end }, (_, i) => i + 1)),
    );
    // The steps trained again came out as the first time, every metric of them.
    expect(after.filter((r) => r.step > last).length).toBeGreaterThan(0);
    expect(after).toEqual(before.filter((r) => r.step <= end));
    const c = curve(home, info.runId, 'g_loss');
    for (let s = 1; s <= Math.min(12, end); s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(onDisk(dir)).toEqual(retained(home, info.runId, 2));
    // The monitor's rollups followed the resume: no stale bucket, and each equals its points.
    const rollups = query<{
      key: string;
      n: number;
      lo: number;
      hi: number;
      last_step: number;
      want_n: number;
      want_lo: number;
      want_hi: number;
      want_last: number;
    }>(
      home,
      `SELECT r.key, r.n, r.lo, r.hi, r.last_step, count(*) AS want_n, min(m.value) AS want_lo, max(m.value) AS want_hi, max(m.step) AS want_last
       FROM metric_rollups r JOIN metrics m ON m.run_id = r.run_id AND m.key = r.key AND (m.step >> r.shift) = r.bucket
       WHERE r.run_id = ? AND r.stale = 0 GROUP BY r.key, r.shift, r.bucket`,
      info.runId,
    );
    expect(rollups.length).toBeGreaterThan(0);
    for (const r of rollups) expect([r.key, r.n, r.lo, r.hi, r.last_step]).toEqual([r.key, r.want_n, r.want_lo, r.want_hi, r.want_last]);
    expect(query(home, 'SELECT * FROM metric_rollups WHERE run_id = ? AND stale = 1', info.runId)).toEqual([]);
  }, 240_000);

  it('kill -9 in the middle of writing a checkpoint: the half-written folder is ignored and removed', async () => {
    const home = path.join(tmp.dir, 'killed-writing');
    const info = start(home, ['--config', configFile, '--max-steps', '400'], { SRGAN_FAULT_CHECKPOINT_PAUSE_MS: '1500' });
    const dir = path.join(home, 'checkpoints', info.runId);
    await waitFor('the second checkpoint being written', () => fs.existsSync(path.join(dir, 'step-00000008.tmp-' + info.pid)), 120_000, 20);
    process.kill(info.pid, 'SIGKILL');
    await waitExit(info.pid);
    expect(fs.readdirSync(dir).sort()).toEqual(['step-00000004', `step-00000008.tmp-${info.pid}`]);

    const again = start(home, ['--resume', info.runId, '--max-steps', '10']);
    await waitExit(again.pid);
    expect(events(home, info.runId, 'resume_run')[0].message).toMatch(/step-00000004 \(step 4\)/);
    expect(events(home, info.runId, 'checkpoint_skipped')[0].message).toMatch(/never finished/);
    const c = curve(home, info.runId, 'g_loss');
    expect([...c.keys()]).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    for (let s = 1; s <= 10; s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(repeated(home, info.runId)).toEqual([]);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }, 240_000);

  it('a trainer thread that dies is restarted from the newest checkpoint, and the run goes on as if nothing happened', async () => {
    const home = path.join(tmp.dir, 'trainer-crash');
    const info = start(home, ['--config', configFile, '--max-steps', '12'], { SRGAN_FAULT_TRAINER_FAIL_AT_STEP: '10' });
    await waitExit(info.pid);
    expect(events(home, info.runId, 'trainer_restart')[0].message).toMatch(
      /injected trainer fault at step 10.*continuing from step-00000008 \(step 8\)/,
    );
    const c = curve(home, info.runId, 'g_loss');
    expect([...c.keys()]).toEqual([...ref.keys()]);
    for (const [step, v] of ref) expect({ step, v: c.get(step) }).toEqual({ step, v });
    expect(repeated(home, info.runId)).toEqual([]);
    const run = srganJson<{ runs: { status: string; last_step: number }[] }>(home, ['runs']).runs[0];
    expect(run).toMatchObject({ status: 'stopped', last_step: 12 });
  }, 240_000);

  it('a trainer that keeps dying is restarted 3 times, then the run fails with its error', async () => {
    const home = path.join(tmp.dir, 'trainer-crash-loop');
    // Every trainer dies after its 6th step: the first at step 6, the restarted ones 6 steps after the
    // checkpoint they start from (4, 8, 12), so each restart gets somewhere and only the limit stops it.
    const info = start(home, ['--config', configFile, '--max-steps', '400'], { SRGAN_FAULT_TRAINER_FAIL_EVERY: '6' });
    await waitExit(info.pid);
    expect(events(home, info.runId, 'trainer_restart').map((e) => e.message)).toEqual([
      expect.stringMatching(/injected trainer fault at step 6\b.*continuing from step-00000004 \(step 4\)/),
      expect.stringMatching(/injected trainer fault at step 10\b.*continuing from step-00000008 \(step 8\)/),
      expect.stringMatching(/injected trainer fault at step 14\b.*continuing from step-00000012 \(step 12\)/),
    ]);
    expect(
      events(home, info.runId, 'error')
        .map((e) => e.message)
        .join('\n'),
    ).toMatch(/injected trainer fault at step 18\b/);
    expect(srganJson<{ runs: { status: string }[] }>(home, ['runs']).runs[0]).toMatchObject({ status: 'failed' });
    expect(fs.existsSync(path.join(home, 'daemon.lock'))).toBe(false);
    // What the restarts trained is what an uninterrupted run trains.
    const c = curve(home, info.runId, 'g_loss');
    for (let s = 1; s <= 12; s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(repeated(home, info.runId)).toEqual([]);
  }, 240_000);

  it('retention keeps the newest checkpointKeep and the best by validation gain, not the best by PSNR', async () => {
    const home = path.join(tmp.dir, 'retention');
    const first = start(home, ['--config', configFile, '--max-steps', '4']);
    await waitExit(first.pid); // one checkpoint, step 4, validated
    const dir = path.join(home, 'checkpoints', first.runId);
    const name = (step: number) => path.join(dir, `step-${String(step).padStart(8, '0')}`);
    // Older checkpoints as an earlier stretch of the run would have left them (state.json is all
    // retention reads): step 1 with the highest gain, step 2 with by far the highest PSNR but a
    // negative gain, step 3 not validated. The trained model's gains are nowhere near 9 dB.
    const db = openDb(path.join(home, 'runs.db'));
    for (const [step, valPsnr, valGain] of [
      [1, 20, 9],
      [2, 60, -1],
      [3, null, null],
    ] as const) {
      const state = {
        runId: first.runId,
        step,
        time: step,
        kind: 'periodic',
        config: TINY,
        scheduler: {},
        gan: {},
        rng: { jpeg: 0, perceptual: null },
        data: { seq: 0, patchesPerImage: 2, images: 8 },
        valPsnr,
        valGain,
        metrics: [],
      };
      const w = await writeCheckpoint(dir, state as unknown as Parameters<typeof writeCheckpoint>[1], {});
      recordCheckpoint(db, {
        run_id: first.runId,
        step,
        time: step,
        path: w.dir,
        checksum: w.checksum,
        kind: 'periodic',
        psnr: valPsnr,
        gain: valGain,
      });
    }
    db.close();

    // checkpointKeep 2: every checkpoint after the resume leaves the newest two and step 1. No more
    // validations (valEvery may change on resume), so status shows what the run knew before it.
    const noVal = path.join(tmp.dir, 'no-val.json');
    fs.writeFileSync(noVal, JSON.stringify({ valEvery: 1000 }));
    const again = start(home, ['--resume', first.runId, '--config', noVal, '--max-steps', '400']);
    const s = await waitFor(
      'training after the resume',
      () => {
        const st = srganJson<{ step: number; validation: unknown }>(home, ['status']);
        return st.step >= 9 ? st : null;
      },
      120_000,
      50,
    );
    expect(srgan(home, ['stop']).status).toBe(0);
    await waitExit(again.pid);
    const g4 = curve(home, first.runId, 'val_gain').get(4)!;
    const [p4, b4] = [curve(home, first.runId, 'val_psnr').get(4)!, curve(home, first.runId, 'val_bicubic').get(4)!];
    expect(s.validation).toEqual({ step: 4, psnr: p4, bicubic: b4, gain: g4, best: { step: 4, gain: g4 } });

    const read = openDb(path.join(home, 'runs.db'), { readonly: true });
    const rows = listCheckpoints(read, first.runId, { includeDeleted: true });
    read.close();
    const newest = rows.slice(-2).map((r) => r.path);
    expect(rows.at(-1)!.step).toBeGreaterThanOrEqual(8);
    expect(
      fs
        .readdirSync(dir)
        .map((n) => path.join(dir, n))
        .sort(),
    ).toEqual([name(1), ...newest]);
    expect(rows.filter((r) => !r.deleted).map((r) => r.path)).toEqual([name(1), ...newest]);
    // The highest PSNR (step 2) is not what is kept.
    expect(
      rows
        .filter((r) => r.deleted)
        .map((r) => r.path)
        .slice(0, 3),
    ).toEqual([name(2), name(3), name(4)]);
    // The daemon records each checkpoint's gain: step 4's is val_gain at step 4; the later ones were not validated.
    expect(rows.filter((x) => x.step >= 4).map((r) => [r.step, r.gain])).toEqual(
      rows.filter((x) => x.step >= 4).map((r) => [r.step, r.step === 4 ? g4 : null]),
    );
  }, 240_000);

  it('a damaged newest checkpoint is skipped for the one before it, with an event; no checkpoint at all is a clear error', async () => {
    const home = path.join(tmp.dir, 'damaged');
    const info = start(home, ['--config', configFile, '--max-steps', '8']);
    await waitExit(info.pid);
    const dir = path.join(home, 'checkpoints', info.runId);
    // Flip bytes in the newest checkpoint's tensors; leave a half-written one beside it.
    const bin = path.join(dir, 'step-00000008', 'tensors.bin');
    const bytes = fs.readFileSync(bin);
    bytes[100] = bytes[100] ^ 0xff;
    fs.writeFileSync(bin, bytes);
    fs.mkdirSync(path.join(dir, 'step-00000009.tmp-12345'));

    const again = start(home, ['--resume', info.runId, '--max-steps', '12']);
    await waitExit(again.pid);
    expect(
      events(home, info.runId, 'checkpoint_skipped')
        .map((e) => e.message)
        .join('\n'),
    ).toMatch(/step-00000008: tensors\.bin is damaged/);
    expect(events(home, info.runId, 'resume_run')[0].message).toMatch(/step-00000004 \(step 4\)/);
    const c = curve(home, info.runId, 'g_loss');
    expect([...c.keys()]).toEqual([...ref.keys()]);
    for (let s = 1; s <= 12; s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(repeated(home, info.runId)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'step-00000009.tmp-12345'))).toBe(false);

    fs.rmSync(dir, { recursive: true });
    const r = srgan(home, ['start', '--resume', info.runId]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/SRGAN_ERR_CHECKPOINT: run .* has no usable checkpoint/);
    // The failed resume did not take the run over: it stays stopped at step 12 with its metrics.
    expect(srganJson<{ runs: { status: string; last_step: number }[] }>(home, ['runs']).runs[0]).toMatchObject({
      status: 'stopped',
      last_step: 12,
    });
    expect([...curve(home, info.runId, 'g_loss').keys()]).toEqual([...ref.keys()]);
    expect(srgan(home, ['start', '--resume', 'no-such-run']).stderr).toMatch(/SRGAN_ERR_CONFIG/);
    expect(srgan(home, ['start', '--resume', info.runId, '--seed', '4']).stderr).toMatch(/--seed cannot be given with --resume/);
  }, 240_000);
});
