// Training steps the benchmarks time, built on tfjs' current backend (select it first). Shared by
// bench/trainer.mjs (every rung beside PyTorch) and the GPU probe (bench/lib/gpu-probe-main.mjs), so both
// time the same work. Each builder returns:
//
//   step()    queues one training step (on a GPU the calls only queue work)
//   sync()    waits for the queued steps: reads one value every step writes
//   gflop     model FLOPs of one step, counted as `srgan models` counts them (docs/backends.md): a
//             trained network's forward + backward = 3 × its forward; the perceptual network's work and
//             the recomputed forward of gradient checkpointing are not counted
//   what      one line on the step's shapes
//   dispose() frees its tensors
//
//   espcn       the reference step (docs/backends.md): batch 8 of 32×32×3, conv5 3→64 ReLU, conv3 64→32
//               ReLU, conv3 32→12, pixel shuffle ×2, MSE, Adam(1e-3); 1.312 GFLOP a step.
//   d_final     the seed's discriminator step at bench size (docs/seed.md §5.2): batch 4 of 128×128×3.
//   g_final     the seed's final generator at bench size, MSE only (docs/seed.md §3.3): batch 1 of 64×64 LR.
//   seed_g      the seed-final-x2 preset's G step as the trainer runs it (Gan.stepLazy, no D step): pixel,
//               perceptual (full and half) and capped adversarial losses, batch 1 of 256² HR patches.
//   seed_d      one of its D steps: D on shift crops of G's output and the label, the seed's D loss, Adam.
//   seed_step   one whole trainer step of that preset: the G step and its 10 D steps.

import * as tf from '@tensorflow/tfjs-core';
import { conv2d, initConv, pixelShuffle, seededUniform } from '../../dist/models/archs/ops.js';
import { discriminatorLoss, mse, shiftCrop } from '../../dist/models/losses/pixel-adversarial.js';
import { createDilatedDiscriminator } from '../../dist/models/archs/discriminator.js';
import { createFinalGenerator } from '../../dist/models/archs/generator-final.js';
import { countFlops } from '../../dist/models/archs/flops.js';
import { resolveConfig } from '../../dist/config/resolve.js';
import { Gan } from '../../dist/models/train/gan.js';
import { createEma } from '../../dist/models/train/ema.js';
import { createPerceptualLoss } from '../../dist/models/losses/perceptual.js';
import { mulberry32 } from '../../dist/util/prng.js';

export const STEP_MODELS = ['espcn', 'd_final', 'g_final', 'seed_g', 'seed_d', 'seed_step'];

const rand = (shape, seed) => tf.add(seededUniform(shape, 0.5, seed), 0.5);

/** Reading `t` waits for every step queued before (one step writes it). */
const syncOn = (get) => async () => void (await get().data());

/**
 * Builds one of STEP_MODELS. `patch` overrides the seed steps' HR patch side (256 in the preset), for
 * quick runs on slow adapters.
 */
export async function buildStep(model, { patch } = {}) {
  if (model === 'espcn') {
    const layers = [
      [5, 3, 64],
      [3, 64, 32],
      [3, 32, 12],
    ].map(([k, ci, co], i) => {
      const { w, b } = initConv(k, ci, co, 10 + i, true);
      return { w: tf.variable(w), b: tf.variable(b) };
    });
    const x = rand([8, 32, 32, 3], 1);
    const y = rand([8, 64, 64, 3], 2);
    const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
    const vars = layers.flatMap((l) => [l.w, l.b]);
    const G = (t) => {
      let h = t;
      layers.forEach((l, i) => {
        h = conv2d(h, l.w, l.b, {});
        if (i < 2) h = tf.relu(h);
      });
      return pixelShuffle(h, 2);
    };
    return {
      step: () => tf.dispose(opt.minimize(() => mse(G(x), y), true, vars)),
      sync: syncOn(() => vars.at(-1)),
      gflop: 1.312,
      what: 'batch 8 of 32×32×3 → 64×64, 3 convs, MSE, Adam',
      dispose: () => {
        tf.dispose([x, y, ...vars]);
        opt.dispose();
      },
    };
  }
  if (model === 'd_final') {
    const D = createDilatedDiscriminator({ mid: 32, seed: 3 });
    const fake = rand([4, 128, 128, 3], 4);
    const real = rand([4, 128, 128, 3], 5);
    const opt = tf.train.adam(1e-4, 0.9, 0.999, 1e-8);
    const vars = Object.values(D.variables);
    return {
      step: () => {
        tf.dispose(
          opt.minimize(
            () => tf.mean(tf.softplus(tf.sub(D.apply(fake, { training: true }), D.apply(real, { training: true })))),
            true,
            vars,
          ),
        );
        D.commitStats?.();
      },
      sync: syncOn(() => vars.at(-1)),
      gflop: (2 * 3 * countFlops(D, [4, 128, 128, 3])) / 1e9,
      what: 'dilated D, batch 4 of 128×128×3, fake and real, Adam',
      dispose: () => {
        tf.dispose([fake, real]);
        opt.dispose();
        D.dispose();
      },
    };
  }
  if (model === 'g_final') {
    const G = createFinalGenerator({ seed: 6 });
    const x = rand([1, 64, 64, 3], 7);
    const y = rand([1, 128, 128, 3], 8);
    const opt = tf.train.adam(1e-4, 0.9, 0.999, 1e-8);
    const vars = Object.values(G.variables);
    return {
      step: () => tf.dispose(opt.minimize(() => mse(G.apply(x), y), true, vars)),
      sync: syncOn(() => vars.at(-1)),
      gflop: (3 * countFlops(G, [1, 64, 64, 3])) / 1e9,
      what: 'final G, batch 1 of 64×64 LR → 128×128, MSE, Adam',
      dispose: () => {
        tf.dispose([x, y]);
        opt.dispose();
        G.dispose();
      },
    };
  }
  if (model === 'seed_g' || model === 'seed_d' || model === 'seed_step') return buildSeedStep(model, patch);
  throw new Error(`unknown step model "${model}" (one of ${STEP_MODELS.join(', ')})`);
}

/** The seed-final-x2 preset's step, through the trainer's own Gan and perceptual loss. */
async function buildSeedStep(model, patch) {
  const config = resolveConfig({ preset: 'seed-final-x2', ...(patch ? { patchSize: patch } : {}) });
  const perceptualRand = mulberry32(5);
  const perceptual = await createPerceptualLoss({ ...config.perceptual, maxShift: config.maxShift }, perceptualRand);
  const gan = new Gan(config, { perceptual, replay: [perceptualRand], ema: (G) => createEma(G.variables, config.emaDecay ?? 0.999) });
  const P = config.patchSize;
  const n = config.batchSize;
  const hr = rand([n, P, P, 3], 11);
  const lr = tf.avgPool(hr, 2, 2, 'valid');
  const gF = countFlops(gan.G, [n, P / 2, P / 2, 3]);
  const dSide = P - config.maxShift;
  const dF = countFlops(gan.D, [n, dSide, dSide, 3]);
  const shape = `batch ${n} of ${P}² HR`;
  const dispose = () => {
    tf.dispose([hr, lr]);
    gan.dispose();
    perceptual?.dispose();
  };
  if (model === 'seed_d') {
    // The D step of Gan.stepLazy on a detached G output: shift crops, the seed's D loss, Adam.
    const y = tf.tidy(() => tf.clipByValue(gan.G.apply(lr), 0, 1));
    const shift = mulberry32(3);
    const opt = tf.train.adam((1e-4 * config.batchSize) / 8, 0.9, 0.999, 1e-8);
    const vars = Object.values(gan.D.variables);
    return {
      step: () => {
        tf.dispose(
          opt.minimize(
            () => {
              const [cy, cl] = shiftCrop([y, hr], config.maxShift, shift);
              return discriminatorLoss(gan.D.apply(cy, { training: true }), gan.D.apply(cl, { training: true }));
            },
            true,
            vars,
          ),
        );
        gan.D.commitStats();
      },
      sync: syncOn(() => vars.at(-1)),
      gflop: (2 * 3 * dF) / 1e9,
      what: `seed-final-x2 D step, ${shape} cropped to ${dSide}²`,
      dispose: () => {
        y.dispose();
        opt.dispose();
        dispose();
      },
    };
  }
  const dSteps = model === 'seed_g' ? 0 : config.dStepsPerG;
  let last = null;
  let stepNo = 0;
  return {
    step: () => {
      last?.values.dispose();
      last = gan.stepLazy(hr, lr, { lrG: 1e-5, lrD: 1e-5, dSteps, step: ++stepNo });
    },
    sync: syncOn(() => last.values),
    // G forward + backward, and D on fake and real crops forward + backward in the G step and each D step.
    gflop: (3 * gF + (1 + dSteps) * 2 * 3 * dF) / 1e9,
    what:
      model === 'seed_g'
        ? `seed-final-x2 G step, ${shape}: pixel, perceptual, adversarial`
        : `seed-final-x2 trainer step, ${shape}: G step and ${dSteps} D steps`,
    dispose: () => {
      last?.values.dispose();
      dispose();
    },
  };
}
