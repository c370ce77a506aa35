// Building blocks shared by our networks: pixel shuffle with a gradient on every backend, a conv
// helper and conv layers, reproducible PyTorch-style initialisation from a seed, per-layer FLOPs,
// and ×2 upsampling (nearest, bilinear) whose gradients are right on every backend.

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed, mulberry32 } from '../../util/prng.js';
import { conv2dBiasAct } from './fused.js';

/**
 * Pixel shuffle / depth-to-space, NHWC, block-major like `tf.depthToSpace`:
 * out[h·r+i, w·r+j, c] = in[h, w, (i·r+j)·C + c]. Written as reshape/transpose/reshape, so its
 * gradient comes from upstream's Reshape/Transpose ones. tf.depthToSpace gives the same values and,
 * since gradients.ts registers one, a gradient too; the final generator uses that.
 */
export function pixelShuffle(x: tf.Tensor4D, r: number): tf.Tensor4D {
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`pixelShuffle: r must be a positive integer, got ${r}`);
  const [n, h, w, cr2] = x.shape;
  if (cr2 % (r * r) !== 0) {
    throw new RangeError(`pixelShuffle: channels (${cr2}) must be divisible by r² (${r * r})`);
  }
  if (r === 1) return x;
  const c = cr2 / (r * r);
  return tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, r, r, c]), [0, 1, 3, 2, 4, 5]), [n, h * r, w * r, c]));
}

/**
 * Puts x [n, h, w, c] on a stride grid: out [n, h·sh, w·sw, c] with out[i·sh + leadH, j·sw + leadW] =
 * x[i, j] and zeros elsewhere (the zero insertion of a strided convolution's gradients). Two 4-D pads,
 * one per axis: tfjs-backend-webgpu's pad shader does not compile for 6-D tensors (docs/backends.md).
 */
export function spreadOnGrid(x: tf.Tensor4D, [sh, sw]: [number, number], [leadH, leadW]: [number, number] = [0, 0]): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const alongW = tf.pad(tf.reshape(x, [n * h, w, 1, c]), [
      [0, 0],
      [0, 0],
      [leadW, sw - 1 - leadW],
      [0, 0],
    ]);
    const alongH = tf.pad(tf.reshape(alongW, [n, h, 1, w * sw * c]), [
      [0, 0],
      [0, 0],
      [leadH, sh - 1 - leadH],
      [0, 0],
    ]);
    return tf.reshape(alongH, [n, h * sh, w * sw, c]);
  });
}

export interface Conv2dOptions {
  /** Stride in both axes. Default 1. */
  stride?: number;
  /** 'same' (default), 'valid', or a symmetric pixel count. */
  pad?: 'same' | 'valid' | number;
  /** Dilation in both axes (stride must then be 1). Default 1; gradients for > 1 come from gradients.ts. */
  dilation?: number;
}

/**
 * NHWC convolution with an HWIO filter and an optional per-channel bias. With a bias it is
 * fused.ts's conv2dBiasAct: on the native rung one oneDNN call (bias as a post-op) whose gradient
 * gets db with dW; elsewhere conv2d + add, as before.
 */
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
  if (b !== null) return conv2dBiasAct(x, w, b, { strides: stride, pad, dilations: dilation });
  return tf.conv2d(x, w, stride, pad, 'NHWC', dilation);
}

/** A float32 tensor of `shape` drawn from U(−bound, bound) with mulberry32(seed) (src/util/prng.ts); reproducible. */
export function seededUniform(shape: number[], bound: number, seed: number): tf.Tensor {
  if (!Number.isFinite(bound) || bound < 0) throw new RangeError(`seededUniform: bound must be ≥ 0, got ${bound}`);
  const rand = mulberry32(seed);
  const size = shape.reduce((a, d) => a * d, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * rand() - 1) * bound;
  return tf.tensor(values, shape, 'float32');
}

/**
 * PyTorch's default Conv2d init (docs/seed.md §1): weight and bias ~ U(±1/√fan_in), fan_in = k·k·C_in.
 * Returns an HWIO weight and a [cout] bias (null when `bias` is false), seeded from `seed`.
 */
export function initConv(k: number, cin: number, cout: number, seed: number, bias: boolean): { w: tf.Tensor4D; b: tf.Tensor1D | null } {
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

/**
 * A seed for the tensor called `name` in a network seeded with `seed` (FNV-1a of the name, mixed
 * with deriveSeed): a layer's initial values then depend only on the seed and its own name, so
 * adding or removing blocks leaves the others' init unchanged.
 */
export function nameSeed(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return deriveSeed(seed, h >>> 0);
}

/** Geometry of one convolution layer, plus its variables once built. */
export interface ConvSpec {
  /** Square kernel size. */
  k: number;
  cin: number;
  cout: number;
  /** Default true. */
  bias?: boolean;
  /** Default 1. */
  stride?: number;
  /** Default 1. */
  dilation?: number;
  /** Default 'same'. */
  pad?: 'same' | 'valid' | number;
}

export interface ConvLayer extends Required<ConvSpec> {
  /** HWIO weight, registered in the network's variables as `${name}.w`. */
  w: tf.Variable;
  /** Bias, registered as `${name}.b`; null when `bias` is false. */
  b: tf.Variable | null;
}

/**
 * Creates a conv layer with PyTorch-default init (initConv, drawn from `seed` as given; new networks
 * pass nameSeed(netSeed, name)), registering `${name}.w` (and `${name}.b`) in `variables`.
 */
export function createConv(variables: Record<string, tf.Variable>, name: string, spec: ConvSpec, seed: number): ConvLayer {
  const full: Required<ConvSpec> = { bias: true, stride: 1, dilation: 1, pad: 'same', ...spec };
  if (`${name}.w` in variables) throw new RangeError(`createConv: duplicate layer name '${name}'`);
  const { w, b } = initConv(full.k, full.cin, full.cout, seed, full.bias);
  const layer: ConvLayer = { ...full, w: tf.variable(w, true), b: b === null ? null : tf.variable(b, true) };
  w.dispose();
  b?.dispose();
  variables[`${name}.w`] = layer.w;
  if (layer.b !== null) variables[`${name}.b`] = layer.b;
  return layer;
}

/** Runs `layer` on x; `w` replaces the layer's own weight (spectral norm passes the normalised one). */
export function applyConv(layer: ConvLayer, x: tf.Tensor4D, w: tf.Tensor4D = layer.w as tf.Tensor4D): tf.Tensor4D {
  return conv2d(x, w, layer.b as tf.Tensor1D | null, { stride: layer.stride, pad: layer.pad, dilation: layer.dilation });
}

/** Output spatial size of `layer` for an h×w input (tfjs' own arithmetic). */
export function convOutSize(layer: ConvSpec, h: number, w: number): [number, number] {
  const info = tf.backend_util.computeConv2DInfo(
    [1, h, w, layer.cin],
    [layer.k, layer.k, layer.cin, layer.cout],
    layer.stride ?? 1,
    layer.dilation ?? 1,
    layer.pad ?? 'same',
  );
  return [info.outHeight, info.outWidth];
}

/**
 * FLOPs of one forward pass of `layer` on one h×w image: 2 × multiply-adds (the usual convention;
 * bias adds and activations are not counted).
 */
export function convFlops(layer: ConvSpec, h: number, w: number): number {
  const [oh, ow] = convOutSize(layer, h, w);
  return 2 * oh * ow * layer.k * layer.k * layer.cin * layer.cout;
}

// ×2 upsampling built from slice / concat / stack / reshape, whose gradients are right on every
// backend. tfjs 4.22's own resize gradients are not (checked in test/unit/conv-gradients.test.ts):
// ResizeBilinearGrad ignores halfPixelCenters on cpu and wasm (it returns the align-corners-false,
// no-half-pixel gradient), and on cpu fails for non-square inputs; on cpu,
// ResizeNearestNeighborGrad mixes up the items of a batch > 1.

function take(x: tf.Tensor4D, axis: 1 | 2, begin: number, size: number): tf.Tensor4D {
  const b = [0, 0, 0, 0];
  const s = [-1, -1, -1, -1];
  b[axis] = begin;
  s[axis] = size;
  return tf.slice(x, b, s);
}

/** Interleaves a and b along `axis` (a first): out[2i] = a[i], out[2i+1] = b[i]. */
function interleave(a: tf.Tensor4D, b: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D {
  const shape = [...a.shape] as [number, number, number, number];
  shape[axis] *= 2;
  return tf.reshape(tf.stack([a, b], axis + 1), shape);
}

/**
 * Nearest-neighbour ×2 upsampling, out[i] = in[⌊i/2⌋] in both spatial axes: PyTorch's
 * F.interpolate(scale_factor=2, mode='nearest') and tf.image.resizeNearestNeighbor(x, [2h, 2w]).
 */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => interleave(interleave(x, x, 1), interleave(x, x, 1), 2));
}

/**
 * Bilinear ×2 upsampling with half-pixel centres: PyTorch's align_corners=False and
 * tf.image.resizeBilinear(x, [2h, 2w], false, true). Per axis, out[2i] = ¼·in[i−1] + ¾·in[i] and
 * out[2i+1] = ¾·in[i] + ¼·in[i+1], with in[−1] = in[0] and in[n] = in[n−1].
 */
export function upsampleBilinear2x(x: tf.Tensor4D): tf.Tensor4D {
  const along = (t: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D => {
    const n = t.shape[axis];
    const prev = n === 1 ? t : tf.concat([take(t, axis, 0, 1), take(t, axis, 0, n - 1)], axis);
    const next = n === 1 ? t : tf.concat([take(t, axis, 1, n - 1), take(t, axis, n - 1, 1)], axis);
    const centre = tf.mul(t, 0.75);
    return interleave(tf.add(centre, tf.mul(prev, 0.25)), tf.add(centre, tf.mul(next, 0.25)), axis);
  };
  return tf.tidy(() => along(along(x, 1), 2));
}
