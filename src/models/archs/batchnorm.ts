// BatchNorm2d for the discriminators (docs/seed.md §1, §5): Keras momentum 0.9 (= PyTorch 0.1),
// eps 1e-5. In training mode it normalises with the batch statistics and queues one running-stat
// update (an EMA with the unbiased batch variance, as PyTorch keeps it) on the network's
// StatUpdates side channel (stat-updates.ts); otherwise it uses the running statistics.
// batchNormLeakyRelu is the same followed by LeakyReLU; in training mode on the native rung both run
// as one kernel each way (fused.ts), with the same running-stat updates.

import * as tf from '@tensorflow/tfjs-core';
import { batchNormActTraining } from './fused.js';
import type { StatUpdates } from './stat-updates.js';

const BN_MOMENTUM = 0.9;
const BN_EPS = 1e-5;

export interface BatchNormLayer {
  gamma: tf.Variable;
  beta: tf.Variable;
  /** Running mean and (unbiased) variance: non-trainable. */
  mean: tf.Variable;
  variance: tf.Variable;
}

/**
 * Creates a BatchNorm layer over `channels`, registering `${name}.gamma`, `${name}.beta` in
 * `variables` and `${name}.mean`, `${name}.var` in `stats`.
 */
export function createBatchNorm(
  variables: Record<string, tf.Variable>,
  stats: Record<string, tf.Variable>,
  name: string,
  channels: number,
): BatchNormLayer {
  const layer: BatchNormLayer = {
    gamma: tf.variable(tf.ones([channels]), true),
    beta: tf.variable(tf.zeros([channels]), true),
    mean: tf.variable(tf.zeros([channels]), false),
    variance: tf.variable(tf.ones([channels]), false),
  };
  variables[`${name}.gamma`] = layer.gamma;
  variables[`${name}.beta`] = layer.beta;
  stats[`${name}.mean`] = layer.mean;
  stats[`${name}.var`] = layer.variance;
  return layer;
}

/** Normalises NHWC x per channel; in training mode queues the running-stat update on `updates`. */
export function batchNorm(x: tf.Tensor4D, bn: BatchNormLayer, training: boolean, updates: StatUpdates): tf.Tensor4D {
  let mean: tf.Tensor;
  let variance: tf.Tensor;
  if (training) {
    ({ mean, variance } = tf.moments(x, [0, 1, 2]));
    queueRunningStats(x, bn, mean, variance, updates);
  } else {
    mean = bn.mean;
    variance = bn.variance;
  }
  // y = x·scale + shift with per-channel scale = γ/√(σ²+ε), shift = β − μ·scale: two full-size ops
  // instead of four.
  const scale = tf.mul(bn.gamma, tf.rsqrt(tf.add(variance, BN_EPS)));
  const shift = tf.sub(bn.beta, tf.mul(mean, scale));
  return tf.add(tf.mul(x, scale), shift);
}

/** Queues the running-stat EMA: the batch mean, and the batch variance made unbiased (n/(n−1)). */
function queueRunningStats(x: tf.Tensor4D, bn: BatchNormLayer, mean: tf.Tensor, variance: tf.Tensor, updates: StatUpdates): void {
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  updates.queue(bn.mean, mean, BN_MOMENTUM);
  updates.queue(bn.variance, n > 1 ? tf.mul(variance, n / (n - 1)) : variance, BN_MOMENTUM);
}

/**
 * leakyRelu(batchNorm(x, bn, training, updates), alpha), with the same running-stat updates. In
 * training mode, where the native batch-norm kernel is registered, it runs as that one kernel (and
 * its gradient as one kernel); otherwise as batchNorm's tf ops and tf.leakyRelu.
 */
export function batchNormLeakyRelu(
  x: tf.Tensor4D,
  bn: BatchNormLayer,
  training: boolean,
  updates: StatUpdates,
  alpha: number,
): tf.Tensor4D {
  if (training) {
    const fused = batchNormActTraining(x, bn.gamma as tf.Tensor1D, bn.beta as tf.Tensor1D, { eps: BN_EPS, activation: 'leakyrelu', alpha });
    if (fused !== null) {
      queueRunningStats(x, bn, fused.mean, fused.variance, updates);
      return fused.y;
    }
  }
  return tf.leakyRelu(batchNorm(x, bn, training, updates), alpha);
}
