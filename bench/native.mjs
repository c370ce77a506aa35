// Times the reference training step (docs/backends.md) on wasm + JS conv-gradient kernels and on wasm + the
// native oneDNN kernels, side by side in this one process (interleaved rounds; medians), since timings
// on 2-vCPU machines vary 1.5–2× between runs. Needs `npx tsc -p tsconfig.json` and
// `npm run build:native` first (imports dist/ and loads native/build/).
//
//   npm run bench -- native [--steps 40] [--warmup 3] [--round 5] [--threads N] [--one-thread] [--layout-any] [--plans]
//
// Reference step: batch 8 of 32×32×3, conv5 3→64 + ReLU, conv3 64→32 + ReLU, conv3 32→12, pixel
// shuffle ×2, MSE, Adam(1e-3); a step counts as 3 × 437.3 MFLOP forward = 1.312 GFLOP.
// Variants (identical seeds, so their losses must agree):
//   wasm + JS kernels           conv2d + add + relu (src/models/archs/ops.ts), kernels from src/models/backend/conv-gradient-kernels.ts
//   wasm + native               the same graph, Conv2D and both conv gradients on oneDNN
//   wasm + native, fused        conv2dBiasAct (src/models/backend/native/kernels.ts): bias + ReLU as oneDNN post-ops,
//                               dW and db from one backward-weights call
//   --one-thread adds "wasm + native, fused, 1 thread" (oneDNN on one OpenMP thread; --threads sets
//   the others'); --layout-any adds "wasm + native, fused, layout any": oneDNN picks blocked activation
//   layouts and reorders in and out of NHWC on every call; --plans lists oneDNN's implementations.

import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../dist/models/backend/init.js';
import { conv2d, initConv, pixelShuffle, seededUniform } from '../dist/models/archs/ops.js';
import { mse } from '../dist/models/losses/pixel-adversarial.js';
import {
  conv2dBiasAct,
  loadNativeKernels,
  nativeStats,
  registerNativeKernels,
  configureNative,
  unregisterNativeKernels,
} from '../dist/models/backend/native/kernels.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const STEPS = opt('steps', 40);
const WARMUP = opt('warmup', 3);
const ROUND = opt('round', 5);
const GFLOP = 1.312;
const THREADS = opt('threads', availableParallelism());

const info = await initBackend('wasm');
console.log(`backend: ${info.reason}`);
const native = loadNativeKernels();
if (!native.ok) {
  console.log(`native kernels unavailable: ${native.reason}`);
  process.exit(0);
}
console.log(`native: ${native.version}`);

const x = tf.add(seededUniform([8, 32, 32, 3], 0.5, 1), 0.5);
const target = tf.add(seededUniform([8, 64, 64, 3], 0.5, 2), 0.5);

/** One model + optimizer, set up by `use` before each of its rounds. */
function makeVariant(name, { kernels, fused, layout = 'nhwc', threads = THREADS }) {
  const vars = [
    [5, 3, 64],
    [3, 64, 32],
    [3, 32, 12],
  ].map(([k, cin, cout], i) => {
    const { w, b } = initConv(k, cin, cout, 1000 + i, true);
    return { w: tf.variable(w), b: tf.variable(b) };
  });
  const layer = (h, { w, b }, relu) => {
    if (fused) return conv2dBiasAct(h, w, b, { activation: relu ? 'relu' : 'linear' });
    const y = conv2d(h, w, b);
    return relu ? tf.relu(y) : y;
  };
  const forward = () => {
    let h = layer(x, vars[0], true);
    h = layer(h, vars[1], true);
    return pixelShuffle(layer(h, vars[2], false), 2);
  };
  const adam = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const use = () => {
    if (kernels === 'native') {
      registerNativeKernels();
      configureNative({ layout, threads });
    } else {
      unregisterNativeKernels();
    }
  };
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
  return { name, use, step, times, losses };
}

const variants = [
  makeVariant('wasm + JS kernels', { kernels: 'js', fused: false }),
  makeVariant('wasm + native', { kernels: 'native', fused: false }),
  makeVariant('wasm + native, fused', { kernels: 'native', fused: true }),
];
if (args.includes('--one-thread')) {
  variants.push(makeVariant('wasm + native, fused, 1 thread', { kernels: 'native', fused: true, threads: 1 }));
}
if (args.includes('--layout-any')) {
  variants.push(makeVariant('wasm + native, fused, layout any', { kernels: 'native', fused: true, layout: 'any' }));
}

for (const v of variants) {
  v.use();
  for (let i = 0; i < WARMUP; i++) v.step(false);
}
const tensorsBefore = tf.memory().numTensors;
for (let done = 0; done < STEPS; done += ROUND) {
  for (const v of variants) {
    v.use();
    for (let i = 0; i < Math.min(ROUND, STEPS - done); i++) v.step(true);
  }
}
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const base = median(variants[0].times);
for (const v of variants) {
  const t = [...v.times].sort((a, b) => a - b);
  const m = median(t);
  console.log(
    `${v.name.padEnd(34)} ${m.toFixed(1).padStart(6)} ms/step  ${(GFLOP / (m / 1000)).toFixed(1).padStart(5)} GFLOP/s  ` +
      `×${(base / m).toFixed(2)} vs JS  (min ${t[0].toFixed(1)}, max ${t[t.length - 1].toFixed(1)}; ` +
      `loss ${v.losses[0].toFixed(4)} → ${v.losses[v.losses.length - 1].toFixed(4)})`,
  );
}
console.log(`tensors ${tensorsBefore} → ${tf.memory().numTensors} over ${STEPS} steps per variant`);
if (args.includes('--plans')) for (const line of nativeStats().describe) console.log(`  ${line}`);
