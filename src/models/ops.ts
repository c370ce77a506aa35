// Building blocks shared by our networks: pixel shuffle with a gradient on every backend, a conv
// helper, and reproducible PyTorch-style initialisation from a seed.

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed, mulberry32 } from '../data/prng.js';

/**
 * Pixel shuffle / depth-to-space, NHWC, block-major like `tf.depthToSpace`:
 * out[h·r+i, w·r+j, c] = in[h, w, (i·r+j)·C + c]. Written as reshape/transpose/reshape, so it has
 * a gradient everywhere (tfjs has none for DepthToSpace).
 */
export function pixelShuffle(x: tf.Tensor4D, r: number): tf.Tensor4D {
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`pixelShuffle: r must be a positive integer, got ${r}`);
  const [n, h, w, cr2] = x.shape;
  if (cr2 % (r * r) !== 0) {
    throw new RangeError(`pixelShuffle: channels (${cr2}) must be divisible by r² (${r * r})`);
  }
  if (r === 1) return x;
  const c = cr2 / (r * r);
  return tf.tidy(() =>
    tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, r, r, c]), [0, 1, 3, 2, 4, 5]), [n, h * r, w * r, c]),
  );
}

export interface Conv2dOptions {
  /** Stride in both axes. Default 1. */
  stride?: number;
  /** 'same' (default), 'valid', or a symmetric pixel count. */
  pad?: 'same' | 'valid' | number;
  /** Dilation in both axes. Default 1 (gradients for > 1 are not available yet). */
  dilation?: number;
}

/** NHWC convolution with an HWIO filter and an optional per-channel bias. */
export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  b: tf.Tensor1D | null,
  { stride = 1, pad = 'same', dilation = 1 }: Conv2dOptions = {},
): tf.Tensor4D {
  // Deliberately not tf.fused.conv2d: its gradient (a customGrad) computes dx even for the first
  // layer, whose input needs none, and it measured slower on wasm side by side (92 vs 108 ms per
  // reference step, `node bench/kernels-quick.mjs --compare`).
  if (typeof pad === 'number' && w.shape[0] !== w.shape[1]) {
    // tfjs sizes a numeric-pad output with the filter height for both axes; on wasm the kernel then
    // writes past its output buffer. (Our strides are the same in both axes, which it also assumes.)
    throw new RangeError(`conv2d: a numeric pad needs a square filter, got ${w.shape[0]}×${w.shape[1]}`);
  }
  const y = tf.conv2d(x, w, stride, pad, 'NHWC', dilation);
  if (b === null) return y;
  return tf.tidy(() => tf.add(y, b));
}

/** A float32 tensor of `shape` drawn from U(−bound, bound) with mulberry32(seed) (src/data/prng.ts); reproducible. */
export function seededUniform(shape: number[], bound: number, seed: number): tf.Tensor {
  if (!Number.isFinite(bound) || bound < 0) throw new RangeError(`seededUniform: bound must be ≥ 0, got ${bound}`);
  const rand = mulberry32(seed);
  const size = shape.reduce((a, d) => a * d, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * rand() - 1) * bound;
  return tf.tensor(values, shape, 'float32');
}

/**
 * PyTorch's default Conv2d init (SEED_SPEC §1): weight and bias ~ U(±1/√fan_in), fan_in = k·k·C_in.
 * Returns an HWIO weight and a [cout] bias (null when `bias` is false), seeded from `seed`.
 */
export function initConv(
  k: number,
  cin: number,
  cout: number,
  seed: number,
  bias: boolean,
): { w: tf.Tensor4D; b: tf.Tensor1D | null } {
  const bound = 1 / Math.sqrt(k * k * cin);
  // Separate derived streams per tensor: changing one layer's shape leaves the others' values alone.
  const w = seededUniform([k, k, cin, cout], bound, deriveSeed(seed, 0)) as tf.Tensor4D;
  const b = bias ? (seededUniform([cout], bound, deriveSeed(seed, 1)) as tf.Tensor1D) : null;
  return { w, b };
}

/** Total element count of a set of variables. */
export function countParams(vars: Record<string, tf.Variable>): number {
  return Object.values(vars).reduce((a, v) => a + v.size, 0);
}
