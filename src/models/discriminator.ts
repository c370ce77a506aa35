// Baseline "shallow" patch discriminator (SEED_SPEC §5.1, the author's d_baseline.py):
//   block(k, cin→cout) = conv k×k 'same' without bias → BatchNorm → LeakyReLU 0.1
//   block5 3→m, block3 m→m, maxPool 2, block3 m→2m, block3 2m→2m, maxPool 2, block3 2m→4m,
//   block1 4m→8m, conv1×1 8m→1 with bias → logit map at 1/4 resolution, cropped by cropPx per side.
// For m = 32: 174 817 trainable parameters (plus 1 152 BatchNorm running-stat values).
//
// BatchNorm running statistics, and why they are committed through a side channel:
// in training mode the layer normalises with batch statistics (the author keeps D in train mode for
// both the G step and the D step), and the running mean/var are only an EMA for inference mode
// (Keras momentum 0.9 = PyTorch momentum 0.1, eps 1e-5, unbiased batch variance in the EMA as in
// PyTorch). `apply` is normally called inside tf.variableGrads, so instead of assigning there it
// stashes each call's batch moments (kept tensors, [C] each) and `commitStats()` folds them into the
// running-stat variables in call order, outside the tape, after the optimizer step. The tape then
// never sees an assign (it records only the copies of the moments, which lead nowhere and are pruned),
// and the update order is PyTorch's (one EMA step per training-mode forward, in call order).
// As a safety net every `apply` first commits what is still pending, so
// at most one call's moments wait and nothing accumulates if a caller never commits (that late
// commit may run under a tape, which is harmless: none of its inputs depend on the variables being
// differentiated, so the tape prunes it).

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed } from '../data/prng.js';
import { conv2d, countParams, initConv } from './ops.js';

export interface PatchDiscriminatorConfig {
  /** Base channel count m (default in the author's runs: 32). */
  mid: number;
  /** Weight-init seed. */
  seed: number;
  /** Logit-map pixels cropped off each side (the author used 16 on 63² maps). Default 0. */
  cropPx?: number;
}

export interface ApplyOptions {
  /** true: normalise with batch statistics and queue a running-stat update; false: use running stats. */
  training: boolean;
}

export interface PatchDiscriminator {
  /** Trainable variables by stable local name (`b1.conv.w`, `b1.bn.gamma`, …, `out.w`, `out.b`). */
  variables: Record<string, tf.Variable>;
  /** BatchNorm running statistics (non-trainable): `b1.bn.mean`, `b1.bn.var`, … */
  stats: Record<string, tf.Variable>;
  /** [n, H, W, 3] → logit map [n, ⌊⌊H/2⌋/2⌋ − 2·cropPx, ⌊⌊W/2⌋/2⌋ − 2·cropPx, 1]. */
  apply(x: tf.Tensor4D, opts: ApplyOptions): tf.Tensor4D;
  /** Folds the batch moments queued by training-mode `apply` calls into `stats`. Call outside any tape. */
  commitStats(): void;
  /** Trainable parameter count (stats excluded). */
  paramCount: number;
  /** Frees variables, stats and anything pending. */
  dispose(): void;
}

const LRELU = 0.1;
const BN_MOMENTUM = 0.9;
const BN_EPS = 1e-5;

interface Block {
  name: string;
  k: number;
  cin: number;
  cout: number;
  poolAfter: boolean;
}

interface PendingMoments {
  block: string;
  mean: tf.Tensor1D;
  /** Unbiased (n/(n−1)) batch variance, as PyTorch uses for its running estimate. */
  variance: tf.Tensor1D;
}

function shallowBlocks(m: number): Block[] {
  return [
    { name: 'b1', k: 5, cin: 3, cout: m, poolAfter: false },
    { name: 'b2', k: 3, cin: m, cout: m, poolAfter: true },
    { name: 'b3', k: 3, cin: m, cout: 2 * m, poolAfter: false },
    { name: 'b4', k: 3, cin: 2 * m, cout: 2 * m, poolAfter: true },
    { name: 'b5', k: 3, cin: 2 * m, cout: 4 * m, poolAfter: false },
    { name: 'b6', k: 1, cin: 4 * m, cout: 8 * m, poolAfter: false },
  ];
}

/** Builds the §5.1 shallow patch discriminator with PyTorch-default init drawn from `cfg.seed`. */
export function createPatchDiscriminator(cfg: PatchDiscriminatorConfig): PatchDiscriminator {
  const m = cfg.mid;
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 1) {
    throw new RangeError(`discriminator.mid must be a positive integer, got ${JSON.stringify(m)}`);
  }
  if (!Number.isInteger(cfg.seed)) {
    throw new RangeError(`discriminator.seed must be an integer, got ${JSON.stringify(cfg.seed)}`);
  }
  const cropPx = cfg.cropPx ?? 0;
  if (!Number.isInteger(cropPx) || cropPx < 0) {
    throw new RangeError(`discriminator.cropPx must be an integer ≥ 0, got ${JSON.stringify(cfg.cropPx)}`);
  }

  const blocks = shallowBlocks(m);
  const variables: Record<string, tf.Variable> = {};
  const stats: Record<string, tf.Variable> = {};
  blocks.forEach((blk, i) => {
    const { w } = initConv(blk.k, blk.cin, blk.cout, deriveSeed(cfg.seed, i), false);
    variables[`${blk.name}.conv.w`] = tf.variable(w, true);
    w.dispose();
    variables[`${blk.name}.bn.gamma`] = tf.variable(tf.ones([blk.cout]), true);
    variables[`${blk.name}.bn.beta`] = tf.variable(tf.zeros([blk.cout]), true);
    stats[`${blk.name}.bn.mean`] = tf.variable(tf.zeros([blk.cout]), false);
    stats[`${blk.name}.bn.var`] = tf.variable(tf.ones([blk.cout]), false);
  });
  {
    const { w, b } = initConv(1, 8 * m, 1, deriveSeed(cfg.seed, blocks.length), true);
    variables['out.w'] = tf.variable(w, true);
    variables['out.b'] = tf.variable(b!, true);
    w.dispose();
    b!.dispose();
  }
  const v = (name: string) => variables[name]!;
  let pending: PendingMoments[] = [];

  const batchNorm = (x: tf.Tensor4D, blk: string, training: boolean): tf.Tensor4D => {
    const gamma = v(`${blk}.bn.gamma`);
    const beta = v(`${blk}.bn.beta`);
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    if (training) {
      ({ mean, variance } = tf.moments(x, [0, 1, 2]));
      const n = x.shape[0] * x.shape[1] * x.shape[2];
      pending.push({
        block: blk,
        mean: tf.keep(mean.clone()) as tf.Tensor1D,
        variance: tf.keep(tf.mul(variance, n > 1 ? n / (n - 1) : 1)) as tf.Tensor1D,
      });
    } else {
      mean = stats[`${blk}.bn.mean`]!;
      variance = stats[`${blk}.bn.var`]!;
    }
    // y = x·scale + shift with per-channel scale = γ/√(σ²+ε), shift = β − μ·scale: two full-size
    // ops instead of four.
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, BN_EPS)));
    const shift = tf.sub(beta, tf.mul(mean, scale));
    return tf.add(tf.mul(x, scale), shift);
  };

  const commitStats = (): void => {
    if (pending.length === 0) return;
    const todo = pending;
    pending = [];
    tf.tidy(() => {
      for (const p of todo) {
        const rm = stats[`${p.block}.bn.mean`]!;
        const rv = stats[`${p.block}.bn.var`]!;
        rm.assign(tf.add(tf.mul(rm, BN_MOMENTUM), tf.mul(p.mean, 1 - BN_MOMENTUM)));
        rv.assign(tf.add(tf.mul(rv, BN_MOMENTUM), tf.mul(p.variance, 1 - BN_MOMENTUM)));
      }
    });
    for (const p of todo) {
      p.mean.dispose();
      p.variance.dispose();
    }
  };

  const apply = (x: tf.Tensor4D, opts: ApplyOptions): tf.Tensor4D => {
    if (opts == null || typeof opts.training !== 'boolean') {
      throw new TypeError(`discriminator.apply: opts.training must be a boolean, got ${JSON.stringify(opts)}`);
    }
    commitStats();
    const hOut = Math.floor(Math.floor(x.shape[1] / 2) / 2) - 2 * cropPx;
    const wOut = Math.floor(Math.floor(x.shape[2] / 2) / 2) - 2 * cropPx;
    if (hOut < 1 || wOut < 1) {
      throw new RangeError(`discriminator.apply: input ${x.shape[1]}×${x.shape[2]} is too small for cropPx ${cropPx}`);
    }
    return tf.tidy(() => {
      let h: tf.Tensor4D = x;
      for (const blk of blocks) {
        h = conv2d(h, v(`${blk.name}.conv.w`) as tf.Tensor4D, null);
        h = batchNorm(h, blk.name, opts.training);
        h = tf.leakyRelu(h, LRELU);
        if (blk.poolAfter) h = tf.maxPool(h, 2, 2, 'valid');
      }
      h = conv2d(h, v('out.w') as tf.Tensor4D, v('out.b') as tf.Tensor1D);
      if (cropPx > 0) h = tf.slice(h, [0, cropPx, cropPx, 0], [-1, hOut, wOut, -1]);
      return h;
    });
  };

  return {
    variables,
    stats,
    apply,
    commitStats,
    paramCount: countParams(variables),
    dispose: () => {
      for (const p of pending) {
        p.mean.dispose();
        p.variance.dispose();
      }
      pending = [];
      Object.values(variables).forEach((t) => t.dispose());
      Object.values(stats).forEach((t) => t.dispose());
    },
  };
}
