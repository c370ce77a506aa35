// Networks: shapes, parameter counts, seeded init, pixel shuffle (forward and gradient), the
// discriminator's BatchNorm statistics, and a short ESPCN training run on wasm.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { createEspcn } from '../../src/models/archs/espcn.js';
import { createPatchDiscriminator } from '../../src/models/archs/discriminator.js';
import { mse } from '../../src/models/losses/pixel-adversarial.js';
import { conv2d, pixelShuffle, seededUniform } from '../../src/models/archs/ops.js';
import { traceGraph } from '../../src/models/archs/graph.js';
import { compactGraph } from '../../src/models/archs/compact.js';
import { buildGenerator, generatorGraph } from '../../src/models/archs/build.js';
import { spaceToDepthRef } from '../support/reference.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('ESPCN', () => {
  it('counts 212 656 params for C=128, r=4 and 69 488 for C=64, r=4', () => {
    const g128 = createEspcn({ channels: 128, scale: 4, seed: 1 });
    const g64 = createEspcn({ channels: 64, scale: 4, seed: 1 });
    expect(g128.paramCount).toBe(212_656);
    expect(g64.paramCount).toBe(69_488);
    g128.dispose();
    g64.dispose();
  });

  it('upscales [n, h, w, 3] by r', () => {
    const g = createEspcn({ channels: 8, scale: 4, seed: 3 });
    const y = tf.tidy(() => g.apply(tf.zeros([2, 5, 6, 3])));
    expect(y.shape).toEqual([2, 20, 24, 3]);
    tf.dispose(y);
    g.dispose();
  });

  it('initialises reproducibly from the seed, within U(±1/√fan_in)', () => {
    const a = createEspcn({ channels: 16, scale: 2, seed: 7 });
    const b = createEspcn({ channels: 16, scale: 2, seed: 7 });
    const c = createEspcn({ channels: 16, scale: 2, seed: 8 });
    for (const name of Object.keys(a.variables)) {
      expect(Array.from(a.variables[name].dataSync())).toEqual(Array.from(b.variables[name].dataSync()));
    }
    expect(maxAbsDiff(a.variables['conv2.w'].dataSync(), c.variables['conv2.w'].dataSync())).toBeGreaterThan(0);
    const bound = 1 / Math.sqrt(3 * 3 * 16);
    const w = a.variables['conv2.w'].dataSync();
    const maxAbs = Array.from(w).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs).toBeLessThanOrEqual(bound);
    expect(maxAbs).toBeGreaterThan(0.95 * bound);
    [a, b, c].forEach((g) => g.dispose());
  });

  it('rejects bad config naming the field', () => {
    expect(() => createEspcn({ channels: 0, scale: 4, seed: 1 })).toThrow(/espcn\.channels/);
    expect(() => createEspcn({ channels: 8, scale: 1.5, seed: 1 })).toThrow(/espcn\.scale/);
  });
});

describe('pixelShuffle', () => {
  const shapes: Array<[number[], number]> = [
    [[2, 3, 4, 12], 2],
    [[1, 2, 3, 48], 4],
    [[3, 5, 2, 18], 3],
  ];

  it.each(shapes)('equals tf.depthToSpace for %j, r=%i', (shape, r) => {
    tf.tidy(() => {
      const x = seededUniform(shape, 1, 11) as tf.Tensor4D;
      const got = pixelShuffle(x, r);
      const want = tf.depthToSpace(x, r);
      expect(got.shape).toEqual(want.shape);
      expect(maxAbsDiff(got.dataSync(), want.dataSync())).toBe(0);
    });
  });

  it.each(shapes)('has the exact gradient spaceToDepth(dL/dy) for %j, r=%i, on wasm and cpu', async (shape, r) => {
    // d/dx Σ pixelShuffle(x)·R = spaceToDepth(R): the shuffle is a permutation.
    const lrShape = [shape[0], shape[1], shape[2], shape[3] / (r * r)];
    const outShape = [lrShape[0], lrShape[1] * r, lrShape[2] * r, lrShape[3]];
    for (const backend of ['cpu', 'wasm'] as const) {
      await initBackend(backend);
      tf.tidy(() => {
        const x = seededUniform(shape, 1, 12) as tf.Tensor4D;
        const R = seededUniform(outShape, 1, 13) as tf.Tensor4D;
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(pixelShuffle(t as tf.Tensor4D, r), R)))(x);
        expect(g.shape).toEqual(shape);
        expect(maxAbsDiff(g.dataSync(), spaceToDepthRef(R.dataSync(), lrShape, r))).toBe(0);
      });
    }
  });
});

describe('conv2d helper', () => {
  it('adds the bias per output channel and refuses numeric pads with non-square filters', () => {
    tf.tidy(() => {
      const x = tf.ones([1, 3, 3, 2]) as tf.Tensor4D;
      const w = tf.zeros([3, 3, 2, 2]) as tf.Tensor4D;
      const y = conv2d(x, w, tf.tensor1d([1, -2]));
      expect(Array.from(y.dataSync().slice(0, 2))).toEqual([1, -2]);
      expect(() => conv2d(x, tf.zeros([3, 1, 2, 2]) as tf.Tensor4D, null, { pad: 1 })).toThrow(RangeError);
    });
  });
});

describe('patch discriminator (§5.1 shallow)', () => {
  it('counts 174 817 trainable params for mid 32, and 1 152 BatchNorm stats', () => {
    const d = createPatchDiscriminator({ mid: 32, seed: 1 });
    expect(d.paramCount).toBe(174_817);
    expect(Object.values(d.stats).reduce((a, v) => a + v.size, 0)).toBe(1_152);
    expect(Object.values(d.stats).every((v) => !v.trainable)).toBe(true);
    d.dispose();
  });

  it('outputs a 1/4-resolution logit map, cropped by cropPx per side', () => {
    const d = createPatchDiscriminator({ mid: 4, seed: 2 });
    const dc = createPatchDiscriminator({ mid: 4, seed: 2, cropPx: 1 });
    tf.tidy(() => {
      expect(d.apply(tf.zeros([2, 16, 16, 3]), { training: false }).shape).toEqual([2, 4, 4, 1]);
      expect(d.apply(tf.zeros([1, 19, 23, 3]), { training: true }).shape).toEqual([1, 4, 5, 1]);
      const x = seededUniform([2, 16, 16, 3], 1, 3) as tf.Tensor4D;
      // Batch statistics: the same in both, whatever running stats the calls above left behind.
      const full = d.apply(x, { training: true });
      const cropped = dc.apply(x, { training: true });
      expect(cropped.shape).toEqual([2, 2, 2, 1]);
      expect(maxAbsDiff(cropped.dataSync(), tf.slice(full, [0, 1, 1, 0], [-1, 2, 2, -1]).dataSync())).toBe(0);
    });
    expect(() => dc.apply(tf.zeros([1, 8, 8, 3]), { training: false })).toThrow(RangeError);
    d.commitStats();
    d.dispose();
    dc.dispose();
  });

  it('updates running stats with momentum 0.9 from the batch moments (unbiased variance)', () => {
    const d = createPatchDiscriminator({ mid: 4, seed: 4 });
    const x = seededUniform([2, 8, 8, 3], 1, 5) as tf.Tensor4D;
    d.apply(x, { training: true }).dispose();
    // Nothing is assigned until the commit.
    expect(Array.from(d.stats['b1.bn.mean'].dataSync())).toEqual([0, 0, 0, 0]);
    d.commitStats();
    const { mean, variance } = tf.tidy(() => {
      const h = conv2d(x, d.variables['b1.conv.w'] as tf.Variable<tf.Rank.R4>, null);
      const m = tf.moments(h, [0, 1, 2]);
      const n = 2 * 8 * 8;
      return { mean: m.mean.dataSync(), variance: tf.mul(m.variance, n / (n - 1)).dataSync() };
    });
    const rm = d.stats['b1.bn.mean'].dataSync();
    const rv = d.stats['b1.bn.var'].dataSync();
    for (let c = 0; c < 4; c++) {
      expect(rm[c]).toBeCloseTo(0.1 * mean[c], 6);
      expect(rv[c]).toBeCloseTo(0.9 + 0.1 * variance[c], 6);
    }
    x.dispose();
    d.dispose();
  });

  it('normalises with batch statistics in training mode and running stats otherwise', () => {
    const d = createPatchDiscriminator({ mid: 4, seed: 6 });
    tf.tidy(() => {
      // Same first image, different second image: with batch statistics the first image's logits
      // depend on its batch-mate; with running statistics they do not.
      const a = seededUniform([1, 8, 8, 3], 1, 7);
      const b1 = tf.concat([a, seededUniform([1, 8, 8, 3], 1, 8)]) as tf.Tensor4D;
      const b2 = tf.concat([a, tf.mul(seededUniform([1, 8, 8, 3], 1, 9), 3)]) as tf.Tensor4D;
      const first = (t: tf.Tensor) => tf.slice(t, [0, 0, 0, 0], [1, -1, -1, -1]).dataSync();
      expect(maxAbsDiff(first(d.apply(b1, { training: true })), first(d.apply(b2, { training: true })))).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(first(d.apply(b1, { training: false })), first(d.apply(b2, { training: false })))).toBe(0);
    });
    d.commitStats();
    d.dispose();
  });

  it('trains with tf.variableGrads in training mode, with a flat tensor count and no commit needed', () => {
    const d = createPatchDiscriminator({ mid: 4, seed: 8 });
    const vars = Object.values(d.variables);
    const x = seededUniform([2, 8, 8, 3], 1, 9) as tf.Tensor4D;
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(d.apply(x, { training: true })) as tf.Scalar, vars);
      expect(Object.keys(grads).length).toBe(vars.length);
      for (const v of vars) expect(grads[v.name].shape).toEqual(v.shape);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    // One call's moments may wait (2 tensors per block); the next apply commits them.
    expect(tf.memory().numTensors).toBe(before);
    d.commitStats();
    expect(d.stats['b1.bn.mean'].dataSync()[0]).not.toBe(0);
    x.dispose();
    d.dispose();
  });
});

describe('training on wasm', () => {
  it('ESPCN C=16 + Adam(1e-3): loss falls clearly in 30 steps, tensor count flat', async () => {
    await initBackend('wasm');
    const g = createEspcn({ channels: 16, scale: 2, seed: 21 });
    const vars = Object.values(g.variables);
    // A fixed synthetic batch: smooth HR images and their 2× box-downsampled LR inputs.
    const hr = tf.tidy(() => {
      const noise = tf.add(seededUniform([4, 12, 12, 3], 0.5, 22), 0.5) as tf.Tensor4D;
      return tf.image.resizeBilinear(noise, [24, 24], true);
    });
    const lr = tf.avgPool(hr, 2, 2, 'valid');
    const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let i = 0; i < 30; i++) {
      const loss = opt.minimize(() => mse(g.apply(lr), hr), true, vars)!;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(losses[29]).toBeLessThan(0.5 * losses[0]);
    // Adam creates its moment slots on the first step; from then on nothing may accumulate.
    expect(new Set(counts.slice(1)).size).toBe(1);
    opt.dispose();
    tf.dispose([hr, lr]);
    g.dispose();
  });
});

describe('traceGraph: peak of live activations', () => {
  it('frees each value after its last reader: Compact F = 4, N = 1, ×2 by hand', () => {
    // Floats per LR pixel, live after each op (the input, 3, is read by the first conv and the
    // upsampling): conv 3+4, PReLU 7+4−4, conv 7+4−4, PReLU 7+4−4, conv to 12: 7+12−4, shuffle
    // 15+12−12, nearest 15+12−3, add 24+12 = 36 at its peak, then 12 (the result).
    const trace = traceGraph(compactGraph({ channels: 4, convs: 1, scale: 2 }), 5, 7);
    expect(trace.peakLiveBytes).toBe(4 * 36 * 5 * 7);
  });

  it('counts a residual as Mul then Add, and grows with the image', () => {
    const rrdb = generatorGraph({ kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 2);
    const small = traceGraph(rrdb, 4, 4).peakLiveBytes;
    expect(traceGraph(rrdb, 8, 8).peakLiveBytes).toBe(4 * small);
    // At least one dense block's concat (8 + 4·4 = 24 channels) and its inputs are alive at once.
    expect(small / 16 / 4).toBeGreaterThan(24 + 8);
  });
});

describe('Generator.infer', () => {
  it("gives apply's output while holding one block's intermediates at a time, and leaves no tensors", async () => {
    for (const cfg of [
      { kind: 'final', channels: 8, blocks: 4, dilatedBlocks: true },
      { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 3 },
    ] as const) {
      const gen = buildGenerator(cfg, 2, 5);
      const x = tf.randomUniform([1, 12, 10, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
      try {
        const start = tf.memory().numTensors;
        const peak = async (f: (x: tf.Tensor4D) => tf.Tensor4D) => (await tf.profile(() => void f(x).dispose())).peakBytes;
        const viaApply = await peak(gen.apply);
        const viaInfer = await peak(gen.infer!);
        expect(tf.memory().numTensors).toBe(start);
        // Four (three) blocks' worth of intermediates against one.
        expect(viaInfer).toBeLessThan(viaApply / 2);
        const a = gen.apply(x);
        const b = gen.infer!(x);
        expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
        tf.dispose([a, b]);
      } finally {
        x.dispose();
        gen.dispose();
      }
    }
  });
});
