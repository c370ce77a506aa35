// The side channel through which a network's non-trainable state (BatchNorm running statistics,
// spectral-norm vectors) is updated: queued during a training-mode forward, assigned later.
//
// Why not assign in the forward pass: `apply` normally runs inside tf.variableGrads. Queuing keeps
// assigns off the tape (the tape records only the copies of the new values, which lead nowhere and
// are pruned), and the trainer commits outside the tape, after the optimizer step. Updates are
// applied in call order, one per queued value, as PyTorch applies them in its forward.
// Networks commit whatever is pending at the start of every `apply`, so at most one call's updates
// wait and nothing accumulates if a caller never commits; that late commit may run under a tape,
// which is harmless (none of its inputs depend on the variables being differentiated).

import * as tf from '@tensorflow/tfjs-core';

interface Pending {
  target: tf.Variable;
  value: tf.Tensor;
  momentum: number;
}

export class StatUpdates {
  #pending: Pending[] = [];

  /**
   * Queues target ← momentum·target + (1 − momentum)·value (momentum 0: replace). Keeps its own
   * copy of `value`, so it may be called inside a tidy.
   */
  queue(target: tf.Variable, value: tf.Tensor, momentum: number): void {
    if (!(momentum >= 0 && momentum < 1)) throw new RangeError(`StatUpdates.queue: momentum must be in [0, 1), got ${momentum}`);
    this.#pending.push({ target, value: tf.keep(tf.clone(value)), momentum });
  }

  /** How many updates wait. */
  get size(): number {
    return this.#pending.length;
  }

  /** Applies the queued updates in order. */
  commit(): void {
    if (this.#pending.length === 0) return;
    const todo = this.#pending;
    this.#pending = [];
    tf.tidy(() => {
      for (const p of todo) {
        const next = p.momentum === 0 ? p.value : tf.add(tf.mul(p.target, p.momentum), tf.mul(p.value, 1 - p.momentum));
        p.target.assign(next);
      }
    });
    for (const p of todo) p.value.dispose();
  }

  /** Drops what waits, uncommitted. */
  dispose(): void {
    for (const p of this.#pending) p.value.dispose();
    this.#pending = [];
  }
}
