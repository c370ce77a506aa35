// Our gradients for Add, Sub and Multiply, registered in place of upstream's. This is the only
// gradient code in the project: every other gradient comes from upstream tfjs, registered when
// backend.ts imports @tensorflow/tfjs-layers.
//
// Why override: when an operand was broadcast, its gradient is dy summed over the broadcast axes.
// Upstream does that with tf.sum. In our networks every broadcast operand is a per-channel vector
// ([C] or [1, 1, 1, C]: conv bias, BatchNorm scale and shift, the moments' mean) against an NHWC
// activation, or a scalar, so the axes to sum are the leading ones. Sum on wasm transposes those
// axes inward first (slowest on power-of-two shapes); one matMul against a ones vector does the same
// sums without the transpose: on fresh gradients, 2–4× faster for our large reductions
// ([8, 64, 64, 32] → [32]: 1.5 vs 5.7 ms) and on par for small ones. Only these three ops broadcast
// in our graphs (mse's SquaredDifference sees equal shapes), so other binary ops keep upstream's.
//
// Invariant: after registerBroadcastGradients() the registry holds these exact config objects for
// the three kernels; calling it again is a no-op, and it re-installs them if anything registered
// over them in between.

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
  const summed = tf.matMul(tf.ones([rows, 1]), tf.reshape(g, [rows, g.size / rows]), true, false);
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
    gradFunc: (dy, saved) => grad(dy as tf.Tensor, saved[0]!, saved[1]!),
  };
}

const OVERRIDES: readonly tf.GradConfig[] = [
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

/** Kernel names whose gradient we register over upstream's (for diagnostics and tests). */
export const OVERRIDDEN_GRADIENTS: readonly string[] = OVERRIDES.map((c) => c.kernelName);

/**
 * Installs our Add / Sub / Multiply gradients over whatever is registered (upstream's, normally).
 * Idempotent.
 */
export function registerBroadcastGradients(): void {
  for (const config of OVERRIDES) {
    const current = tf.getGradient(config.kernelName);
    if (current === config) continue;
    // registerGradient would overwrite too, but warns in DEBUG mode; replacing is intended here.
    if (current != null) tf.unregisterGradient(config.kernelName);
    tf.registerGradient(config);
  }
}
