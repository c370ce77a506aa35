// The author's conv–BatchNorm discriminators (docs/seed.md §5). Both are a stack of
//   block(k, cin→cout, dilation) = conv k×k 'same' without bias → BatchNorm → LeakyReLU 0.1
// with MaxPool 2 (floor) after some blocks, then a plain conv1×1 →1 with bias giving a logit map.
//
// §5.1 shallow baseline (d_baseline.py), createPatchDiscriminator:
//   block5 3→m, block3 m→m, pool, block3 m→2m, block3 2m→2m, pool, block3 2m→4m, block1 4m→8m,
//   conv1×1 8m→1 → logits at 1/4 resolution, cropped by cropPx per side.
//   m = 32: 174 817 trainable parameters (plus 1 152 BatchNorm running-stat values).
// §5.2 final dilated D (DiscriminatorDilationNetwork), createDilatedDiscriminator:
//   block5 3→m, block3 m→m, pool, block3 m→2m, block3 2m→2m, pool, block3 2m→4m, block3 4m→4m,
//   pool, block3 4m→8m, block3 d2 8m→8m, block3 d4 8m→8m, block3 8m→8m, block1 8m→16m,
//   block1 16m→m, conv1×1 m→1 → logits at 1/8 resolution (no crop in the author's version).
//   m = 32: 2 504 001 trainable parameters (plus 4 032 BatchNorm running-stat values).
//
// BatchNorm runs in training mode for both the G step and the D step (the author keeps D in train
// mode); its running statistics are only an EMA for inference mode, updated through the
// StatUpdates side channel (stat-updates.ts): `apply` queues, `commitStats()` assigns.

import * as tf from '@tensorflow/tfjs-core';
import { batchNormLeakyRelu, createBatchNorm, type BatchNormLayer } from './batchnorm.js';
import type { ApplyOptions, Discriminator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { applyConv, convFlops, countParams, createConv, type ConvLayer } from './ops.js';
import { StatUpdates } from './stat-updates.js';
import { deriveSeed } from '../../util/prng.js';

export type { ApplyOptions } from './network.js';
/** The §5.1 and §5.2 discriminators share the Discriminator shape. */
export type PatchDiscriminator = Discriminator;

export interface PatchDiscriminatorConfig {
  /** Base channel count m (default in the author's runs: 32). */
  mid: number;
  /** Weight-init seed. */
  seed: number;
  /** Logit-map pixels cropped off each side (the author used 16 on 63² maps in §5.1). Default 0. */
  cropPx?: number;
}

const LRELU = 0.1;

interface Block {
  name: string;
  k: number;
  cin: number;
  cout: number;
  dilation: number;
  poolAfter: boolean;
}

const block = (name: string, k: number, cin: number, cout: number, poolAfter = false, dilation = 1): Block => ({
  name,
  k,
  cin,
  cout,
  dilation,
  poolAfter,
});

function shallowBlocks(m: number): Block[] {
  return [
    block('b1', 5, 3, m),
    block('b2', 3, m, m, true),
    block('b3', 3, m, 2 * m),
    block('b4', 3, 2 * m, 2 * m, true),
    block('b5', 3, 2 * m, 4 * m),
    block('b6', 1, 4 * m, 8 * m),
  ];
}

function dilatedBlocks(m: number): Block[] {
  return [
    block('b1', 5, 3, m),
    block('b2', 3, m, m, true),
    block('b3', 3, m, 2 * m),
    block('b4', 3, 2 * m, 2 * m, true),
    block('b5', 3, 2 * m, 4 * m),
    block('b6', 3, 4 * m, 4 * m, true),
    block('b7', 3, 4 * m, 8 * m),
    block('b8', 3, 8 * m, 8 * m, false, 2),
    block('b9', 3, 8 * m, 8 * m, false, 4),
    block('b10', 3, 8 * m, 8 * m),
    block('b11', 1, 8 * m, 16 * m),
    block('b12', 1, 16 * m, m),
  ];
}

/** Builds a conv–BN–LReLU discriminator from its block list (what: the config prefix in errors). */
function buildConvBnDiscriminator(what: string, blocks: Block[], cfg: PatchDiscriminatorConfig): Discriminator {
  positiveInt(`${what}.mid`, cfg.mid);
  const seed = integerSeed(`${what}.seed`, cfg.seed);
  const cropPx = cfg.cropPx ?? 0;
  if (!Number.isInteger(cropPx) || cropPx < 0) {
    throw new RangeError(`${what}.cropPx must be an integer ≥ 0, got ${JSON.stringify(cfg.cropPx)}`);
  }

  const variables: Record<string, tf.Variable> = {};
  const stats: Record<string, tf.Variable> = {};
  // Seeds by block index (deriveSeed(seed, i)), as the §5.1 network always had.
  const layers: Array<{ blk: Block; conv: ConvLayer; bn: BatchNormLayer }> = blocks.map((blk, i) => ({
    blk,
    conv: createConv(
      variables,
      `${blk.name}.conv`,
      { k: blk.k, cin: blk.cin, cout: blk.cout, bias: false, dilation: blk.dilation },
      deriveSeed(seed, i),
    ),
    bn: createBatchNorm(variables, stats, `${blk.name}.bn`, blk.cout),
  }));
  const last = blocks[blocks.length - 1].cout;
  const out = createConv(variables, 'out', { k: 1, cin: last, cout: 1 }, deriveSeed(seed, blocks.length));
  const updates = new StatUpdates();

  const outputSize = (h: number, w: number): [number, number] => {
    let oh = h;
    let ow = w;
    for (const blk of blocks) {
      if (blk.poolAfter) {
        oh = Math.floor(oh / 2);
        ow = Math.floor(ow / 2);
      }
    }
    oh -= 2 * cropPx;
    ow -= 2 * cropPx;
    if (oh < 1 || ow < 1) throw new RangeError(`${what}.apply: input ${h}×${w} is too small (cropPx ${cropPx})`);
    return [oh, ow];
  };

  const apply = (x: tf.Tensor4D, opts: ApplyOptions): tf.Tensor4D => {
    if (opts == null || typeof opts.training !== 'boolean') {
      throw new TypeError(`${what}.apply: opts.training must be a boolean, got ${JSON.stringify(opts)}`);
    }
    updates.commit();
    const [hOut, wOut] = outputSize(x.shape[1], x.shape[2]);
    return tf.tidy(() => {
      let h: tf.Tensor4D = x;
      for (const { blk, conv, bn } of layers) {
        h = applyConv(conv, h);
        h = batchNormLeakyRelu(h, bn, opts.training, updates, LRELU);
        if (blk.poolAfter) h = tf.maxPool(h, 2, 2, 'valid');
      }
      h = applyConv(out, h);
      if (cropPx > 0) h = tf.slice(h, [0, cropPx, cropPx, 0], [-1, hOut, wOut, -1]);
      return h;
    });
  };

  const flopsPerForward = (h: number, w: number): number => {
    let total = 0;
    let ch = h;
    let cw = w;
    for (const { blk, conv } of layers) {
      total += convFlops(conv, ch, cw);
      if (blk.poolAfter) {
        ch = Math.floor(ch / 2);
        cw = Math.floor(cw / 2);
      }
    }
    return total + convFlops(out, ch, cw);
  };

  return {
    variables,
    stats,
    apply,
    commitStats: () => updates.commit(),
    outputSize,
    paramCount: countParams(variables),
    flopsPerForward,
    dispose: () => {
      updates.dispose();
      Object.values(variables).forEach((t) => t.dispose());
      Object.values(stats).forEach((t) => t.dispose());
    },
  };
}

/** Builds the §5.1 shallow patch discriminator with PyTorch-default init drawn from `cfg.seed`. */
export function createPatchDiscriminator(cfg: PatchDiscriminatorConfig): Discriminator {
  return buildConvBnDiscriminator('discriminator', shallowBlocks(positiveInt('discriminator.mid', cfg.mid)), cfg);
}

/** Builds the §5.2 final dilated discriminator (logits at 1/8 resolution) from `cfg.seed`. */
export function createDilatedDiscriminator(cfg: PatchDiscriminatorConfig): Discriminator {
  return buildConvBnDiscriminator('dilatedDiscriminator', dilatedBlocks(positiveInt('dilatedDiscriminator.mid', cfg.mid)), cfg);
}
