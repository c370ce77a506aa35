// Where one training step's time goes on the wasm-native rung, by tfjs kernel (tf.profile), in fp32 or
// bf16 (docs/native.md, "bf16").
//
//   npm run bench -- profile [--model g_final] [--precision fp32|bf16] [--layout nhwc|any]
//
// The steps are bench/lib/steps.mjs' (espcn, d_final, g_final, seed_g, seed_d, seed_step). Two warm-up
// steps, then one profiled; prints the kernels taking the most time, with their call counts.

import * as tf from '@tensorflow/tfjs-core';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const model = opt('model', 'g_final');
const precision = opt('precision', 'fp32');
const layout = opt('layout', 'nhwc');

const { selectBackend } = await import('../dist/models/backend/ladder.js');
const sel = await selectBackend('wasm-native');
const { configureNative } = await import('../dist/models/backend/native/addon.js');
configureNative({ precision, layout });
const { buildStep } = await import('./lib/steps.mjs');
const { step, sync } = await buildStep(model);
for (let i = 0; i < 2; i++) {
  step();
  await sync();
}
const info = await tf.profile(async () => {
  step();
  await sync();
});
const byKernel = new Map();
for (const k of info.kernels) {
  const ms = await k.kernelTimeMs;
  const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
  e.calls++;
  e.ms += typeof ms === 'number' ? ms : 0;
  byKernel.set(k.name, e);
}
const total = [...byKernel.values()].reduce((n, e) => n + e.ms, 0);
console.log(`${model} on ${sel.name}, ${precision}, activations ${layout}: ${total.toFixed(0)} ms in kernels (${sel.reason})`);
console.log(`${'kernel'.padEnd(34)}${'calls'.padStart(7)}${'ms'.padStart(10)}${'share'.padStart(8)}`);
for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 16)) {
  console.log(
    `${name.padEnd(34)}${String(e.calls).padStart(7)}${e.ms.toFixed(1).padStart(10)}${`${((100 * e.ms) / total).toFixed(0)}%`.padStart(8)}`,
  );
}
