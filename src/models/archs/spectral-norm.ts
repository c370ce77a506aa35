// Spectral normalisation of a conv weight (Miyato et al. 2018; PyTorch's
// torch.nn.utils.spectral_norm semantics, as Real-ESRGAN's U-Net discriminator uses it):
// W_sn = W / σ, σ ≈ the largest singular value of W viewed as a matrix (cout rows; the other axes
// flattened — the order of the flattened axes does not change σ), estimated with persistent
// vectors u (length cout) and v (length k·k·cin):
//  - training: one power iteration per forward, v ← normalise(Wᵀu), u ← normalise(W v), then
//    σ = uᵀ W v with u, v held constant (no gradient through the iteration), gradient through W;
//  - inference: σ from the stored u, v, no iteration.
// The new u, v are queued on the network's StatUpdates side channel (stat-updates.ts), like the
// BatchNorm statistics, and assigned by commitStats() outside the tape. normalise(x) =
// x / max(‖x‖, 1e-12). u and v start as normalised seeded N(0, 1) vectors, as in PyTorch.

import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from '../../util/prng.js';
import type { StatUpdates } from './stat-updates.js';

const EPS = 1e-12;

export interface SpectralNormState {
  /** [cout], non-trainable. */
  u: tf.Variable;
  /** [k·k·cin], non-trainable. */
  v: tf.Variable;
}

/** A normalised vector of seeded standard normals (Box–Muller over mulberry32). */
function seededUnitNormal(n: number, seed: number): tf.Tensor1D {
  const rand = mulberry32(seed);
  const values = new Float32Array(n);
  let norm = 0;
  for (let i = 0; i < n; i++) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    values[i] = r * Math.cos(2 * Math.PI * rand());
    norm += values[i] * values[i];
  }
  norm = Math.max(Math.sqrt(norm), EPS);
  for (let i = 0; i < n; i++) values[i] /= norm;
  return tf.tensor1d(values);
}

/**
 * Creates the u, v state for an HWIO weight of `shape`, registering `${name}.u` and `${name}.v`
 * in `stats`.
 */
export function createSpectralNorm(
  stats: Record<string, tf.Variable>,
  name: string,
  shape: readonly number[],
  seed: number,
): SpectralNormState {
  const cout = shape[3];
  const rows = shape[0] * shape[1] * shape[2];
  const u0 = seededUnitNormal(cout, seed);
  const v0 = seededUnitNormal(rows, seed ^ 0x5bd1e995);
  const state: SpectralNormState = { u: tf.variable(u0, false), v: tf.variable(v0, false) };
  u0.dispose();
  v0.dispose();
  stats[`${name}.u`] = state.u;
  stats[`${name}.v`] = state.v;
  return state;
}

const normalise = (x: tf.Tensor): tf.Tensor => tf.div(x, tf.maximum(tf.norm(x), EPS));

/**
 * One power iteration on `w` from `u`, returning [u'; v'] packed in one vector. It runs as the
 * forward pass of a customGrad, whose inner ops the engine does not record; `w` is read from the
 * closure rather than passed as an input, so no gradient can reach it this way (PyTorch runs this
 * step under no_grad). The only declared input, u, is not a trainable variable, so the node is
 * pruned from backprop; its zero gradient exists only because customGrad requires one.
 */
function powerIteration(w: tf.Tensor4D, u: tf.Tensor): tf.Tensor1D {
  const cout = w.shape[3];
  const rows = w.size / cout;
  const step = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const uIn = args[0] as tf.Tensor;
    // wt = Wᵀ as [rows, cout]: v = normalise(wt·u), u' = normalise(wtᵀ·v).
    const wt = tf.reshape(w, [rows, cout]);
    const v = normalise(tf.matMul(wt, tf.reshape(uIn, [cout, 1])));
    const u2 = normalise(tf.matMul(wt, v, true, false));
    return {
      value: tf.concat([tf.reshape(u2, [cout]), tf.reshape(v, [rows])]),
      gradFunc: () => tf.zerosLike(uIn),
    };
  });
  return step(u) as tf.Tensor1D;
}

/**
 * W / σ for the HWIO weight `w` (see the header). In training mode runs one power iteration and
 * queues the new u, v on `updates`.
 */
export function spectralNormalise(w: tf.Tensor4D, sn: SpectralNormState, training: boolean, updates: StatUpdates): tf.Tensor4D {
  const cout = w.shape[3];
  const rows = w.size / cout;
  let u: tf.Tensor = sn.u;
  let v: tf.Tensor = sn.v;
  if (training) {
    const packed = powerIteration(w, sn.u);
    u = tf.slice(packed, [0], [cout]);
    v = tf.slice(packed, [cout], [rows]);
    updates.queue(sn.u, u, 0);
    updates.queue(sn.v, v, 0);
  }
  // σ = vᵀ·(wt·u) with wt = reshape(w, [rows, cout]); the gradient reaches w through wt only.
  const sigma = tf.sum(tf.mul(tf.matMul(tf.reshape(w, [rows, cout]), tf.reshape(u, [cout, 1])), tf.reshape(v, [rows, 1])));
  return tf.div(w, sigma);
}
