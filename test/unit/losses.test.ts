// Losses (docs/seed.md §4.3, §4.4) against hand-computed values.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from '../../src/models/losses/pixel-adversarial.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const softplus = (x: number) => Math.log1p(Math.exp(x));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** A [1, n, 1, 1] map from values, the shape of a D logit map. */
const map = (v: number[]) => tf.tensor4d(v, [1, v.length, 1, 1]);

describe('mse', () => {
  it('is the mean over every element', () => {
    tf.tidy(() => {
      const a = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      const b = tf.tensor4d([0, 2, 5, 4], [1, 2, 2, 1]);
      expect(mse(a, b).dataSync()[0]).toBeCloseTo((1 + 0 + 4 + 0) / 4, 6);
    });
  });

  it('refuses mismatched shapes', () => {
    tf.tidy(() => {
      expect(() => mse(tf.zeros([1, 2, 2, 1]), tf.zeros([1, 2, 2, 3]))).toThrow(RangeError);
    });
  });
});

describe('discriminatorLoss', () => {
  it('is mean(softplus(Dy − Dl))', () => {
    tf.tidy(() => {
      const dy = map([0, 1, -2, 30]);
      const dl = map([0, -1, 1, 0]);
      const want = (softplus(0) + softplus(2) + softplus(-3) + 30) / 4;
      expect(discriminatorLoss(dy, dl).dataSync()[0]).toBeCloseTo(want, 5);
    });
  });

  it('has gradient σ(d)/n for Dy and −σ(d)/n for Dl', () => {
    tf.tidy(() => {
      const d = [0.5, -1, 2];
      const [gy, gl] = tf.grads((a: tf.Tensor, b: tf.Tensor) => discriminatorLoss(a, b))([map(d), map([0, 0, 0])]);
      d.forEach((v, i) => {
        expect(gy.dataSync()[i]).toBeCloseTo(sigmoid(v) / 3, 6);
        expect(gl.dataSync()[i]).toBeCloseTo(-sigmoid(v) / 3, 6);
      });
    });
  });
});

describe('generatorAdvLoss', () => {
  // d = Dy − Dl = [1, −1, 0, −3, 1e4]: pixels 0 and 4 have d > 0 (masked), pixel 2 (d = 0) is not.
  const dyV = [1.5, -1, 0.25, -2, 1e4];
  const dlV = [0.5, 0, 0.25, 1, 0];
  const d = dyV.map((v, i) => v - dlV[i]);

  it('is the mean over ALL pixels of (d > 0 ? 0 : softplus(−d))', () => {
    tf.tidy(() => {
      const want = (0 + softplus(1) + softplus(0) + softplus(3) + 0) / 5;
      expect(generatorAdvLoss(map(dyV), map(dlV)).dataSync()[0]).toBeCloseTo(want, 5);
    });
  });

  it('passes exactly zero gradient where Dy > Dl, and −σ(−d)/n elsewhere', () => {
    tf.tidy(() => {
      const [gy, gl] = tf.grads((a: tf.Tensor, b: tf.Tensor) => generatorAdvLoss(a, b))([map(dyV), map(dlV)]);
      const gyv = gy.dataSync();
      const glv = gl.dataSync();
      d.forEach((v, i) => {
        if (v > 0) {
          expect(gyv[i]).toBe(0);
          expect(Math.abs(glv[i])).toBe(0);
        } else {
          expect(gyv[i]).toBeCloseTo(-sigmoid(-v) / 5, 6);
          expect(glv[i]).toBeCloseTo(sigmoid(-v) / 5, 6);
        }
      });
      expect(Array.from(gyv).every(Number.isFinite)).toBe(true);
    });
  });

  it('scales its gradient with the upstream weight (w_adv applied by the caller)', () => {
    tf.tidy(() => {
      const g = tf.grad((a: tf.Tensor) => tf.mul(generatorAdvLoss(a, map(dlV)), 3e-4))(map(dyV));
      expect(g.dataSync()[1]).toBeCloseTo((3e-4 * -sigmoid(1)) / 5, 9);
    });
  });

  it('is log 2 at d = 0 everywhere', () => {
    tf.tidy(() => {
      expect(generatorAdvLoss(map([2, 2]), map([2, 2])).dataSync()[0]).toBeCloseTo(Math.LN2, 6);
    });
  });
});

describe('shiftCrop', () => {
  /** A scripted rand(): returns the listed values in turn, and counts the draws. */
  function scripted(values: number[]) {
    let i = 0;
    const rand = () => values[i++ % values.length];
    return { rand, draws: () => i };
  }

  it('crops every tensor by the same offset to S − maxShift, rx drawn first', () => {
    tf.tidy(() => {
      const S = 10;
      const a = tf.reshape(tf.range(0, 2 * S * S * 3), [2, S, S, 3]) as tf.Tensor4D;
      const b = tf.neg(a) as tf.Tensor4D;
      const { rand, draws } = scripted([0.99, 0.3]); // rx = 7, ry = 2 for maxShift 8
      const [ca, cb] = shiftCrop([a, b], 8, rand);
      expect(draws()).toBe(2);
      expect(ca.shape).toEqual([2, 2, 2, 3]);
      expect(cb.shape).toEqual([2, 2, 2, 3]);
      const want = tf.slice(a, [0, 2, 7, 0], [-1, 2, 2, -1]).dataSync();
      expect(Array.from(ca.dataSync())).toEqual(Array.from(want));
      expect(Array.from(cb.dataSync())).toEqual(Array.from(want).map((v) => -v));
    });
  });

  it('draws independently on each call, rx and ry in [0, maxShift − 1]', () => {
    tf.tidy(() => {
      const x = tf.reshape(tf.range(0, 6 * 6), [1, 6, 6, 1]) as tf.Tensor4D;
      const { rand, draws } = scripted([0, 0.5, 0.999999, 0.25]);
      const [first] = shiftCrop([x], 4, rand); // rx 0, ry 2
      const [second] = shiftCrop([x], 4, rand); // rx 3, ry 1
      expect(draws()).toBe(4);
      // Top-left value = ry·6 + rx.
      expect(first.dataSync()[0]).toBe(2 * 6 + 0);
      expect(second.dataSync()[0]).toBe(1 * 6 + 3);
      expect(first.shape).toEqual([1, 2, 2, 1]);
    });
  });

  it('has a gradient that puts dy back in place (zeros elsewhere)', () => {
    tf.tidy(() => {
      const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
      const g = tf.grad((t: tf.Tensor) => tf.sum(shiftCrop([t as tf.Tensor4D], 2, () => 0.75)[0]))(x);
      // rx = ry = 1, crop 2×2.
      expect(Array.from(g.dataSync())).toEqual([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    });
  });

  it('returns the tensors untouched for maxShift 0, and refuses bad input', () => {
    tf.tidy(() => {
      const x = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
      const { rand, draws } = scripted([0.5]);
      expect(shiftCrop([x], 0, rand)[0]).toBe(x);
      expect(draws()).toBe(0);
      expect(() => shiftCrop([x], 4, rand)).toThrow(RangeError);
      expect(() => shiftCrop([x, tf.zeros([1, 5, 4, 1]) as tf.Tensor4D], 2, rand)).toThrow(RangeError);
    });
  });
});
