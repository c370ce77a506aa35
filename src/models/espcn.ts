// ESPCN baseline generator (SEED_SPEC §3.1): conv5×5 3→C, LReLU 0.1, conv3×3 C→C, LReLU 0.1,
// conv3×3 C→3r², pixel shuffle ×r, no output activation (the output is unbounded; clip only for
// display). Params: 212 656 for C=128, r=4; 69 488 for C=64, r=4.

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed } from '../data/prng.js';
import { conv2d, countParams, initConv, pixelShuffle } from './ops.js';

export interface EspcnConfig {
  /** Hidden channels C (the author used 128, the paper 64). */
  channels: number;
  /** Upscaling factor r. */
  scale: number;
  /** Weight-init seed. */
  seed: number;
}

export interface Generator {
  /** Trainable variables by stable local name (`conv1.w`, `conv1.b`, …), for optimizers and checkpoints. */
  variables: Record<string, tf.Variable>;
  /** LR [n, h, w, 3] → SR [n, h·r, w·r, 3]. */
  apply(x: tf.Tensor4D): tf.Tensor4D;
  paramCount: number;
  /** Frees the variables. */
  dispose(): void;
}

const LRELU = 0.1;

function positiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Builds an ESPCN with PyTorch-default init (U(±1/√fan_in)) drawn from `cfg.seed`. */
export function createEspcn(cfg: EspcnConfig): Generator {
  const c = positiveInt('espcn.channels', cfg.channels);
  const r = positiveInt('espcn.scale', cfg.scale);
  if (!Number.isInteger(cfg.seed)) throw new RangeError(`espcn.seed must be an integer, got ${JSON.stringify(cfg.seed)}`);

  const layers: Array<[name: string, k: number, cin: number, cout: number]> = [
    ['conv1', 5, 3, c],
    ['conv2', 3, c, c],
    ['conv3', 3, c, 3 * r * r],
  ];
  const variables: Record<string, tf.Variable> = {};
  layers.forEach(([name, k, cin, cout], i) => {
    const { w, b } = initConv(k, cin, cout, deriveSeed(cfg.seed, i), true);
    variables[`${name}.w`] = tf.variable(w, true);
    variables[`${name}.b`] = tf.variable(b!, true);
    w.dispose();
    b!.dispose();
  });
  const v = (name: string) => variables[name]!;

  const apply = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      let h = conv2d(x, v('conv1.w') as tf.Tensor4D, v('conv1.b') as tf.Tensor1D);
      h = tf.leakyRelu(h, LRELU);
      h = conv2d(h, v('conv2.w') as tf.Tensor4D, v('conv2.b') as tf.Tensor1D);
      h = tf.leakyRelu(h, LRELU);
      h = conv2d(h, v('conv3.w') as tf.Tensor4D, v('conv3.b') as tf.Tensor1D);
      return pixelShuffle(h, r);
    });

  return {
    variables,
    apply,
    paramCount: countParams(variables),
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
