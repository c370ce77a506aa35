// Times the BACKEND.md reference training step on wasm with our conv-gradient kernels:
// batch 8 of 32×32×3, conv5 3→64 + ReLU, conv3 64→32 + ReLU, conv3 32→12, pixel shuffle ×2, MSE,
// Adam(1e-3). Prints the median ms/step. Needs `npx tsc -p tsconfig.json` first (imports dist/).
//
//   npm run bench -- kernels [--steps 30] [--warmup 3] [--compare]
//
// --compare also times a variant on tf.fused.conv2d (bias folded into XNNPACK's conv), interleaving
// the two round by round in this one process: timings on 2-vCPU machines vary 1.5–2× between runs,
// so only side-by-side numbers are comparable.

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../dist/models/backend.js';
import { conv2d, initConv, pixelShuffle, seededUniform } from '../dist/models/ops.js';
import { mse } from '../dist/models/losses.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const STEPS = opt('steps', 30);
const WARMUP = opt('warmup', 3);
const ROUND = 5; // steps per variant per round when comparing
const GFLOP = 1.312; // BACKEND.md: a training step counted as 3× the 437.3 MFLOP forward

const info = await initBackend('wasm');
console.log(`backend: ${info.reason}`);

const x = tf.add(seededUniform([8, 32, 32, 3], 0.5, 1), 0.5);
const target = tf.add(seededUniform([8, 64, 64, 3], 0.5, 2), 0.5);

/** One model + optimizer; returns a function that runs one training step and returns its loss. */
function makeVariant(name, fused) {
  const vars = [
    [5, 3, 64],
    [3, 64, 32],
    [3, 32, 12],
  ].map(([k, cin, cout], i) => {
    const { w, b } = initConv(k, cin, cout, 1000 + i, true);
    return { w: tf.variable(w), b: tf.variable(b) };
  });
  const conv = (h, { w, b }) =>
    fused ? tf.fused.conv2d({ x: h, filter: w, strides: 1, pad: 'same', bias: b }) : conv2d(h, w, b);
  const forward = () => {
    let h = tf.relu(conv(x, vars[0]));
    h = tf.relu(conv(h, vars[1]));
    return pixelShuffle(conv(h, vars[2]), 2);
  };
  const adam = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const times = [];
  const losses = [];
  const step = (record) => {
    const t0 = performance.now();
    const loss = adam.minimize(() => mse(forward(), target), true);
    const v = loss.dataSync()[0];
    loss.dispose();
    if (record) {
      times.push(performance.now() - t0);
      losses.push(v);
    }
  };
  return { name, step, times, losses };
}

const variants = [makeVariant('conv2d + add (src/models/ops.ts)', false)];
if (args.includes('--compare')) variants.push(makeVariant('tf.fused.conv2d', true));

for (const v of variants) for (let i = 0; i < WARMUP; i++) v.step(false);
const tensorsBefore = tf.memory().numTensors;
for (let done = 0; done < STEPS; done += ROUND) {
  for (const v of variants) for (let i = 0; i < Math.min(ROUND, STEPS - done); i++) v.step(true);
}
for (const v of variants) {
  const t = [...v.times].sort((a, b) => a - b);
  const median = t[Math.floor(t.length / 2)];
  console.log(
    `${v.name}: median ${median.toFixed(1)} ms/step (min ${t[0].toFixed(1)}, max ${t[t.length - 1].toFixed(1)}; ` +
      `${(GFLOP / (median / 1000)).toFixed(1)} GFLOP/s at the median); ` +
      `loss ${v.losses[0].toFixed(4)} → ${v.losses[v.losses.length - 1].toFixed(4)}`,
  );
}
console.log(`tensors ${tensorsBefore} → ${tf.memory().numTensors} over ${STEPS} steps per variant`);
