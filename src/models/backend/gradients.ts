// Gradients we register over, or next to, upstream's. Every other gradient comes from upstream tfjs,
// registered when backend.ts imports @tensorflow/tfjs-layers.
//
// 1. Add, Sub, Multiply (overrides). When an operand was broadcast, its gradient is dy summed over
// the broadcast axes. Upstream does that with tf.sum. In our networks every broadcast operand is a
// per-channel vector ([C] or [1, 1, 1, C]: conv bias, BatchNorm scale and shift, the moments' mean)
// against an NHWC activation, or a scalar, so the axes to sum are the leading ones. Sum on wasm
// transposes those axes inward first (slowest on power-of-two shapes); one matMul against a ones
// vector does the same sums without the transpose: on fresh gradients, 2–4× faster for our large
// reductions ([8, 64, 64, 32] → [32]: 1.5 vs 5.7 ms) and on par for small ones. Other binary ops
// keep upstream's (mse's SquaredDifference sees equal shapes).
//
// 2. Conv2D (override). Upstream's refuses dilation > 1. Ours handles dilation > 1 itself, with two
// ordinary forward convolutions (docs/backends.md "Fast formulations"; tfjs requires stride 1 whenever
// the dilation is > 1, which keeps both simple), and hands dilation 1 to upstream's gradient, which
// calls the Conv2DBackpropInput / Conv2DBackpropFilter kernels (ours on wasm, conv-gradient-kernels.ts).
//
// 3. DepthToSpace (added: upstream has none). The op is a permutation, so its gradient is the
// inverse permutation, space-to-depth, as reshape/transpose/reshape. Models may then use
// tf.depthToSpace directly.
//
// 4. Mean (override). Upstream's multiplies dy by a tensor of ones of the input's shape made on the
// host: on a GPU that uploads a whole activation every backward pass (counted on webgpu: 180 KB a step
// of a tiny GAN, test/unit/webgpu-steps.test.ts). Ours broadcasts dy instead: the same values (× 1 is
// exact), nothing uploaded. For the same reason sumToShape's ones vector is made by tf.fill, which
// runs on the device.
//
// Invariant: after registerBroadcastGradients() the registry holds these exact config objects for
// the six kernels; calling it again is a no-op, and it re-installs them if anything registered
// over them in between. The upstream Conv2D gradient it replaces is remembered (the latest one
// seen that is not ours) and serves dilation 1.

import * as tf from '@tensorflow/tfjs-core';

/** `g` summed down to `shape`, which broadcasts to g.shape (the gradient of a broadcast operand). */
export function sumToShape(g: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, g.shape);
  if (axes.length === 0) return tf.reshape(g, shape); // a new handle: the engine owns g
  const leading = axes.every((axis, i) => axis === i);
  if (!leading) return tf.reshape(tf.sum(g, axes), shape);
  // View g as [R, C] (R = the leading axes flattened): the gradient is its column sums, ones[R, 1]ᵀ · g.
  // The transpose flag matters on wasm: an untransposed matMul hands its right operand to XNNPACK as
  // weights, which are packed anew for every fresh tensor (a gradient always is), making it slower
  // than Sum; a transposed one runs tfjs-wasm's own blocked loop, which just streams g.
  const rows = g.shape.slice(0, axes.length).reduce((n, d) => n * d, 1);
  const summed = tf.matMul(tf.fill([rows, 1], 1), tf.reshape(g, [rows, g.size / rows]), true, false);
  return tf.reshape(summed, shape);
}

/** Builds a gradient config for a binary kernel from the gradient of each operand. */
function binaryGradient(
  kernelName: string,
  grad: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => { a: () => tf.Tensor; b: () => tf.Tensor },
): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    // The engine calls only the closures of inputs that need a gradient, so each one stays lazy.
    gradFunc: (dy, saved) => grad(dy as tf.Tensor, saved[0], saved[1]),
  };
}

const BROADCAST: readonly tf.GradConfig[] = [
  binaryGradient(tf.Add, (dy, a, b) => ({
    a: () => sumToShape(dy, a.shape),
    b: () => sumToShape(dy, b.shape),
  })),
  binaryGradient(tf.Sub, (dy, a, b) => ({
    a: () => sumToShape(dy, a.shape),
    // Negate after reducing: the negation then runs on the small operand, not on dy.
    b: () => tf.neg(sumToShape(dy, b.shape)),
  })),
  binaryGradient(tf.Multiply, (dy, a, b) => ({
    // tf.mul upcasts an int or bool operand to dy's float32.
    a: () => sumToShape(tf.mul(dy, b), a.shape),
    b: () => sumToShape(tf.mul(dy, a), b.shape),
  })),
];

/** d mean(x, axis) / dx: dy spread back over the reduced axes, over their size. */
const MEAN: tf.GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const x = saved[0];
    const axes = tf.util.parseAxisParam((attrs as unknown as tf.MeanAttrs).axis, x.shape);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const n = axes.reduce((size, axis) => size * x.shape[axis], 1);
    return { x: () => tf.div(tf.broadcastTo(tf.reshape(dy as tf.Tensor, kept), x.shape), n) };
  },
};

type Pair = [number, number];

const pair = (v: number | readonly number[]): Pair => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

interface Conv2DAttrs {
  strides: number | Pair;
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | Pair;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface Pads {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * A convolution of `x` after padding it spatially by `pads`, where a negative pad drops that many
 * rows/cols of `x` instead. Positive pads go to the convolution as explicit padding (no copy).
 */
function convPadded(x: tf.Tensor4D, filter: tf.Tensor4D, strides: Pair, dilations: Pair, pads: Pads): tf.Tensor4D {
  const cropTop = Math.max(-pads.top, 0);
  const cropLeft = Math.max(-pads.left, 0);
  const cropBottom = Math.max(-pads.bottom, 0);
  const cropRight = Math.max(-pads.right, 0);
  let src = x;
  if (cropTop + cropLeft + cropBottom + cropRight > 0) {
    const [, h, w] = x.shape;
    src = tf.slice(x, [0, cropTop, cropLeft, 0], [-1, h - cropTop - cropBottom, w - cropLeft - cropRight, -1]);
  }
  const explicit: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(pads.top, 0), Math.max(pads.bottom, 0)],
    [Math.max(pads.left, 0), Math.max(pads.right, 0)],
    [0, 0],
  ];
  return tf.conv2d(src, filter, strides, explicit, 'NHWC', dilations);
}

/**
 * Gradients of a stride-1 NHWC convolution with dilation (dH, dW), each one forward convolution:
 *  - forward: y[o] = Σ_k x[o + k·d − top] · w[k] (per spatial axis), so
 *  - dx[i] = Σ_k dy[i + top − k·d] · w[k]: dy convolved, with the same dilation, by w reversed in
 *    both spatial axes with in/out channels swapped, padded by (K−1)·d − top before and
 *    (K−1)·d − bottom after (negative: rows the forward pass never read, dropped);
 *  - dw[k] = Σ_{n,o} x[o + k·d − top] · dy[o]: a convolution with the batch as the channel axis,
 *    input pad(x) as [Cin, Hp, Wp, N], filter dy as [OH, OW, N, Cout], stride d, giving
 *    [Cin, KH, KW, Cout], transposed to HWIO.
 */
function dilatedConvGrads(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  dy: tf.Tensor4D,
  attrs: Conv2DAttrs,
): { x: () => tf.Tensor; filter: () => tf.Tensor } {
  const dil = pair(attrs.dilations);
  const strides = pair(attrs.strides);
  if (strides[0] !== 1 || strides[1] !== 1) {
    // tf.conv2d itself refuses this combination, so it cannot reach us from a forward pass.
    throw new RangeError(`Conv2D gradient: dilation > 1 needs stride 1, got strides ${String(attrs.strides)}`);
  }
  const info = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, 1, dil, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { top, bottom, left, right } = info.padInfo;
  const [kH, kW] = filter.shape;
  return {
    x: () => {
      const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
      const extentH = (kH - 1) * dil[0];
      const extentW = (kW - 1) * dil[1];
      const pads = { top: extentH - top, bottom: extentH - bottom, left: extentW - left, right: extentW - right };
      return convPadded(dy, flipped, [1, 1], dil, pads);
    },
    filter: () => {
      const xT = tf.transpose(x, [3, 1, 2, 0]);
      const dyT = tf.transpose(dy, [1, 2, 0, 3]);
      const dw = convPadded(xT, dyT, dil, [1, 1], { top, bottom, left, right });
      return tf.transpose(dw, [1, 2, 0, 3]);
    },
  };
}

/** The upstream Conv2D gradient we replaced; serves dilation 1. */
let upstreamConv2D: tf.GradConfig | null = null;

function conv2dGradFunc(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap): Record<string, () => tf.Tensor> {
  const a = attrs as unknown as Conv2DAttrs;
  const dil = pair(a.dilations ?? 1);
  if (dil[0] === 1 && dil[1] === 1) {
    if (upstreamConv2D == null) throw new Error('Conv2D gradient: no upstream gradient registered for dilation 1');
    return upstreamConv2D.gradFunc(dy, saved, attrs);
  }
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new RangeError(`Conv2D gradient: dilation > 1 is supported for NHWC only, got ${a.dataFormat}`);
  }
  return dilatedConvGrads(saved[0] as tf.Tensor4D, saved[1] as tf.Tensor4D, dy as tf.Tensor4D, a);
}

const CONV2D: tf.GradConfig = { kernelName: tf.Conv2D, inputsToSave: ['x', 'filter'], gradFunc: conv2dGradFunc };

/**
 * Space-to-depth, the inverse of tf.depthToSpace (block-major channels, as tfjs and TensorFlow use):
 * NHWC  out[n, h, w, (i·b + j)·C + c] = dy[n, h·b + i, w·b + j, c];
 * NCHW  out[n, (i·b + j)·C + c, h, w] = dy[n, c, h·b + i, w·b + j].
 */
export function spaceToDepth(dy: tf.Tensor4D, blockSize: number, dataFormat: 'NHWC' | 'NCHW' = 'NHWC'): tf.Tensor4D {
  const b = blockSize;
  if (dataFormat === 'NHWC') {
    const [n, hb, wb, c] = dy.shape;
    const h = hb / b;
    const w = wb / b;
    return tf.reshape(tf.transpose(tf.reshape(dy, [n, h, b, w, b, c]), [0, 1, 3, 2, 4, 5]), [n, h, w, b * b * c]);
  }
  const [n, c, hb, wb] = dy.shape;
  const h = hb / b;
  const w = wb / b;
  return tf.reshape(tf.transpose(tf.reshape(dy, [n, c, h, b, w, b]), [0, 3, 5, 1, 2, 4]), [n, b * b * c, h, w]);
}

const DEPTH_TO_SPACE: tf.GradConfig = {
  kernelName: tf.DepthToSpace,
  gradFunc: (dy, _saved, attrs) => {
    const { blockSize, dataFormat } = attrs as unknown as { blockSize: number; dataFormat: 'NHWC' | 'NCHW' };
    return { x: () => spaceToDepth(dy as tf.Tensor4D, blockSize, dataFormat) };
  },
};

const OVERRIDES: readonly tf.GradConfig[] = [...BROADCAST, CONV2D, DEPTH_TO_SPACE, MEAN];

/**
 * Kernel names of the broadcast overrides (group 1), which the baseline G and D steps all call
 * (test/unit/gradients.test.ts checks them there).
 */
export const OVERRIDDEN_GRADIENTS: readonly string[] = BROADCAST.map((c) => c.kernelName);

/** Kernel names of groups 2 and 3 (test/unit/conv-gradients.test.ts). */
export const CONV_GRADIENTS: readonly string[] = [CONV2D.kernelName, DEPTH_TO_SPACE.kernelName];

/** Every kernel name whose gradient registerBroadcastGradients() installs (for diagnostics and tests). */
export const REGISTERED_GRADIENTS: readonly string[] = OVERRIDES.map((c) => c.kernelName);

/**
 * Installs all our gradients (the header's four groups) over whatever is registered. Idempotent.
 * The name is historical: backend.ts's initBackend calls it.
 */
export function registerBroadcastGradients(): void {
  for (const config of OVERRIDES) {
    const current = tf.getGradient(config.kernelName);
    if (current === config) continue;
    // Remember the Conv2D gradient we displace, unless it is a copy of ours (that would recurse).
    if (config === CONV2D && current != null && current.gradFunc !== conv2dGradFunc) upstreamConv2D = current;
    // registerGradient would overwrite too, but warns in DEBUG mode; replacing is intended here.
    if (current != null) tf.unregisterGradient(config.kernelName);
    tf.registerGradient(config);
  }
}

/** Alias of registerBroadcastGradients under the name that says what it does. */
export const registerGradients = registerBroadcastGradients;
