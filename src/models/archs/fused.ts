// Fused ops that the networks call: one kernel where the native rung has one, the equivalent tf ops
// everywhere else. Only tfjs-core here, so model code can use them without loading the wasm backend or
// the addon; the kernels and their gradients are registered by backend/native/kernels.ts (registerNativeKernels).
//
//  - conv2dBiasAct: act(conv2d(x, w) + b). Native: one oneDNN call forward (bias and activation as
//    post-ops); its gradient gets dW and db from one backward-weights call.
//  - batchNormActTraining: training-mode batch norm with an optional LeakyReLU. Native: one pass for
//    the statistics and one for the output forward; backward one kernel gives dx, dγ and dβ (two passes).
//
// Whether the fused path runs is decided per call by the active backend's kernel registry.

import * as tf from '@tensorflow/tfjs-core';

/** conv2dBiasAct's forward kernel (wasm + native only). */
export const CONV2D_BIAS_ACT = 'SrganConv2DBiasAct';

/**
 * Training-mode batch norm (+ LeakyReLU) kernel: inputs x (NHWC), gamma, beta; attrs eps,
 * activation ('linear' | 'leakyrelu'), alpha; outputs y, the batch mean and the biased batch variance.
 */
export const BATCH_NORM_ACT = 'SrganBatchNormAct';

const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) != null;

export type BiasActivation = 'linear' | 'relu' | 'leakyrelu';
export type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

export interface Conv2dBiasActOptions {
  /** Default 1. */
  strides?: number | [number, number];
  /** Default 'same'. */
  pad?: Pad;
  /** Default 1; > 1 trains too (our gradient kernels take dilations). */
  dilations?: number | [number, number];
  /** Default 'linear'. */
  activation?: BiasActivation;
  /** LeakyReLU slope, in [0, 1); default 0.2 (tfjs' default). */
  alpha?: number;
}

/**
 * act(conv2d(x, filter) + bias), NHWC / HWIO / [Cout]. With the native kernels registered on the
 * active backend it runs as one oneDNN primitive (bias and activation as post-ops) and its gradient
 * gets dW and db from one backward-weights call; elsewhere it runs as the equivalent tf ops.
 */
export function conv2dBiasAct(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  { strides = 1, pad = 'same', dilations = 1, activation = 'linear', alpha = 0.2 }: Conv2dBiasActOptions = {},
): tf.Tensor4D {
  if (activation !== 'linear' && activation !== 'relu' && activation !== 'leakyrelu') {
    throw new RangeError(`conv2dBiasAct: activation must be 'linear', 'relu' or 'leakyrelu', got ${JSON.stringify(activation)}`);
  }
  if (!(alpha >= 0 && alpha < 1)) throw new RangeError(`conv2dBiasAct: alpha must be in [0, 1), got ${alpha}`);
  if (!hasKernel(CONV2D_BIAS_ACT)) {
    return tf.tidy(() => {
      const y = tf.add(tf.conv2d(x, filter, strides, pad as 'same', 'NHWC', dilations), bias) as tf.Tensor4D;
      if (activation === 'relu') return tf.relu(y);
      return activation === 'leakyrelu' ? tf.leakyRelu(y, alpha) : y;
    });
  }
  const attrs = { strides, pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined, activation, leakyreluAlpha: alpha };
  return tf.engine().runKernel(CONV2D_BIAS_ACT, { x, filter, bias }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export interface BatchNormActOptions {
  /** Added to the variance. */
  eps: number;
  /** 'linear' (plain batch norm) or 'leakyrelu'. */
  activation: 'linear' | 'leakyrelu';
  /** LeakyReLU slope in [0, 1) (0 = ReLU); ignored for 'linear'. */
  alpha?: number;
}

export interface BatchNormActResult {
  y: tf.Tensor4D;
  /** Batch mean per channel. */
  mean: tf.Tensor1D;
  /** Biased batch variance per channel (what the normalisation divides by). */
  variance: tf.Tensor1D;
}

/**
 * Training-mode batch norm of NHWC x over N, H, W, then the activation, as one kernel whose gradient
 * (through the batch statistics, like tf.moments') is one kernel too. Returns null where that kernel
 * is not registered on the active backend: the caller then uses its tf-ops path (batchnorm.ts).
 * `mean` and `variance` are statistics for a running-average update: no gradient flows back through
 * them as outputs (their effect on y is in y's gradient).
 */
export function batchNormActTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  { eps, activation, alpha = 0 }: BatchNormActOptions,
): BatchNormActResult | null {
  if (activation !== 'linear' && activation !== 'leakyrelu') {
    throw new RangeError(`batchNormActTraining: activation must be 'linear' or 'leakyrelu', got ${JSON.stringify(activation)}`);
  }
  if (!(alpha >= 0 && alpha < 1)) throw new RangeError(`batchNormActTraining: alpha must be in [0, 1), got ${alpha}`);
  if (!(eps >= 0)) throw new RangeError(`batchNormActTraining: eps must be ≥ 0, got ${eps}`);
  if (!hasKernel(BATCH_NORM_ACT) || x.dtype !== 'float32') return null;
  const [y, mean, variance] = tf.engine().runKernel<[tf.Tensor4D, tf.Tensor1D, tf.Tensor1D]>(
    BATCH_NORM_ACT,
    { x, gamma, beta },
    {
      eps,
      activation,
      alpha: activation === 'leakyrelu' ? alpha : 0,
    },
  );
  return { y, mean, variance };
}
