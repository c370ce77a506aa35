// Exponential moving average of a network's weights (a shadow copy, Polyak averaging), for previews and
// evaluation with smoother weights than the ones being trained.
//
// Invariants: the shadow variables are owned here and never trainable. Between swapIn() and swapOut()
// the network's variables hold the shadow values and the training values wait in `#saved`; update()
// refuses to run then (it would average the shadow with itself), and the optimizer must not step.
// tfjs tensors are immutable and Variable.assign only rebinds the variable to another tensor's data,
// so swapping copies no data and restores the training weights bit for bit.

import * as tf from '@tensorflow/tfjs-core';

import { SrganError } from '../../util/errors.js';

export interface Ema {
  /**
   * shadow ← d·shadow + (1 − d)·value, for every variable; in place, allocates nothing that outlives it.
   * d is `decay`, or with `step` (1-based count of training steps so far, this one included) the warm-up
   * min(decay, (1 + step) / (10 + step)): early on the average forgets the random init quickly instead of
   * carrying e^(−step·(1−decay)) of it (a 0.999 average still held 13% init at step 2000). A function of
   * the step alone, so a resumed run averages exactly as an uninterrupted one.
   */
  update(step?: number): void;
  /** The averaged weights, by the same names as the network's variables. Not trainable. */
  readonly shadow: Readonly<Record<string, tf.Variable>>;
  readonly decay: number;
  /** Puts the shadow values into the network's variables, keeping the training values aside. */
  swapIn(): void;
  /** Puts the training values back, exactly. */
  swapOut(): void;
  /** True between swapIn() and swapOut(). */
  readonly swapped: boolean;
  /**
   * Runs `fn` with the averaged weights swapped in and swaps back when it returns or throws. If `fn`
   * returns a promise, the swap-back waits for it to settle; nothing may train in between.
   */
  withAverage<T>(fn: () => T): T;
  /** Sets the shadow to the current training values (after loading weights, say). */
  reset(): void;
  /** Frees the shadow (swapping back first if needed). The network's variables are untouched. */
  dispose(): void;
}

/**
 * An EMA of `variables` (float32), starting from their current values, with `decay` in [0, 1)
 * (default 0.999; 0 makes the shadow follow the weights exactly).
 */
export function createEma(variables: Record<string, tf.Variable>, decay = 0.999): Ema {
  if (!(Number.isFinite(decay) && decay >= 0 && decay < 1)) throw new RangeError(`decay must be in [0, 1), got ${decay}`);
  const names = Object.keys(variables);
  for (const k of names) {
    const v = variables[k];
    if (v.dtype !== 'float32') throw new TypeError(`variables.${k}: expected a float32 variable, got ${v.dtype}`);
  }
  return new WeightEma(variables, names, decay);
}

class WeightEma implements Ema {
  readonly decay: number;
  readonly shadow: Readonly<Record<string, tf.Variable>>;
  readonly #vars: Record<string, tf.Variable>;
  readonly #names: readonly string[];
  #saved: Record<string, tf.Tensor> | null = null;
  #disposed = false;

  constructor(vars: Record<string, tf.Variable>, names: readonly string[], decay: number) {
    this.decay = decay;
    this.#vars = { ...vars };
    this.#names = names;
    const shadow: Record<string, tf.Variable> = {};
    // A new variable shares the value's (immutable) data until either side is assigned.
    for (const k of names) shadow[k] = tf.variable(vars[k], false);
    this.shadow = Object.freeze(shadow);
  }

  get swapped(): boolean {
    return this.#saved !== null;
  }

  update(step?: number): void {
    this.#check('update');
    if (step !== undefined && !(Number.isInteger(step) && step >= 1))
      throw new RangeError(`Ema.update: step must be an integer ≥ 1, got ${step}`);
    if (this.#saved) throw new SrganError('SRGAN_ERR_BAD_STATE', 'Ema.update: the averaged weights are swapped in; call swapOut() first');
    const d = step === undefined ? this.decay : Math.min(this.decay, (1 + step) / (10 + step));
    tf.tidy(() => {
      const a = tf.scalar(d);
      const b = tf.scalar(1 - d);
      for (const k of this.#names) {
        const s = this.shadow[k];
        s.assign(tf.add(tf.mul(s, a), tf.mul(this.#vars[k], b)));
      }
    });
  }

  swapIn(): void {
    this.#check('swapIn');
    if (this.#saved) throw new SrganError('SRGAN_ERR_BAD_STATE', 'Ema.swapIn: already swapped in');
    const saved: Record<string, tf.Tensor> = {};
    for (const k of this.#names) {
      const v = this.#vars[k];
      // keep(): a swap may start inside a tidy (a preview) and end outside it.
      saved[k] = tf.keep(tf.clone(v));
      v.assign(this.shadow[k]);
    }
    this.#saved = saved;
  }

  swapOut(): void {
    this.#check('swapOut');
    const saved = this.#saved;
    if (!saved) throw new SrganError('SRGAN_ERR_BAD_STATE', 'Ema.swapOut: not swapped in');
    for (const k of this.#names) {
      this.#vars[k].assign(saved[k]);
      saved[k].dispose();
    }
    this.#saved = null;
  }

  withAverage<T>(fn: () => T): T {
    this.swapIn();
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.swapOut();
      throw err;
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (v) => {
          this.swapOut();
          return v;
        },
        (err: unknown) => {
          this.swapOut();
          throw err;
        },
      ) as T;
    }
    this.swapOut();
    return result;
  }

  reset(): void {
    this.#check('reset');
    if (this.#saved) throw new SrganError('SRGAN_ERR_BAD_STATE', 'Ema.reset: the averaged weights are swapped in; call swapOut() first');
    for (const k of this.#names) this.shadow[k].assign(this.#vars[k]);
  }

  dispose(): void {
    if (this.#disposed) return;
    if (this.#saved) this.swapOut();
    for (const k of this.#names) this.shadow[k].dispose();
    this.#disposed = true;
  }

  #check(op: string): void {
    if (this.#disposed) throw new SrganError('SRGAN_ERR_BAD_STATE', `Ema.${op}: disposed`);
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
