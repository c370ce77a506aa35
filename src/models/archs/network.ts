// The shapes every network in src/models shares, so the trainer, archs/build.ts and the CLI can treat
// all generators (and all discriminators) alike.

import type * as tf from '@tensorflow/tfjs-core';

/** A super-resolution generator: LR [n, h, w, 3] → SR [n, h·scale, w·scale, 3], NHWC. */
export interface Generator {
  /** Trainable variables by stable local name (`conv1.w`, `conv1.b`, …), for optimizers and checkpoints. */
  variables: Record<string, tf.Variable>;
  /** LR [n, h, w, 3] → SR [n, h·scale, w·scale, 3]; no output activation (clip only for display). */
  apply(x: tf.Tensor4D): tf.Tensor4D;
  /**
   * apply for inference only (never under a gradient tape): the same output, but each block's
   * intermediates are freed when the block ends instead of when the call does. Absent on foreign
   * networks (--compare models), where callers use apply.
   */
  infer?(x: tf.Tensor4D): tf.Tensor4D;
  /** Upscaling factor. */
  scale: number;
  paramCount: number;
  /** FLOPs (2 × conv multiply-adds) of one forward pass on one h×w LR image. */
  flopsPerForward(h: number, w: number): number;
  /** Frees the variables. */
  dispose(): void;
}

export interface ApplyOptions {
  /**
   * true: training mode (BatchNorm normalises with batch statistics, spectral norm runs one power
   * iteration) and queue the resulting state update for commitStats(); false: use the stored state.
   */
  training: boolean;
}

/** A discriminator producing a logit map (one realness score per output pixel). */
export interface Discriminator {
  /** Trainable variables by stable local name. */
  variables: Record<string, tf.Variable>;
  /** Non-trainable state: BatchNorm running statistics or spectral-norm vectors. */
  stats: Record<string, tf.Variable>;
  /** [n, H, W, 3] → logits [n, outH, outW, 1], see outputSize. */
  apply(x: tf.Tensor4D, opts: ApplyOptions): tf.Tensor4D;
  /** Folds the state updates queued by training-mode `apply` calls into `stats`. Call outside any tape. */
  commitStats(): void;
  /** Logit-map size for an H×W input. Throws RangeError for inputs the network cannot take. */
  outputSize(h: number, w: number): [number, number];
  /** Trainable parameter count (stats excluded). */
  paramCount: number;
  /** FLOPs (2 × conv multiply-adds) of one forward pass on one h×w image. */
  flopsPerForward(h: number, w: number): number;
  /** Frees variables, stats and anything pending. */
  dispose(): void;
}

/** Throws a RangeError naming `field` unless v is a positive integer; returns it. */
export function positiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RangeError(`${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Throws a RangeError naming `field` unless v is an integer; returns it. */
export function integerSeed(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new RangeError(`${field} must be an integer, got ${JSON.stringify(v)}`);
  return v;
}
