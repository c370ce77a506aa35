import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/daemon/config.js';
import { Gan } from '../../src/models/gan.js';
import { createEma } from '../../src/models/ema.js';
import { selectBackend } from '../../src/models/ladder.js';
import { mulberry32 } from '../../src/data/prng.js';

const small = (overrides: Record<string, unknown> = {}) =>
  resolveConfig({ patchSize: 32, batchSize: 2, generator: { channels: 8, skip: false, depth: 0 }, discriminator: { mid: 4 }, maxShift: 4, advWeight: 1e-4, ...overrides });

function batch(cfg: ReturnType<typeof small>, seed: number): [tf.Tensor4D, tf.Tensor4D] {
  const r = mulberry32(seed);
  const P = cfg.patchSize;
  const L = P / cfg.scale;
  const hr = tf.tensor4d(Float32Array.from({ length: cfg.batchSize * P * P * 3 }, () => r()), [cfg.batchSize, P, P, 3]);
  // A blurry LR version, so there is something to learn.
  const lr = tf.tidy(() => tf.avgPool(hr, cfg.scale, cfg.scale, 'valid') as tf.Tensor4D);
  expect(lr.shape).toEqual([cfg.batchSize, L, L, 3]);
  return [hr, lr];
}

const snapshot = (vars: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync().slice()]));
const changed = (before: Record<string, Float32Array | Int32Array | Uint8Array>, vars: Record<string, tf.Variable>) =>
  Object.keys(vars).filter((k) => vars[k]!.dataSync().some((x, i) => x !== before[k]![i]));

describe('Gan', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('a G step (lrD 0, no D steps) changes only G; D steps (lrG 0) change only D', () => {
    const cfg = small();
    const gan = new Gan(cfg);
    const [hr, lr] = batch(cfg, 1);
    let g0 = snapshot(gan.G.variables);
    let d0 = snapshot(gan.D.variables);
    gan.step(hr, lr, { lrG: 1e-3, lrD: 0, dSteps: 0 });
    expect(changed(g0, gan.G.variables).length).toBe(Object.keys(gan.G.variables).length);
    expect(changed(d0, gan.D.variables)).toEqual([]);
    g0 = snapshot(gan.G.variables);
    d0 = snapshot(gan.D.variables);
    gan.step(hr, lr, { lrG: 0, lrD: 1e-3, dSteps: 2 });
    expect(changed(g0, gan.G.variables)).toEqual([]);
    // Every D weight moves but the last bias: the relativistic loss cancels it (its gradient is 0).
    expect(changed(d0, gan.D.variables).length).toBeGreaterThanOrEqual(Object.keys(gan.D.variables).length - 1);
    tf.dispose([hr, lr]);
    gan.dispose();
  });

  it('logs the weighted terms; without an adversarial weight there is no D work', () => {
    const gan = new Gan(small());
    const [hr, lr] = batch(small(), 2);
    const v = gan.step(hr, lr, { lrG: 1e-3, lrD: 1e-4, dSteps: 3 });
    expect(Object.keys(v).sort()).toEqual(['d_loss', 'd_steps', 'g_adv', 'g_loss', 'g_pix', 'lr_d', 'lr_g', 'psnr_train'].sort());
    expect(v.g_loss).toBeCloseTo(v.g_pix! + v.g_adv!, 5);
    expect(v.psnr_train).toBeCloseTo(10 * Math.log10(1 / v.g_pix!), 4);
    expect(v.d_steps).toBe(3);
    gan.dispose();
    const noGan = new Gan(small({ advWeight: 0, pixelLoss: 'l1', pixelWeight: 0.5 }));
    const w = noGan.step(hr, lr, { lrG: 1e-3, lrD: 1e-4, dSteps: 3 });
    expect(w.d_loss).toBeUndefined();
    expect(w.g_adv).toBeUndefined();
    expect(w.d_steps).toBe(0);
    expect(w.g_loss).toBeCloseTo(w.g_pix!, 6); // 0.5 × L1
    tf.dispose([hr, lr]);
    noGan.dispose();
  });

  it('learns: the pixel loss falls over a few dozen steps, and nothing leaks', () => {
    const cfg = small({ advWeight: 1e-3 });
    const gan = new Gan(cfg, { ema: (G) => createEma(G.variables, 0.9) });
    const [hr, lr] = batch(cfg, 3);
    const first = gan.step(hr, lr, { lrG: 3e-3, lrD: 1e-4, dSteps: 1 });
    const tensors = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 40; i++) last = gan.step(hr, lr, { lrG: 3e-3, lrD: 1e-4, dSteps: 1 });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(last.g_pix!).toBeLessThan(first.g_pix! * 0.5);
    // generate() runs the EMA weights and leaves the training weights in place.
    const before = snapshot(gan.G.variables);
    const withEma = gan.generate(lr);
    const without = gan.generate(lr, { ema: false });
    expect(changed(before, gan.G.variables)).toEqual([]);
    expect(tf.max(tf.abs(tf.sub(withEma, without))).dataSync()[0]).toBeGreaterThan(0);
    expect(tf.min(withEma).dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(tf.max(withEma).dataSync()[0]).toBeLessThanOrEqual(1);
    tf.dispose([hr, lr, withEma, without]);
    gan.dispose();
  });

  it('resetOptimizers forgets Adam moments: the first step after a reset repeats a fresh first step', () => {
    const cfg = small({ advWeight: 0 });
    const [hr, lr] = batch(cfg, 4);
    const a = new Gan(cfg);
    const b = new Gan(cfg);
    for (let i = 0; i < 3; i++) b.step(hr, lr, { lrG: 0, lrD: 0, dSteps: 0 }); // moments accumulate, weights stay
    const sa = a.step(hr, lr, { lrG: 1e-3, lrD: 0, dSteps: 0 });
    const sb = b.step(hr, lr, { lrG: 1e-3, lrD: 0, dSteps: 0, resetOptimizers: true });
    expect(sb.g_loss).toBe(sa.g_loss);
    const wa = snapshot(a.G.variables);
    expect(changed(wa, b.G.variables)).toEqual([]);
    tf.dispose([hr, lr]);
    a.dispose();
    b.dispose();
  });

  it('builds every preset\'s networks (shrunk) and runs a step of each at ×2 and ×4', () => {
    for (const overrides of [
      { preset: 'seed-final-x2', generator: { blocks: 1, channels: 8 }, discriminator: { mid: 4 }, patchSize: 64, perceptual: { kind: 'off' }, jpeg: false },
      { preset: 'esrgan-x4', generator: { blocks: 1, channels: 8, growth: 4 }, discriminator: { channels: 4 }, patchSize: 64, batchSize: 1, perceptual: { kind: 'off' } },
    ]) {
      const cfg = resolveConfig(overrides);
      const gan = new Gan(cfg);
      const [hr, lr] = batch(cfg, 5);
      const v = gan.step(hr, lr, { lrG: 1e-4, lrD: 1e-4, dSteps: cfg.dStepsPerG });
      expect(Number.isFinite(v.g_loss)).toBe(true);
      expect(v.d_steps).toBe(cfg.dStepsPerG);
      tf.dispose([hr, lr]);
      gan.dispose();
    }
  });
});

describe('the bilinear skip of espcn-x2-fast', () => {
  it('starts from a bilinear enlargement: with G zeroed, the output is the centre-aligned bilinear image', async () => {
    await selectBackend('wasm');
    const cfg = resolveConfig({ generator: { channels: 4, skip: true } });
    const gan = new Gan(cfg);
    for (const v of Object.values(gan.G.variables)) v.assign(tf.zerosLike(v));
    const lr = tf.tile(tf.tensor4d([0, 1, 1, 0], [1, 2, 2, 1]), [1, 1, 1, 3]) as tf.Tensor4D;
    const out = gan.generate(lr, { ema: false });
    const row0 = Array.from(out.dataSync()).filter((_, i) => i % 3 === 0).slice(0, 4);
    // Centre-aligned bilinear ×2 of [0, 1]: 0, 0.25, 0.75, 1 (clamped at the edges).
    expect(row0.map((v) => Number(v.toFixed(4)))).toEqual([0, 0.25, 0.75, 1]);
    tf.dispose([lr, out]);
    gan.dispose();
  });
});
