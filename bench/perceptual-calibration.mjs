// Calibrates the bundled perceptual net (models/losses/perceptual.ts, BUNDLED_CALIBRATION) to the seed's VGG16
// units, without VGG16 weights (docs/perceptual.md, "Calibration").
//
//   npm run bench -- perceptual-calibration [--images 16] [--seed 7] [--backend wasm]
//
// The only VGG magnitudes we have are the author's logged values (docs/seed.md §7). At the end of the final
// run the weighted terms were pix MSE ≈ 0.0012, VGG full ≈ 0.0035, VGG half ≈ 0.0016: the full VGG term at
// weight 1e-4 is ≈ 2.9 × the pixel MSE and the half term ≈ 1.33 × (the ESPCN + VGG run logged 2.4 and 1.33).
// So we measure, on demo images and a few G-like degradations d(x), the ratio
//     r = 1e-4 · D(x, d(x)) / MSE(x, d(x))        (D = raw bundled feature distance, 248² centre crop)
// and set the calibration c_full = 2.9 / geomean(r) over the G-like degradations (interpolation blur,
// blur + noise), which gives the bundled term the VGG term's size relative to the pixel loss; likewise
// c_half = 1.33 / geomean(r_half). Pure noise is printed for reference, not used: its ratio differs ~2×.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../dist/models/backend/init.js';
import { createPerceptualLoss, gammaDownsample2, BUNDLED_CALIBRATION } from '../dist/models/losses/perceptual.js';
import { generateDemoData } from '../dist/data/demo/generate.js';
import { crop, loadRgb, upscaleBicubic } from '../dist/data/image/patches.js';
import { downscale } from '../dist/data/image/degrade.js';
import { mulberry32 } from '../dist/util/prng.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const COUNT = Number(opt('images', 16));
const SEED = Number(opt('seed', 7));
const TARGET_FULL = 0.0035 / 0.0012; // docs/seed.md §7, final run
const TARGET_HALF = 0.0016 / 0.0012;
const SIDE = 256; // the seed's patch; the loss sees the 248² shift crop
const CROP = 248;

await initBackend(opt('backend', 'wasm'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-calib-'));
const files = await generateDemoData(tmp, { count: COUNT, seed: SEED });
const loss = await createPerceptualLoss({ kind: 'bundled' }, mulberry32(SEED));
const rand = mulberry32(SEED + 1);

const toTensor = (img) => tf.tidy(() => tf.div(tf.tensor4d(img.data, [1, img.height, img.width, 3], 'float32'), 255));
const gaussian = (sigma) => {
  const r = Math.ceil(3 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = k.reduce((a, b) => a + b, 0);
  const k1 = tf.tensor1d(k.map((v) => v / s));
  const k2 = tf.outerProduct(k1, k1);
  return tf.tile(tf.reshape(k2, [2 * r + 1, 2 * r + 1, 1, 1]), [1, 1, 3, 1]);
};
const noise = (x, sigma) =>
  tf.add(
    x,
    tf.mul(
      tf.tensor(
        Float32Array.from({ length: x.size }, () => gauss(rand)),
        x.shape,
      ),
      sigma,
    ),
  );
function gauss(r) {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Degradations of an HR patch x (float [1, 256, 256, 3]; `img` is its byte image) and whether they calibrate. */
const DEGRADATIONS = {
  'bicubic x2 (interpolation baseline)': [true, (x, img) => toTensor(upscaleBicubic(downscale(img, 2, 'bilinear-aa'), 2))],
  'blur s0.7 + noise 0.01': [true, (x) => tf.tidy(() => noise(tf.depthwiseConv2d(x, gaussian(0.7), 1, 'same'), 0.01))],
  'noise 0.02 (reference only)': [false, (x) => tf.tidy(() => noise(x, 0.02))],
};

const rows = {};
for (const file of files) {
  const full = await loadRgb(file);
  if (full.width < SIDE || full.height < SIDE) continue;
  const img = crop(full, (full.width - SIDE) >> 1, (full.height - SIDE) >> 1, SIDE, SIDE);
  const x = toTensor(img);
  for (const [name, [, degrade]] of Object.entries(DEGRADATIONS)) {
    const y = degrade(x, img);
    const [r, rh] = tf.tidy(() => {
      const off = (SIDE - CROP) >> 1;
      const cx = tf.slice(x, [0, off, off, 0], [1, CROP, CROP, 3]);
      const cy = tf.slice(y, [0, off, off, 0], [1, CROP, CROP, 3]);
      const mse = tf.mean(tf.squaredDifference(cx, cy)).dataSync()[0];
      const d = loss.distance(cy, cx).dataSync()[0];
      const dh = loss.distance(gammaDownsample2(cy), gammaDownsample2(cx)).dataSync()[0];
      return [(1e-4 * d) / mse, (1e-4 * dh) / mse, mse];
    });
    (rows[name] ??= []).push([r, rh]);
    y.dispose();
  }
  x.dispose();
}

const geomean = (v) => Math.exp(v.reduce((a, b) => a + Math.log(b), 0) / v.length);
const used = Object.entries(rows)
  .filter(([name]) => DEGRADATIONS[name][0])
  .flatMap(([, v]) => v);
const cFull = TARGET_FULL / geomean(used.map(([r]) => r));
const cHalf = TARGET_HALF / geomean(used.map(([, rh]) => rh));
console.log(`images: ${rows[Object.keys(rows)[0]].length} of ${files.length} (≥ ${SIDE}²), backend ${tf.getBackend()}`);
console.log(`raw ratio r = 1e-4·D/MSE (full, half) per degradation, geometric mean [min … max]:`);
for (const [name, v] of Object.entries(rows)) {
  const f = v.map(([r]) => r);
  const h = v.map(([, rh]) => rh);
  const span = (v) => `${geomean(v).toFixed(4)} [${Math.min(...v).toFixed(4)} … ${Math.max(...v).toFixed(4)}]`;
  console.log(
    `  ${name.padEnd(38)} full ${span(f)}  half ${span(h)}  → c ${(TARGET_FULL / geomean(f)).toFixed(1)} / ${(TARGET_HALF / geomean(h)).toFixed(1)}`,
  );
}
console.log(`targets: full ${TARGET_FULL.toFixed(2)} (VGG 0.0035 / pix 0.0012), half ${TARGET_HALF.toFixed(2)} (0.0016 / 0.0012)`);
console.log(
  `calibration: full ${cFull.toFixed(2)}, half ${cHalf.toFixed(2)}  (in use: full ${BUNDLED_CALIBRATION.full}, half ${BUNDLED_CALIBRATION.half})`,
);
console.log(
  `with one factor for both, half/full would be ${(geomean(used.map(([, rh]) => rh)) / geomean(used.map(([r]) => r))).toFixed(2)} (seed ${(0.0016 / 0.0035).toFixed(2)})`,
);
loss.dispose();
fs.rmSync(tmp, { recursive: true, force: true });
