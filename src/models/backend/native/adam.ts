// Adam's update as one native call per variable on the "wasm + native" rung. tfjs' AdamOptimizer
// spends 14 tf ops (each a pass over the variable, and a kernel call) per variable per step; ours reads
// var, m, v and the gradient once and writes the three new values, with tfjs' formulas in tfjs' order.
//
// How it is hooked in: the trainer and the networks' owners construct optimizers with tf.train.adam,
// so the update cannot be swapped at the call sites. registerNativeKernels installs our
// applyGradients on AdamOptimizer.prototype (unregisterNativeKernels restores upstream's); it runs
// the native kernel only while that kernel is registered on the active backend and every variable
// and gradient is float32, and calls upstream's method otherwise. Either way the optimizer's state
// is upstream's own (moment variables `${name}/m`, `${name}/v` created on first use, accBeta1/2,
// iterations), so getWeights / setWeights / dispose and a switch of backend in between keep working.

import * as tf from '@tensorflow/tfjs-core';

import { callOp, size, type WasmBackend } from './addon.js';

/** Inputs x (the variable), m, v, g; attrs lr, beta1, beta2, epsilon, oneMinusAccBeta1/2 → x', m', v'. */
export const ADAM_UPDATE = 'SrganAdamUpdate';

interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
}

const adamUpdate: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackend;
  const { x, m, v, g } = inputs as Record<'x' | 'm' | 'v' | 'g', tf.TensorInfo>;
  const a = attrs as unknown as AdamAttrs;
  const outs = [0, 1, 2].map(() => b.makeOutput([...x.shape], 'float32'));
  const n = size(x.shape);
  if (n > 0) {
    // tfjs multiplies by the float32 scalars 1 − beta (computed in double) and −lr.
    const floats: Array<[number, number]> = [
      [1, a.lr],
      [2, a.beta1],
      [3, a.beta2],
      [4, a.epsilon],
      [5, a.oneMinusAccBeta1],
      [6, a.oneMinusAccBeta2],
      [7, 1 - a.beta1],
      [8, 1 - a.beta2],
    ];
    callOp(b, 'adam', [n], floats, 9, [x, m, v, g, ...outs]);
  }
  return outs;
};

export const ADAM_KERNEL: tf.KernelConfig = { kernelName: ADAM_UPDATE, backendName: 'wasm', kernelFunc: adamUpdate };

/** The fields of tfjs' AdamOptimizer that its applyGradients uses (private in its typings). */
interface AdamState {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  incrementIterations(): void;
}

/** tfjs' NamedTensor (not exported from the package root). */
type NamedTensor = { name: string; tensor: tf.Tensor };
type ApplyGradients = (this: tf.AdamOptimizer, grads: tf.NamedTensorMap | NamedTensor[]) => void;

let upstream: ApplyGradients | undefined;

function gradientsOf(grads: tf.NamedTensorMap | NamedTensor[]): Array<[string, tf.Tensor | undefined]> {
  return Array.isArray(grads) ? grads.map((g) => [g.name, g.tensor]) : Object.keys(grads).map((name) => [name, grads[name]]);
}

const nativeApplyGradients: ApplyGradients = function (this: tf.AdamOptimizer, grads) {
  const pairs = gradientsOf(grads);
  const variables = tf.engine().registeredVariables;
  const usable =
    tf.getKernel(ADAM_UPDATE, tf.getBackend()) != null &&
    pairs.every(([name, g]) => variables[name]?.dtype === 'float32' && (g == null || g.dtype === 'float32'));
  if (!usable) return upstream!.call(this, grads);
  const self = this as unknown as AdamState;
  // tfjs divides by sub(1, accBeta): a float32 subtraction of the float32 accBeta, which fround reproduces.
  const oneMinusAccBeta1 = Math.fround(1 - self.accBeta1.dataSync()[0]);
  const oneMinusAccBeta2 = Math.fround(1 - self.accBeta2.dataSync()[0]);
  const attrs = {
    lr: self.learningRate,
    beta1: self.beta1,
    beta2: self.beta2,
    epsilon: self.epsilon,
    oneMinusAccBeta1,
    oneMinusAccBeta2,
  };
  tf.tidy(() => {
    pairs.forEach(([name, gradient], i) => {
      const value = variables[name];
      // Moments are created on first use, named and untrainable as upstream creates them.
      self.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)) };
      self.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)) };
      if (gradient == null) return;
      const m = self.accumulatedFirstMoment[i].variable;
      const v = self.accumulatedSecondMoment[i].variable;
      const [x1, m1, v1] = tf.engine().runKernel(ADAM_UPDATE, { x: value, m, v, g: gradient }, attrs) as tf.Tensor[];
      m.assign(m1);
      v.assign(v1);
      value.assign(x1);
    });
    self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
    self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
  });
  self.incrementIterations();
};

/** Makes AdamOptimizer use the native update where it can (see the header). Idempotent. */
export function installNativeAdam(): void {
  const proto = tf.AdamOptimizer.prototype as unknown as { applyGradients: ApplyGradients };
  if (proto.applyGradients === nativeApplyGradients) return;
  upstream = proto.applyGradients;
  proto.applyGradients = nativeApplyGradients;
}

/** Restores upstream's AdamOptimizer.applyGradients. Idempotent. */
export function uninstallNativeAdam(): void {
  const proto = tf.AdamOptimizer.prototype as unknown as { applyGradients: ApplyGradients };
  if (proto.applyGradients === nativeApplyGradients && upstream !== undefined) proto.applyGradients = upstream;
}
