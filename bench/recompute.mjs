// What gradient checkpointing (config `recompute`, src/models/archs/recompute.ts) saves and costs: for a
// preset's generator, the tensor memory held once the forward pass of a gradient is done, and the time of
// one forward + backward (a pixel-loss G step without the optimizer), with recompute off and on, side by
// side in one process. Repeated; medians.
//
//   npm run bench -- recompute [--preset seed-final-x2] [--lr 64] [--batch 1] [--repeats 3] [--backend wasm-native]
//
// --lr is the LR side (the HR patch is lr × scale). Without recompute the article's seed-final-x2 size
// (--lr 128) does not fit the 4 GiB wasm heap; the default, 64, fits both ways.

import * as tf from '@tensorflow/tfjs-core';
import { resolveConfig } from '../dist/config/resolve.js';
import { selectBackend } from '../dist/models/backend/ladder.js';
import { buildGenerator } from '../dist/models/archs/build.js';
import { seededUniform } from '../dist/models/archs/ops.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const preset = opt('preset', 'seed-final-x2');
const LR = Number(opt('lr', 64));
const BATCH = Number(opt('batch', 1));
const REPEATS = Number(opt('repeats', 3));

const config = resolveConfig({ preset, backend: opt('backend', 'wasm-native') });
const sel = await selectBackend(config.backend);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const nets = { off: buildGenerator(config.generator, config.scale, 1, false), on: buildGenerator(config.generator, config.scale, 1, true) };
const lr = tf.add(seededUniform([BATCH, LR, LR, 3], 0.5, 2), 0.5);
const hr = tf.add(seededUniform([BATCH, LR * config.scale, LR * config.scale, 3], 0.5, 3), 0.5);

const samples = { off: { ms: [], heldMiB: [] }, on: { ms: [], heldMiB: [] } };
for (let r = 0; r < REPEATS; r++) {
  for (const mode of ['off', 'on']) {
    const g = nets[mode];
    const before = tf.memory().numBytes;
    let held = 0;
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const loss = tf.mean(tf.squaredDifference(g.apply(lr), hr));
      held = tf.memory().numBytes - before;
      return loss;
    }, Object.values(g.variables));
    await value.data();
    const ms = performance.now() - t0;
    tf.dispose([value, ...Object.values(grads)]);
    samples[mode].ms.push(ms);
    samples[mode].heldMiB.push(held / 2 ** 20);
  }
}

const row = (mode) => ({ ms: median(samples[mode].ms), heldMiB: median(samples[mode].heldMiB) });
const off = row('off');
const on = row('on');
console.log(`${preset} generator on ${sel.name}, batch ${BATCH} of ${LR}² LR (${LR * config.scale}² HR), median of ${REPEATS}`);
console.log(`recompute off: held after forward ${off.heldMiB.toFixed(0)} MiB, forward+backward ${(off.ms / 1000).toFixed(2)} s`);
console.log(`recompute on:  held after forward ${on.heldMiB.toFixed(0)} MiB, forward+backward ${(on.ms / 1000).toFixed(2)} s`);
console.log(`ratio on/off: memory ${(on.heldMiB / off.heldMiB).toFixed(3)}, time ${(on.ms / off.ms).toFixed(2)}`);
console.log(JSON.stringify({ bench: 'recompute', preset, backend: sel.name, lr: LR, batch: BATCH, repeats: REPEATS, off, on }));
