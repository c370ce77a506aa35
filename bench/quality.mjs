// Does training work? Trains a preset (default espcn-x2-fast) for a fixed number of steps on the demo
// data, then scores it against bicubic on held-out demo images (a different seed), in one run.
//
//   npm run bench -- quality [--preset espcn-x2-fast] [--steps 1500] [--backend auto] [--eval-every 500] [--set JSON]
//
// PSNR is measured on BT.601 luma (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]) with
// `scale` pixels of border cropped, the convention of SR papers; RGB PSNR is printed beside it. The
// LR inputs are made exactly as in training (the preset's lrFilter; no JPEG at evaluation).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { resolveConfig } from '../dist/daemon/config.js';
import { selectBackend } from '../dist/models/ladder.js';
import { Gan } from '../dist/models/gan.js';
import { createEma } from '../dist/models/ema.js';
import { Scheduler } from '../dist/actors/scheduler.js';
import { generateDemoData } from '../dist/data/demo.js';
import { augment, crop, loadRgb, randomCrop, upscaleBicubic } from '../dist/data/patches.js';
import { downscale } from '../dist/data/degrade.js';
import { deriveSeed, mulberry32 } from '../dist/data/prng.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const STEPS = Number(opt('steps', 1500));
const EVAL_EVERY = Number(opt('eval-every', 500));
// --set '{"advWeight": 1e-4}' overrides config fields for an experiment.
const config = resolveConfig({ preset: opt('preset', 'espcn-x2-fast'), backend: opt('backend', 'auto'), jpeg: false, perceptual: { kind: 'off' }, ...JSON.parse(opt('set', '{}')) });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-quality-'));
const trainFiles = await generateDemoData(path.join(tmp, 'train'), { count: 64, seed: 1 });
const testFiles = await generateDemoData(path.join(tmp, 'test'), { count: 12, seed: 4242 });
const train = await Promise.all(trainFiles.map((f) => loadRgb(f)));
const test = await Promise.all(testFiles.map((f) => loadRgb(f)));

const backend = await selectBackend(config.backend);
const gan = new Gan(config, { ema: (G) => (config.emaDecay === null ? null : createEma(G.variables, config.emaDecay)) });
const scheduler = new Scheduler({
  dStepsPerG: config.dStepsPerG,
  phases: config.phases,
  logEvery: 1,
  previewEvery: 0,
  maxSteps: null,
  batchScale: config.lrReferenceBatch === null ? null : config.batchSize / config.lrReferenceBatch,
  resetOptimizersOnPhaseChange: config.resetOptimizers,
  dMode: config.dMode,
});
console.log(`${config.preset} on ${backend.name}; ${STEPS} steps of batch ${config.batchSize}×${config.patchSize}²; G ${gan.G.paramCount} params`);

const B = config.batchSize;
const P = config.patchSize;
const L = P / config.scale;
const rand = mulberry32(deriveSeed(config.seed, 77));
function batch() {
  const hr = new Float32Array(B * P * P * 3);
  const lr = new Float32Array(B * L * L * 3);
  for (let i = 0; i < B; i++) {
    const img = train[Math.floor(rand() * train.length)];
    const h = augment(randomCrop(img, P, rand), rand);
    const l = downscale(h, config.scale, config.lrFilter);
    for (let k = 0; k < h.data.length; k++) hr[i * P * P * 3 + k] = h.data[k] / 255;
    for (let k = 0; k < l.data.length; k++) lr[i * L * L * 3 + k] = l.data[k] / 255;
  }
  return [tf.tensor4d(hr, [B, P, P, 3]), tf.tensor4d(lr, [B, L, L, 3])];
}

/** PSNR over the image minus a `border` frame: on luma ('y') or on RGB ('rgb'). */
function psnr(a, b, border, mode) {
  let se = 0;
  let n = 0;
  for (let y = border; y < a.height - border; y++) {
    for (let x = border; x < a.width - border; x++) {
      const i = (y * a.width + x) * 3;
      if (mode === 'y') {
        const ya = 16 + (65.481 * a.data[i] + 128.553 * a.data[i + 1] + 24.966 * a.data[i + 2]) / 255;
        const yb = 16 + (65.481 * b.data[i] + 128.553 * b.data[i + 1] + 24.966 * b.data[i + 2]) / 255;
        se += (ya - yb) ** 2;
        n++;
      } else {
        for (let c = 0; c < 3; c++) se += (a.data[i + c] - b.data[i + c]) ** 2;
        n += 3;
      }
    }
  }
  return 10 * Math.log10((255 * 255) / (se / n));
}

function evaluate() {
  const s = config.scale;
  const sums = { model: { y: 0, rgb: 0 }, bicubic: { y: 0, rgb: 0 } };
  for (const img of test) {
    const side = Math.min(192, img.width, img.height) - (Math.min(192, img.width, img.height) % (s * 8));
    const hr = crop(img, (img.width - side) >> 1, (img.height - side) >> 1, side, side);
    const lr = downscale(hr, s, config.lrFilter);
    const bic = upscaleBicubic(lr, s);
    const out = tf.tidy(() => {
      const x = tf.div(tf.tensor4d(Float32Array.from(lr.data), [1, lr.height, lr.width, 3]), 255);
      return tf.round(tf.mul(gan.generate(x), 255)).dataSync();
    });
    const model = { width: hr.width, height: hr.height, data: Uint8Array.from(out) };
    for (const mode of ['y', 'rgb']) {
      sums.model[mode] += psnr(model, hr, s, mode) / test.length;
      sums.bicubic[mode] += psnr(bic, hr, s, mode) / test.length;
    }
  }
  return sums;
}

const rows = [];
const t0 = performance.now();
for (let step = 1; step <= STEPS; step++) {
  const plan = scheduler.plan();
  const [hr, lr] = batch();
  const values = gan.step(hr, lr, plan);
  tf.dispose([hr, lr]);
  scheduler.complete(plan);
  if (values.g_adv !== undefined) scheduler.observe?.({ gAdv: values.g_adv });
  if (step % EVAL_EVERY === 0 || step === STEPS) {
    const e = evaluate();
    const secs = (performance.now() - t0) / 1000;
    rows.push({ step, seconds: Math.round(secs), psnrY: e.model.y, psnrRgb: e.model.rgb, bicubicY: e.bicubic.y, bicubicRgb: e.bicubic.rgb });
    console.log(
      `step ${String(step).padStart(5)}  ${secs.toFixed(0).padStart(5)} s  model ${e.model.y.toFixed(2)} dB (Y) ${e.model.rgb.toFixed(2)} dB (RGB)` +
        `   bicubic ${e.bicubic.y.toFixed(2)} / ${e.bicubic.rgb.toFixed(2)}   Δ ${(e.model.y - e.bicubic.y).toFixed(2)} dB`,
    );
  }
}
const last = rows[rows.length - 1];
console.log(last.psnrY > last.bicubicY ? 'the model beats bicubic' : 'the model does NOT beat bicubic yet');
console.log(JSON.stringify({ bench: 'quality', preset: config.preset, backend: backend.name, steps: STEPS, rows }));
gan.dispose();
fs.rmSync(tmp, { recursive: true, force: true });
