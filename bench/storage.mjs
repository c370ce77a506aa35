// A week of the quick preset in runs.db (docs/reliability.md, "Bounded growth"): what the daemon's
// metrics store writes, at the rate the quick preset trains, with a simulated clock, through the real
// MetricsStore with the preset's retention. Then how long the commands that read it take: `srgan runs`,
// `srgan show`, and the monitor's first load (its HTTP API, served by `srgan monitor`).
//
//   npm run bench -- storage [--days 7] [--steps-per-sec 12] [--no-retention]
//
// Per step, as espcn-x2-fast logs (logEvery 1): g_loss, g_pix, psnr_train, lr_g, lr_d, d_steps (6
// values; with a GAN weight 3 more); once a second the daemon's 5 machine series; a ~97 KB preview every
// 25 steps (random bytes, as incompressible as a PNG); validation (5 values) every 500 steps; a
// checkpoint row every 1000 steps, retention keeping 3. Prints the file size after each simulated day
// and, last, one JSON line.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const DAYS = Number(opt('days', 7));
const RATE = Number(opt('steps-per-sec', 12));
const RETENTION = !args.includes('--no-retention');

const { SimulatedClock } = await import('../dist/actors/actor.js');
const { MetricsStore } = await import('../dist/actors/metrics-store.js');
const { resolveConfig } = await import('../dist/config/resolve.js');

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-bench-storage-'));
const file = path.join(home, 'runs.db');
const config = resolveConfig({});
const t0 = Date.UTC(2026, 0, 1);
const clock = new SimulatedClock(t0);
const store = new MetricsStore({ file, clock, ...(RETENTION ? { retention: config.retention } : {}) });
await store.start();
const runId = 'bench-week';
store.send({
  type: 'createRun',
  run: {
    id: runId,
    name: 'a week of espcn-x2-fast',
    status: 'training',
    created_at: t0 / 1000,
    preset: config.preset,
    backend: 'wasm-native',
    backend_reason: 'bench',
    config: JSON.stringify(config),
    pid: process.pid,
    data_dir: '/bench',
  },
});

const png = crypto.randomBytes(97 * 1024);
const steps = Math.round(DAYS * 86400 * RATE);
const msPerStep = 1000 / RATE;
const perDay = [];
const started = performance.now();
let points = [];
let lastSeries = 0;
let nextDay = 1;
const checkpoints = [];
for (let step = 1; step <= steps; step++) {
  clock.advance(msPerStep);
  const now = clock.now();
  const g = 0.01 + 0.1 / Math.sqrt(step);
  points.push({
    step,
    wallTime: now,
    values: { g_loss: g, g_pix: g, psnr_train: -10 * Math.log10(g), lr_g: 1e-3, lr_d: 1e-4, d_steps: 1 },
  });
  if (step % 500 === 0) {
    points.push({ step, wallTime: now, values: { val_psnr: 30, val_bicubic: 29, val_gain: 1, val_psnr_mix: 31, val_gain_mix: 1.1 } });
  }
  if (now - lastSeries >= 1000) {
    lastSeries = now;
    points.push({
      step,
      wallTime: now,
      values: { steps_per_sec: RATE, patches_per_sec: RATE * 16, data_wait: 0.01, tensors: 120, rss_mib: 900 },
    });
  }
  // The trainer posts its metrics every 250 ms.
  if (points.length > 0 && step % Math.max(1, Math.round(RATE / 4)) === 0) {
    store.send({ type: 'metrics', runId, points });
    points = [];
  }
  if (step % 25 === 0) store.send({ type: 'preview', runId, step, width: 512, height: 128, panels: ['LR', 'G', 'HR'], png });
  if (step % 1000 === 0) {
    const p = `/bench/ckpt/step-${step}`;
    store.send({
      type: 'checkpoint',
      row: { run_id: runId, step, time: now / 1000, path: p, checksum: 'x', kind: 'periodic', psnr: null, gain: null },
    });
    checkpoints.push(p);
    if (checkpoints.length > 3) store.send({ type: 'checkpointsDeleted', runId, paths: [checkpoints.shift()] });
  }
  if (step % 2000 === 0) await store.whenIdle();
  if (now - t0 >= nextDay * 86400_000) {
    await store.whenIdle();
    const bytes = fs.statSync(file).size;
    perDay.push({ day: nextDay, fileMiB: Number((bytes / 2 ** 20).toFixed(1)), rows: store.rowsWritten, thinned: { ...store.thinned } });
    console.log(
      `day ${nextDay}: runs.db ${(bytes / 2 ** 20).toFixed(1)} MiB; ${store.rowsWritten} metric rows written, ` +
        `${store.thinned.metrics} thinned, ${store.thinned.previews} previews thinned (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
    nextDay++;
  }
}
store.send({ type: 'updateRun', id: runId, status: 'stopped', lastStep: steps, ended: true });
await store.stop();

// What reading it costs: the CLI on it, and the monitor's first load over HTTP.
const bin = path.join(here, '../bin/srgan.js');
const env = { ...process.env, SRGAN_HOME: home };
const timeCli = (cmd) => {
  const ms = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [bin, ...cmd, '--json'], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`srgan ${cmd.join(' ')}: ${r.stderr}`);
    ms.push(performance.now() - t);
  }
  return Math.round(ms.sort((a, b) => a - b)[1]);
};
const runsMs = timeCli(['runs']);
const showMs = timeCli(['show', runId]);
const monitor = spawn(process.execPath, [bin, 'monitor', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
const info = await new Promise((resolve) => monitor.stdout.once('data', (d) => resolve(JSON.parse(String(d)))));
const token = fs.readFileSync(path.join(home, 'token'), 'utf8').trim();
const get = async (p) => {
  const r = await fetch(`http://127.0.0.1:${info.port}${p}`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${p}: ${r.status}`);
  return r.arrayBuffer();
};
const loads = [];
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  await Promise.all([
    get('/api/runs'),
    get(`/api/runs/${runId}`),
    get(`/api/runs/${runId}/series?keys=g_loss,psnr_train,val_gain,steps_per_sec&width=1200`),
    get(`/api/runs/${runId}/events`),
    get(`/api/runs/${runId}/previews`),
    get(`/api/runs/${runId}/checkpoints`),
  ]);
  loads.push(performance.now() - t);
}
monitor.kill();
const monitorMs = Math.round(loads.sort((a, b) => a - b)[1]);
const bytes = fs.statSync(file).size;
console.log(
  `after ${DAYS} days at ${RATE} steps/s (${steps} steps${RETENTION ? ', retention ' + JSON.stringify(config.retention) : ', no retention'}): ` +
    `runs.db ${(bytes / 2 ** 20).toFixed(1)} MiB; srgan runs ${runsMs} ms, srgan show ${showMs} ms, monitor first load ${monitorMs} ms (medians of 3)`,
);
console.log(
  JSON.stringify({
    bench: 'storage',
    days: DAYS,
    stepsPerSec: RATE,
    retention: RETENTION ? config.retention : null,
    fileMiB: bytes / 2 ** 20,
    perDay,
    runsMs,
    showMs,
    monitorMs,
  }),
);
fs.rmSync(home, { recursive: true, force: true });
