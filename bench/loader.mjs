// Is the trainer fed? Three measurements side by side in one run:
//
//   npm run bench -- loader [--seconds 20] [--skip-prepare] [--skip-daemon]
//
// 1. `srgan prepare` beside the article's Pillow script (bench/prepare.mjs, run as a child).
// 2. The loader pool alone (1 and 2 worker threads, demo photos, the espcn-x2-fast patch plan) filling
//    the ring as fast as a consumer drains it, in patches/s; and a real daemon (`srgan start`) training
//    espcn-x2-fast on the same photos, with its consumption (patches/s) and the fraction of the
//    trainer's wall time spent waiting for data, read from `srgan status --json`. Target: < 2 %.
// 3. The ring against postMessage (clone / transfer) and a plain memcpy, at the training patch size
//    (bench/ring.mjs, run as a child).
// Last line: {"bench":"loader", ...} with every number.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoaderPool } from '../dist/actors/loader-pool.js';
import { listImages } from '../dist/data/image/files.js';
import { SharedRing } from '../dist/protocol/ring.js';
import { generateDemoData } from '../dist/data/demo/generate.js';
import { resolveConfig } from '../dist/config/resolve.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const SECONDS = opt('seconds', 20);
const result = { bench: 'loader' };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-bench-loader-'));
try {
  // ---- 1. prepare vs Pillow ----------------------------------------------------------------------
  if (!args.includes('--skip-prepare') && fs.existsSync(path.join(here, 'prepare.mjs'))) {
    console.log('== srgan prepare vs Pillow (bench/prepare.mjs)');
    const r = spawnSync(process.execPath, [path.join(here, 'prepare.mjs')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    process.stdout.write(r.stdout);
    try {
      result.prepare = JSON.parse(r.stdout.trim().split('\n').pop());
    } catch {
      result.prepare = null;
    }
  }

  // ---- 2. loader throughput vs the trainer's consumption -----------------------------------------
  const cfg = resolveConfig({});
  const photos = path.join(tmp, 'photos');
  await generateDemoData(photos);
  const files = listImages(photos);
  console.log(
    `\n== loader pool vs trainer (${cfg.preset}: ${cfg.batchSize} × ${cfg.patchSize}² patches, ${files.length} demo photos, ${cfg.patchesPerImage} patches per visit)`,
  );

  const loaderRate = async (workers) => {
    const ring = SharedRing.create(cfg.ringMiB << 20);
    const pool = new LoaderPool({
      ring: ring.buffer,
      files,
      workers,
      seed: 1,
      patchSize: cfg.patchSize,
      scale: cfg.scale,
      lrFilter: cfg.lrFilter,
      patchesPerImage: cfg.patchesPerImage,
    });
    await pool.start();
    // The first visit of each photo decodes it (later ones hit the worker's cache, as in training):
    // measure after one warm-up epoch.
    let n = 0;
    const drain = async (until) => {
      while (performance.now() < until) {
        const f = await ring.readAsync(100);
        if (f) {
          n++;
          ring.release();
        }
      }
    };
    await drain(performance.now() + Math.min(5, SECONDS / 4) * 1000);
    n = 0;
    const t0 = performance.now();
    await drain(t0 + (SECONDS / 2) * 1000);
    const rate = n / ((performance.now() - t0) / 1000);
    ring.close();
    await pool.stop();
    return rate;
  };
  result.loaderPatchesPerSec = {};
  for (const w of [1, 2]) {
    const rate = await loaderRate(w);
    result.loaderPatchesPerSec[w] = Math.round(rate);
    console.log(`loader, ${w} worker${w > 1 ? 's' : ' '}: ${rate.toFixed(0).padStart(6)} patches/s into the ring (consumer draining)`);
  }

  if (!args.includes('--skip-daemon')) {
    const env = { ...process.env, SRGAN_HOME: path.join(tmp, 'home') };
    const srgan = (...a) => spawnSync(process.execPath, [path.join(here, '../bin/srgan.js'), ...a], { env, encoding: 'utf8' });
    const started = srgan('start', '--data', photos, '--json');
    if (started.status !== 0) throw new Error(`srgan start failed: ${started.stderr}`);
    const samples = [];
    try {
      await new Promise((r) => setTimeout(r, 5000)); // warm-up: backend, first decodes
      const until = performance.now() + SECONDS * 1000;
      while (performance.now() < until) {
        await new Promise((r) => setTimeout(r, 2000));
        const s = srgan('status', '--json');
        if (s.status === 0) samples.push(JSON.parse(s.stdout));
      }
    } finally {
      srgan('stop');
    }
    const mean = (k) => samples.reduce((a, s) => a + s[k], 0) / Math.max(1, samples.length);
    const last = samples.at(-1) ?? {};
    result.daemon = {
      backend: last.backend,
      loaderWorkers: cfg.loaderWorkers,
      stepsPerSec: +mean('stepsPerSec').toFixed(2),
      patchesPerSec: Math.round(mean('patchesPerSec')),
      dataWaitPercent: +(100 * mean('dataWaitFraction')).toFixed(2),
      samples: samples.length,
    };
    console.log(
      `daemon (${last.backend}, ${cfg.loaderWorkers} loader worker): ${result.daemon.stepsPerSec} steps/s, ` +
        `${result.daemon.patchesPerSec} patches/s consumed, trainer waited for data ${result.daemon.dataWaitPercent}% of its time ` +
        `(target < 2%; ${samples.length} samples over ${SECONDS} s)`,
    );
    const w1 = result.loaderPatchesPerSec[1];
    console.log(`loader capacity ÷ consumption: ${(w1 / Math.max(1, result.daemon.patchesPerSec)).toFixed(1)}× with 1 worker`);
  }

  // ---- 3. ring vs postMessage vs memcpy ----------------------------------------------------------
  console.log(`\n== ring vs postMessage vs memcpy (bench/ring.mjs at ${cfg.patchSize} px, batch ${cfg.batchSize})`);
  const r = spawnSync(
    process.execPath,
    [path.join(here, 'ring.mjs'), '--patch', String(cfg.patchSize), '--batch', String(cfg.batchSize), '--rounds', '400'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  process.stdout.write(r.stdout);
  try {
    result.ring = JSON.parse(r.stdout.trim().split('\n').pop()).rows;
  } catch {
    result.ring = null;
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
