// EMA of weights (models/train/ema.ts) on the pure-JS cpu backend: exact values, no leaked tensors, and swaps
// that leave the training weights bit for bit as they were.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import { createEma } from '../../src/models/train/ema.js';
import { mulberry32 } from '../../src/util/prng.js';
import { hasCode } from '../../src/util/errors.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());

function randomVars(seed: number): Record<string, tf.Variable> {
  const r = mulberry32(seed);
  const rnd = (n: number) => Array.from({ length: n }, () => r() * 2 - 1);
  return {
    'conv1.w': tf.variable(tf.tensor4d(rnd(2 * 2 * 1 * 3), [2, 2, 1, 3])),
    'conv1.b': tf.variable(tf.tensor1d(rnd(3))),
    'head.w': tf.variable(tf.tensor2d(rnd(6), [3, 2])),
  };
}

/** Simulated optimizer step: every variable moves to a new value (no gradients needed). */
function train(vars: Record<string, tf.Variable>, r: () => number): void {
  tf.tidy(() => {
    for (const v of Object.values(vars)) v.assign(tf.add(tf.mul(v, 0.9), tf.scalar(r() - 0.5)));
  });
}

const disposeAll = (vars: Record<string, tf.Variable>) => Object.values(vars).forEach((v) => v.dispose());

describe('createEma', () => {
  it('starts at the current weights and averages exactly (decay 0.5, binary-exact values)', () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const ema = createEma({ v }, 0.5);
    expect(values(ema.shadow.v)).toEqual([1, 2]);
    expect(ema.shadow.v.trainable).toBe(false);
    v.assign(tf.tensor1d([3, 6]));
    ema.update(); // 0.5·[1, 2] + 0.5·[3, 6]
    expect(values(ema.shadow.v)).toEqual([2, 4]);
    v.assign(tf.tensor1d([5, -2]));
    ema.update(); // 0.5·[2, 4] + 0.5·[5, −2]
    expect(values(ema.shadow.v)).toEqual([3.5, 1]);
    ema.update(); // weights unchanged: halfway again
    expect(values(ema.shadow.v)).toEqual([4.25, -0.5]);
    expect(values(v)).toEqual([5, -2]); // update never touches the weights
    ema.dispose();
    v.dispose();
  });

  it('matches shadow = decay·shadow + (1 − decay)·v in float32 with the default decay 0.999', () => {
    const v = tf.variable(tf.tensor1d([0.25, -1.5, 3]));
    const ema = createEma({ v });
    expect(ema.decay).toBe(0.999);
    const f = Math.fround;
    const D = f(0.999);
    const E = f(1 - 0.999);
    let expected = [0.25, -1.5, 3];
    const r = mulberry32(4);
    for (let step = 0; step < 5; step++) {
      const next = [r() * 4 - 2, r() * 4 - 2, r() * 4 - 2].map(f);
      v.assign(tf.tensor1d(next));
      ema.update();
      expected = expected.map((s, i) => f(f(s * D) + f(next[i] * E)));
      expect(values(ema.shadow.v)).toEqual(expected);
    }
    ema.dispose();
    v.dispose();
  });

  it('with the step, warms up: decay min(decay, (1 + step)/(10 + step)), so early averages forget the init', () => {
    const v = tf.variable(tf.tensor1d([0.5, -2]));
    const ema = createEma({ v }, 0.99);
    const f = Math.fround;
    let expected = [0.5, -2];
    const r = mulberry32(9);
    for (const step of [1, 2, 3, 50, 500, 501]) {
      const next = [r() * 4 - 2, r() * 4 - 2].map(f);
      v.assign(tf.tensor1d(next));
      ema.update(step);
      // step 1: 2/11 of the old shadow; step 500: 501/510 > 0.99, so the decay itself.
      const d = Math.min(0.99, (1 + step) / (10 + step));
      expected = expected.map((s, i) => f(f(s * f(d)) + f(next[i] * f(1 - d))));
      expect(values(ema.shadow.v), `step ${step}`).toEqual(expected);
    }
    expect(() => ema.update(0)).toThrow(RangeError);
    expect(() => ema.update(1.5)).toThrow(RangeError);
    ema.dispose();
    v.dispose();
  });

  it('decay 0 makes the shadow follow the weights exactly', () => {
    const vars = randomVars(1);
    const ema = createEma(vars, 0);
    train(vars, mulberry32(2));
    ema.update();
    for (const k of Object.keys(vars)) expect(values(ema.shadow[k])).toEqual(values(vars[k]));
    ema.dispose();
    disposeAll(vars);
  });

  it('keeps the tensor count flat across updates, swaps and withAverage, in and out of tidy', () => {
    const vars = randomVars(3);
    const ema = createEma(vars, 0.9);
    const r = mulberry32(5);
    train(vars, r);
    ema.update();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      train(vars, r);
      if (i % 2 === 0) ema.update();
      else tf.tidy(() => ema.update()); // as the GAN step calls it
      ema.swapIn();
      ema.swapOut();
      tf.tidy(() => ema.withAverage(() => tf.sum(vars['head.w']))).dispose(); // swap inside a tidy, result kept by it
      const out = ema.withAverage(() => tf.tidy(() => tf.mul(vars['conv1.b'], 2)));
      out.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    ema.dispose();
    expect(tf.memory().numTensors).toBe(before - 3);
    disposeAll(vars);
  });

  it('swapIn puts the averaged weights in the same variables; swapOut restores the training weights bit for bit', () => {
    const vars = randomVars(6);
    const ema = createEma(vars, 0.7);
    const r = mulberry32(7);
    for (let i = 0; i < 4; i++) {
      train(vars, r);
      ema.update();
    }
    const training = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, values(v)]));
    const average = Object.fromEntries(Object.entries(ema.shadow).map(([k, v]) => [k, values(v)]));
    expect(average).not.toEqual(training);
    const objects = { ...vars };
    ema.swapIn();
    expect(ema.swapped).toBe(true);
    for (const k of Object.keys(vars)) {
      expect(vars[k]).toBe(objects[k]); // same Variable objects: a network reading them sees the average
      expect(values(vars[k])).toEqual(average[k]);
    }
    ema.swapOut();
    expect(ema.swapped).toBe(false);
    for (const k of Object.keys(vars)) {
      expect(values(vars[k])).toEqual(training[k]);
      expect(values(ema.shadow[k])).toEqual(average[k]); // the shadow is untouched by the swap
    }
    ema.dispose();
    disposeAll(vars);
  });

  it('a preview with the averaged weights does not disturb training', () => {
    // Two identical runs, one with a preview (withAverage) every step: same weights and same average at the end.
    const run = (preview: boolean) => {
      const vars = randomVars(8);
      const ema = createEma(vars, 0.8);
      const r = mulberry32(9);
      const seen: number[] = [];
      for (let i = 0; i < 6; i++) {
        train(vars, r);
        ema.update();
        if (preview) {
          const sum = (t: tf.Tensor) => tf.tidy(() => tf.sum(t).dataSync()[0]);
          const inPreview = ema.withAverage(() => sum(vars['conv1.w']));
          expect(inPreview).toBe(sum(ema.shadow['conv1.w'])); // the preview saw the average…
          expect(inPreview).not.toBe(sum(vars['conv1.w'])); // …not the training weights
          seen.push(inPreview);
        }
      }
      const out = {
        weights: Object.values(vars).map(values),
        average: Object.values(ema.shadow).map(values),
        seen,
      };
      ema.dispose();
      disposeAll(vars);
      return out;
    };
    const plain = run(false);
    const withPreview = run(true);
    expect(withPreview.weights).toEqual(plain.weights);
    expect(withPreview.average).toEqual(plain.average);
    expect(withPreview.seen).toHaveLength(6);
  });

  it('withAverage returns fn’s value, and swaps back after a throw and after an async fn settles', async () => {
    const v = tf.variable(tf.tensor1d([10]));
    const ema = createEma({ v }, 0.5);
    v.assign(tf.tensor1d([20]));
    ema.update(); // shadow 15, weights 20
    expect(ema.withAverage(() => values(v)[0])).toBe(15);
    expect(() =>
      ema.withAverage(() => {
        throw new Error('preview failed');
      }),
    ).toThrow('preview failed');
    expect([ema.swapped, values(v)[0]]).toEqual([false, 20]);

    let resolve!: () => void;
    const gate = new Promise<void>((r) => (resolve = r));
    const pending = ema.withAverage(async () => {
      await gate;
      return values(v)[0];
    });
    expect(ema.swapped).toBe(true); // still in use while the async preview runs
    resolve();
    expect(await pending).toBe(15);
    expect([ema.swapped, values(v)[0]]).toEqual([false, 20]);

    await expect(ema.withAverage(async () => Promise.reject(new Error('async failure')))).rejects.toThrow('async failure');
    expect([ema.swapped, values(v)[0]]).toEqual([false, 20]);
    ema.dispose();
    v.dispose();
  });

  it('refuses misuse with SRGAN_ERR_BAD_STATE', () => {
    const v = tf.variable(tf.tensor1d([1]));
    const ema = createEma({ v });
    const code = (fn: () => void): boolean => {
      try {
        fn();
      } catch (err) {
        return hasCode(err, 'SRGAN_ERR_BAD_STATE');
      }
      return false;
    };
    expect(code(() => ema.swapOut())).toBe(true);
    ema.swapIn();
    expect(code(() => ema.swapIn())).toBe(true);
    expect(code(() => ema.update())).toBe(true); // would average the shadow with itself
    expect(code(() => ema.reset())).toBe(true);
    ema.dispose(); // swaps back first
    expect(values(v)).toEqual([1]);
    expect(code(() => ema.update())).toBe(true);
    ema.dispose(); // idempotent
    v.dispose();
  });

  it('reset() restarts the average from the current weights', () => {
    const v = tf.variable(tf.tensor1d([1, 1]));
    const ema = createEma({ v }, 0.5);
    v.assign(tf.tensor1d([3, 5]));
    ema.update();
    ema.reset();
    expect(values(ema.shadow.v)).toEqual([3, 5]);
    ema.dispose();
    v.dispose();
  });

  it('validates its arguments', () => {
    const v = tf.variable(tf.tensor1d([1]));
    for (const d of [1, -0.1, Number.NaN, 1.5]) expect(() => createEma({ v }, d)).toThrow(RangeError);
    const i = tf.variable(tf.tensor1d([1], 'int32'));
    expect(() => createEma({ i })).toThrow(/variables\.i: expected a float32 variable, got int32/);
    v.dispose();
    i.dispose();
  });
});
