// The networks beyond the baseline: ESPCN layouts, the final generator (§3.3), ESRGAN's RRDBNet
// (§10.1), the final dilated discriminator (§5.2), the U-Net discriminator with spectral norm
// (§10.2), and the FLOP counter. Parameter counts are docs/seed.md's; anything that runs is kept to
// tiny inputs and channel counts (the 16M-parameter nets run once, at 8×8).

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { createEspcn, type EspcnConfig } from '../../src/models/archs/espcn.js';
import { createFinalGenerator } from '../../src/models/archs/generator-final.js';
import { createRrdbNet } from '../../src/models/archs/rrdbnet.js';
import { createDilatedDiscriminator, createPatchDiscriminator } from '../../src/models/archs/discriminator.js';
import { createUNetDiscriminator } from '../../src/models/archs/unet-discriminator.js';
import { createSpectralNorm, spectralNormalise } from '../../src/models/archs/spectral-norm.js';
import { StatUpdates } from '../../src/models/archs/stat-updates.js';
import { countFlops } from '../../src/models/archs/flops.js';
import { discriminatorLoss, generatorAdvLoss, mse } from '../../src/models/losses/pixel-adversarial.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import type { Discriminator, Generator } from '../../src/models/archs/network.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const snapshot = (vars: Record<string, tf.Variable>): Record<string, Float32Array> =>
  Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync().slice() as Float32Array]));

const changed = (a: Float32Array, b: Float32Array): boolean => a.some((v, i) => v !== b[i]);

describe('parameter counts (docs/seed.md)', () => {
  it.each([
    // §3.1 (given): plain C=128 r=4, C=64 r=4.
    ['espcn plain C=128 ×4', { channels: 128, scale: 4, seed: 1 }, 212_656],
    ['espcn plain C=64 ×4', { channels: 64, scale: 4, seed: 1 }, 69_488],
    // Derived from §3.1's layer lists: + 4 × (9·128·128 + 128) for d2/d4/d8 + conv3.
    ['espcn dilated C=128 ×4', { channels: 128, scale: 4, seed: 1, layout: 'dilated' }, 802_992],
    // 9 728 + 2 × 147 584 + 18 496 + 36 928 + 9 280 + 1 731.
    ['espcn x2x2 C=128 T=64', { channels: 128, scale: 4, seed: 1, layout: 'x2x2' }, 371_331],
    // 9 728 + 147 584 + 295 168 + 9 280 + 1 731.
    ['espcn conv-after-upsample C=128 ×4', { channels: 128, scale: 4, seed: 1, layout: 'conv-after-upsample' }, 463_491],
  ] as Array<[string, EspcnConfig, number]>)('%s', (_name, cfg, want) => {
    const g = createEspcn(cfg);
    expect(g.paramCount).toBe(want);
    g.dispose();
  });

  it('final generator: 16 293 763 (10 776 451 without dilated blocks); RRDBNet 23×4: 16 697 987', () => {
    const g = createFinalGenerator({ seed: 1 });
    expect(g.paramCount).toBe(16_293_763);
    expect(g.scale).toBe(2);
    g.dispose();
    const g2 = createFinalGenerator({ seed: 1, dilatedBlocks: false });
    expect(g2.paramCount).toBe(10_776_451);
    g2.dispose();
    const r = createRrdbNet({ seed: 1 });
    expect(r.paramCount).toBe(16_697_987);
    expect(r.scale).toBe(4);
    r.dispose();
  });

  it('dilated D mid 32: 2 504 001 trainable + 4 032 BatchNorm stats; U-Net D nf 64: 4 376 897', () => {
    const d = createDilatedDiscriminator({ mid: 32, seed: 1 });
    expect(d.paramCount).toBe(2_504_001);
    expect(Object.values(d.stats).reduce((a, v) => a + v.size, 0)).toBe(4_032);
    d.dispose();
    const u = createUNetDiscriminator({ seed: 1 });
    expect(u.paramCount).toBe(4_376_897);
    // u: cout, v: k·k·cin for each of the 8 spectral-normalised convs.
    expect(Object.keys(u.stats)).toHaveLength(16);
    expect(Object.values(u.stats).every((v) => !v.trainable)).toBe(true);
    u.dispose();
  });
});

describe('output shapes', () => {
  it('ESPCN layouts upscale by their scale', () => {
    const cases: Array<[EspcnConfig, number]> = [
      [{ channels: 8, scale: 4, seed: 1, layout: 'x2x2', tailChannels: 8 }, 4],
      [{ channels: 8, scale: 4, seed: 1, layout: 'conv-after-upsample', tailChannels: 8, shuffleChannels: 2 }, 4],
      [{ channels: 8, scale: 2, seed: 1, layout: 'conv-after-upsample', tailChannels: 8, shuffleChannels: 4 }, 2],
      [{ channels: 8, scale: 4, seed: 1, layout: 'dilated' }, 4],
      [{ channels: 8, scale: 2, seed: 1, layout: 'x2x2', dilations: [2, 4, 8], tailChannels: 8 }, 0],
    ];
    for (const [cfg, r] of cases) {
      if (r === 0) {
        expect(() => createEspcn(cfg)).toThrow(/espcn\.scale must be 4/);
        continue;
      }
      const g = createEspcn(cfg);
      const y = tf.tidy(() => g.apply(tf.zeros([2, 5, 7, 3])));
      expect(y.shape, JSON.stringify(cfg)).toEqual([2, 5 * r, 7 * r, 3]);
      y.dispose();
      g.dispose();
    }
    expect(() => createEspcn({ channels: 8, scale: 4, seed: 1, layout: 'nope' as 'plain' })).toThrow(/espcn\.layout/);
    expect(() => createEspcn({ channels: 8, scale: 4, seed: 1, dilations: [2, 0] })).toThrow(/espcn\.dilations\[1\]/);
  });

  it('final generator ×2 and RRDBNet ×4 at full size on 8×8, and small configs on odd sizes', () => {
    const run = (g: Generator, shape: [number, number, number, number]): number[] => {
      const y = tf.tidy(() => g.apply(seededUniform(shape, 1, 3) as tf.Tensor4D));
      const s = y.shape;
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
      y.dispose();
      g.dispose();
      return s;
    };
    expect(run(createFinalGenerator({ seed: 2 }), [1, 8, 8, 3])).toEqual([1, 16, 16, 3]);
    expect(run(createRrdbNet({ seed: 2 }), [1, 8, 8, 3])).toEqual([1, 32, 32, 3]);
    expect(run(createFinalGenerator({ seed: 2, channels: 4, blocks: 1 }), [3, 5, 7, 3])).toEqual([3, 10, 14, 3]);
    expect(run(createFinalGenerator({ seed: 2, channels: 4, blocks: 2, dilatedBlocks: false }), [1, 5, 3, 3])).toEqual([1, 10, 6, 3]);
    expect(run(createRrdbNet({ seed: 2, channels: 4, growth: 2, blocks: 1 }), [2, 3, 5, 3])).toEqual([2, 12, 20, 3]);
    expect(run(createRrdbNet({ seed: 2, channels: 4, growth: 2, blocks: 1, scale: 2 }), [2, 3, 5, 3])).toEqual([2, 6, 10, 3]);
  });

  it('dilated D: logits at 1/8 (floor), also for odd sizes, in both modes', () => {
    const d = createDilatedDiscriminator({ mid: 4, seed: 3 });
    tf.tidy(() => {
      expect(d.apply(tf.zeros([2, 16, 16, 3]), { training: true }).shape).toEqual([2, 2, 2, 1]);
      expect(d.apply(seededUniform([1, 31, 47, 3], 1, 4) as tf.Tensor4D, { training: false }).shape).toEqual([1, 3, 5, 1]);
    });
    expect(d.outputSize(248, 248)).toEqual([31, 31]);
    expect(d.outputSize(256, 256)).toEqual([32, 32]);
    expect(() => d.apply(tf.zeros([1, 7, 16, 3]), { training: false })).toThrow(RangeError);
    d.commitStats();
    d.dispose();
  });

  it('U-Net D: per-pixel logits at input resolution; sizes must be multiples of 8', () => {
    const u = createUNetDiscriminator({ channels: 4, seed: 4 });
    const us = createUNetDiscriminator({ channels: 4, seed: 4, skipConnection: false });
    tf.tidy(() => {
      const x = seededUniform([2, 16, 24, 3], 1, 5) as tf.Tensor4D;
      expect(u.apply(x, { training: true }).shape).toEqual([2, 16, 24, 1]);
      expect(u.apply(x, { training: false }).shape).toEqual([2, 16, 24, 1]);
      // Same weights; the skips change the logits.
      const a = u.apply(x, { training: false }).dataSync();
      const b = us.apply(x, { training: false }).dataSync();
      expect(changed(a as Float32Array, b as Float32Array)).toBe(true);
    });
    expect(() => u.apply(tf.zeros([1, 12, 16, 3]), { training: false })).toThrow(/multiples of 8/);
    u.commitStats();
    u.dispose();
    us.dispose();
  });
});

describe('init', () => {
  it('is reproducible from the seed, per layer name (blocks do not shift the others)', () => {
    const a = createFinalGenerator({ seed: 5, channels: 4, blocks: 1 });
    const b = createFinalGenerator({ seed: 5, channels: 4, blocks: 2 });
    const c = createFinalGenerator({ seed: 6, channels: 4, blocks: 1 });
    for (const name of ['head.w', 'rrdb1.dil2.conv3.w', 'tail.conv1.b', 'up.conv2.w']) {
      expect(Array.from(a.variables[name].dataSync())).toEqual(Array.from(b.variables[name].dataSync()));
      expect(changed(a.variables[name].dataSync() as Float32Array, c.variables[name].dataSync() as Float32Array)).toBe(true);
    }
    // PyTorch default: U(±1/√fan_in), fan_in = 3·3·3·4 for the 3nf→nf conv of a DRB3.
    const w = a.variables['rrdb1.drb1.conv3.w'].dataSync();
    const bound = 1 / Math.sqrt(3 * 3 * 12);
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(bound);
    [a, b, c].forEach((g) => g.dispose());
  });

  it('keeps the baseline nets as they were: same names, same values for the same seed', () => {
    const g = createEspcn({ channels: 8, scale: 2, seed: 7 });
    expect(Object.keys(g.variables)).toEqual(['conv1.w', 'conv1.b', 'conv2.w', 'conv2.b', 'conv3.w', 'conv3.b']);
    g.dispose();
    const d = createPatchDiscriminator({ mid: 2, seed: 7 });
    expect(Object.keys(d.variables).slice(0, 3)).toEqual(['b1.conv.w', 'b1.bn.gamma', 'b1.bn.beta']);
    expect(Object.keys(d.stats).slice(0, 2)).toEqual(['b1.bn.mean', 'b1.bn.var']);
    d.dispose();
  });
});

describe('training steps', () => {
  const tinyG = () => createFinalGenerator({ seed: 11, channels: 4, blocks: 1 });
  // The last conv's bias shifts D(y) and D(label) alike, so the relativistic D loss cannot see it:
  // its gradient is exactly 0 and Adam leaves it alone.
  const discriminators: Array<[string, () => Discriminator, string]> = [
    ['dilated D', () => createDilatedDiscriminator({ mid: 2, seed: 12 }), 'out.b'],
    ['U-Net D', () => createUNetDiscriminator({ channels: 2, seed: 12 }), 'conv9.b'],
  ];

  it.each(discriminators)('a G step changes only G; a D step only D (%s)', (_name, makeD, invisible) => {
    const G = tinyG();
    const D = makeD();
    const hr = tf.add(seededUniform([2, 16, 16, 3], 0.5, 13), 0.5) as tf.Tensor4D;
    const lr = tf.avgPool(hr, 2, 2, 'valid');
    const optG = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
    const optD = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);

    let g0 = snapshot(G.variables);
    let d0 = snapshot(D.variables);
    let y!: tf.Tensor4D;
    const lossG = optG.minimize(
      () => {
        y = tf.keep(G.apply(lr));
        const adv = generatorAdvLoss(D.apply(y, { training: true }), D.apply(hr, { training: true }));
        return tf.add(mse(y, hr), tf.mul(adv, 1e-3)) as tf.Scalar;
      },
      true,
      Object.values(G.variables),
    )!;
    D.commitStats();
    for (const [k, v] of Object.entries(snapshot(G.variables))) expect(changed(v, g0[k]), `G ${k}`).toBe(true);
    for (const [k, v] of Object.entries(snapshot(D.variables))) expect(changed(v, d0[k]), `D ${k}`).toBe(false);

    g0 = snapshot(G.variables);
    d0 = snapshot(D.variables);
    const lossD = optD.minimize(
      () => discriminatorLoss(D.apply(y, { training: true }), D.apply(hr, { training: true })),
      true,
      Object.values(D.variables),
    )!;
    D.commitStats();
    for (const [k, v] of Object.entries(snapshot(G.variables))) expect(changed(v, g0[k]), `G ${k}`).toBe(false);
    for (const [k, v] of Object.entries(snapshot(D.variables))) expect(changed(v, d0[k]), `D ${k}`).toBe(k !== invisible);

    expect(Number.isFinite(lossG.dataSync()[0]) && Number.isFinite(lossD.dataSync()[0])).toBe(true);
    tf.dispose([lossG, lossD, y, hr, lr]);
    optG.dispose();
    optD.dispose();
    G.dispose();
    D.dispose();
  });

  it('final generator (2 blocks, nf 8) + Adam on wasm: loss falls clearly in 25 steps, tensor count flat', () => {
    const g = createFinalGenerator({ seed: 21, channels: 8, blocks: 2 });
    const vars = Object.values(g.variables);
    const hr = tf.tidy(() => {
      const noise = tf.add(seededUniform([4, 8, 8, 3], 0.5, 22), 0.5) as tf.Tensor4D;
      return tf.image.resizeBilinear(noise, [16, 16], true);
    });
    const lr = tf.avgPool(hr, 2, 2, 'valid');
    const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let i = 0; i < 25; i++) {
      const loss = opt.minimize(() => mse(g.apply(lr), hr), true, vars)!;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      counts.push(tf.memory().numTensors);
    }
    // Measured: 0.247 → 0.085 (the 0.2 residual scaling makes the first steps slow).
    expect(losses[24]).toBeLessThan(0.5 * losses[0]);
    expect(new Set(counts.slice(1)).size).toBe(1);
    opt.dispose();
    tf.dispose([hr, lr]);
    g.dispose();
  });

  it('U-Net D training steps keep the tensor count flat (u/v and pending updates included)', () => {
    const D = createUNetDiscriminator({ channels: 2, seed: 31 });
    const x = seededUniform([1, 8, 8, 3], 1, 32) as tf.Tensor4D;
    const opt = tf.train.adam(1e-3);
    const step = () => {
      tf.dispose(opt.minimize(() => tf.mean(D.apply(x, { training: true })) as tf.Scalar, true, Object.values(D.variables)) ?? undefined);
      D.commitStats();
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    x.dispose();
    D.dispose();
  });
});

/** Largest singular value of a [rows, cols] row-major matrix, by 500 power iterations in float64. */
function sigmaMax(m: ArrayLike<number>, rows: number, cols: number): number {
  let v = Array.from({ length: cols }, (_, i) => 1 + i / cols);
  let s = 0;
  for (let it = 0; it < 500; it++) {
    const u = new Array<number>(rows).fill(0);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) u[r] += m[r * cols + c] * v[c];
    const next = new Array<number>(cols).fill(0);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) next[c] += m[r * cols + c] * u[r];
    const norm = Math.hypot(...next);
    s = Math.sqrt(norm);
    v = next.map((x) => x / norm);
  }
  return s;
}

describe('spectral norm', () => {
  it('updates u once per training forward (after commit), never in inference; W/σ → spectral norm 1', () => {
    const shape = [3, 3, 4, 6];
    const w = seededUniform(shape, 1, 41) as tf.Tensor4D;
    const stats: Record<string, tf.Variable> = {};
    const sn = createSpectralNorm(stats, 'c.sn', shape, 42);
    const updates = new StatUpdates();
    expect(Object.keys(stats)).toEqual(['c.sn.u', 'c.sn.v']);
    expect(sn.u.shape).toEqual([6]);
    expect(sn.v.shape).toEqual([36]);

    let u = sn.u.dataSync().slice();
    tf.dispose(spectralNormalise(w, sn, false, updates));
    updates.commit();
    expect(Array.from(sn.u.dataSync())).toEqual(Array.from(u));
    for (let i = 0; i < 30; i++) {
      tf.tidy(() => spectralNormalise(w, sn, true, updates));
      expect(updates.size).toBe(2);
      updates.commit();
      if (i < 3) {
        expect(changed(sn.u.dataSync() as Float32Array, u as Float32Array), `iteration ${i}`).toBe(true);
        u = sn.u.dataSync().slice();
      }
    }
    expect(Math.hypot(...Array.from(sn.u.dataSync()))).toBeCloseTo(1, 5);
    const wsn = tf.tidy(() => spectralNormalise(w, sn, false, updates));
    const sigma = sigmaMax(wsn.dataSync(), 36, 6);
    expect(Math.abs(sigma - 1)).toBeLessThan(1e-3);
    tf.dispose([w, wsn]);
    Object.values(stats).forEach((v) => v.dispose());
  });

  it('training-mode gradient treats u, v as constants: equal to the inference gradient at the new u, v', () => {
    const shape = [2, 2, 3, 4];
    const w = seededUniform(shape, 1, 51) as tf.Tensor4D;
    const r = seededUniform(shape, 1, 52);
    const stats: Record<string, tf.Variable> = {};
    const sn = createSpectralNorm(stats, 's', shape, 53);
    const updates = new StatUpdates();
    const loss = (training: boolean) => (t: tf.Tensor) => tf.sum(tf.mul(spectralNormalise(t as tf.Tensor4D, sn, training, updates), r));
    const gTrain = tf.grad(loss(true))(w);
    updates.commit(); // now u, v are the ones the training pass used
    const gInfer = tf.grad(loss(false))(w);
    expect(updates.size).toBe(0);
    const a = gTrain.dataSync();
    const b = gInfer.dataSync();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(1e-6);
    // And the inference gradient passes central differences (σ = vᵀWu with fixed u, v).
    const eps = 1e-2;
    const wv = w.dataSync();
    const f = loss(false);
    for (const i of [0, 7, 19, 40]) {
      const at = (d: number) =>
        tf.tidy(() => {
          const p = Float32Array.from(wv);
          p[i] += d;
          return f(tf.tensor(p, shape)).dataSync()[0];
        });
      expect(Math.abs((at(eps) - at(-eps)) / (2 * eps) - b[i])).toBeLessThan(5e-3 * Math.max(1, Math.abs(b[i])));
    }
    tf.dispose([w, r, gTrain, gInfer]);
    Object.values(stats).forEach((v) => v.dispose());
  });

  it('in the U-Net D: a training forward queues u, v for every SN layer; an inference forward none', () => {
    const D = createUNetDiscriminator({ channels: 2, seed: 61 });
    const before = snapshot(D.stats);
    const x = seededUniform([1, 8, 8, 3], 1, 62) as tf.Tensor4D;
    tf.dispose(D.apply(x, { training: false }));
    D.commitStats();
    for (const [k, v] of Object.entries(snapshot(D.stats))) expect(changed(v, before[k]), k).toBe(false);
    tf.dispose(D.apply(x, { training: true }));
    D.commitStats();
    for (const [k, v] of Object.entries(snapshot(D.stats))) expect(changed(v, before[k]), k).toBe(true);
    x.dispose();
    D.dispose();
  });
});

describe('FLOPs', () => {
  it('counts 2 × conv multiply-adds per image, times the batch', () => {
    // ESPCN C=128 ×4 per LR pixel: 2·(25·3·128 + 9·128·128 + 9·128·48) = 424 704.
    const e = createEspcn({ channels: 128, scale: 4, seed: 1 });
    expect(e.flopsPerForward(32, 32)).toBe(424_704 * 1024);
    expect(countFlops(e, [8, 32, 32, 3])).toBe(8 * 424_704 * 1024);
    expect(countFlops(e, [32, 32])).toBe(424_704 * 1024);
    expect(() => countFlops(e, [0, 32, 32, 3])).toThrow(/inputShape n/);
    e.dispose();
    // Final G per LR pixel: LR-side weights 4 800 + 16·1 007 616 + 73 728 + 32 768, HR-side
    // (×4 pixels) 36 864 + 1 728: 16 387 520 MACs.
    const g = createFinalGenerator({ seed: 1 });
    expect(g.flopsPerForward(128, 128)).toBe(2 * 16_387_520 * 128 * 128);
    g.dispose();
    // Dilated D on 16×16, mid 1: every conv at its resolution (pools after b2, b4, b6).
    const d = createDilatedDiscriminator({ mid: 1, seed: 1 });
    const macs = 256 * (25 * 3 + 9) + 64 * (9 * 2 + 9 * 4) + 16 * (9 * 8 + 9 * 16) + 4 * (9 * 32 + 3 * 9 * 64 + 128 + 16 + 1);
    expect(d.flopsPerForward(16, 16)).toBe(2 * macs);
    d.dispose();
    // U-Net nf 1 on 16×16: conv0, conv1 (→8²), conv2 (→4²), conv3 (→2²), conv4 at 4², conv5 at 8², conv6–9 at 16².
    const u = createUNetDiscriminator({ channels: 1, seed: 1 });
    const um = 256 * 27 + 64 * 16 * 2 + 16 * 16 * 8 + 4 * 16 * 32 + 16 * 9 * 32 + 64 * 9 * 8 + 256 * 9 * (2 + 1 + 1 + 1);
    expect(u.flopsPerForward(16, 16)).toBe(2 * um);
    u.dispose();
  });
});
