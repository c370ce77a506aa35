import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { Gan } from '../../src/models/train/gan.js';
import { createEma } from '../../src/models/train/ema.js';
import { selectBackend } from '../../src/models/backend/ladder.js';
import { mulberry32 } from '../../src/util/prng.js';
import { createPerceptualLoss } from '../../src/models/losses/perceptual.js';

const small = (overrides: Record<string, unknown> = {}) =>
  resolveConfig({
    patchSize: 32,
    batchSize: 2,
    generator: { channels: 8, skip: false, depth: 0 },
    discriminator: { mid: 4 },
    maxShift: 4,
    advWeight: 1e-4,
    ...overrides,
  });

function batch(cfg: ReturnType<typeof small>, seed: number): [tf.Tensor4D, tf.Tensor4D] {
  const r = mulberry32(seed);
  const P = cfg.patchSize;
  const L = P / cfg.scale;
  const hr = tf.tensor4d(
    Float32Array.from({ length: cfg.batchSize * P * P * 3 }, () => r()),
    [cfg.batchSize, P, P, 3],
  );
  // A blurry LR version, so there is something to learn.
  const lr = tf.tidy(() => tf.avgPool(hr, cfg.scale, cfg.scale, 'valid') as tf.Tensor4D);
  expect(lr.shape).toEqual([cfg.batchSize, L, L, 3]);
  return [hr, lr];
}

const snapshot = (vars: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.dataSync().slice()]));
const changed = (before: Record<string, Float32Array | Int32Array | Uint8Array>, vars: Record<string, tf.Variable>) =>
  Object.keys(vars).filter((k) => vars[k].dataSync().some((x, i) => x !== before[k][i]));

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
    expect(v.g_loss).toBeCloseTo(v.g_pix + v.g_adv, 5);
    expect(v.psnr_train).toBeCloseTo(10 * Math.log10(1 / v.g_pix), 4);
    expect(v.d_steps).toBe(3);
    gan.dispose();
    const noGan = new Gan(small({ advWeight: 0, pixelLoss: 'l1', pixelWeight: 0.5 }));
    const w = noGan.step(hr, lr, { lrG: 1e-3, lrD: 1e-4, dSteps: 3 });
    expect(w.d_loss).toBeUndefined();
    expect(w.g_adv).toBeUndefined();
    expect(w.d_steps).toBe(0);
    expect(w.g_loss).toBeCloseTo(w.g_pix, 6); // 0.5 × L1
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
    expect(last.g_pix).toBeLessThan(first.g_pix * 0.5);
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

  it("builds every preset's networks (shrunk) and runs a step of each at ×2 and ×4", () => {
    for (const overrides of [
      {
        preset: 'seed-final-x2',
        generator: { blocks: 1, channels: 8 },
        discriminator: { mid: 4 },
        patchSize: 64,
        perceptual: { kind: 'off' },
        jpeg: false,
      },
      {
        preset: 'esrgan-x4',
        generator: { blocks: 1, channels: 8, growth: 4 },
        discriminator: { channels: 4 },
        patchSize: 64,
        batchSize: 1,
        accumulate: 1,
        perceptual: { kind: 'off' },
      },
      ...(['compact-x2', 'compact-x4'] as const).map((preset) => ({
        preset,
        generator: { channels: 8, convs: 2 },
        discriminator: { mid: 4 },
        patchSize: 64,
        perceptual: { kind: 'off' },
        jpeg: false,
      })),
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

describe('a step that goes non-finite (docs/reliability.md, "NaN and Inf")', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  /** Every tensor a checkpoint takes, read. */
  const state = async (gan: Gan) => {
    const { tensors, scalars } = await gan.exportState();
    return { tensors: Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.dataSync())])), scalars };
  };
  const cfg = () => small({ discriminator: { kind: 'dilated', mid: 4 }, dStepsPerG: 2 }); // BatchNorm statistics too
  const poisoned = (hr: tf.Tensor4D, value: number): tf.Tensor4D =>
    tf.tidy(() => tf.where(tf.equal(tf.reshape(tf.range(0, hr.size), hr.shape), 5), tf.fill(hr.shape, value), hr));

  it('is not applied: weights, D statistics, EMA and both optimizers stay as they were', async () => {
    const make = () => new Gan(cfg(), { ema: (G) => createEma(G.variables, 0.9) });
    const a = make();
    const b = make();
    const [hr1, lr1] = batch(cfg(), 1);
    const [hr2, lr2] = batch(cfg(), 2);
    const spec = { lrG: 1e-3, lrD: 1e-3, dSteps: 2 };
    a.step(hr1, lr1, { ...spec, step: 1 });
    b.step(hr1, lr1, { ...spec, step: 1 });
    const bad: [tf.Tensor4D, tf.Tensor4D][] = [
      [poisoned(hr2, NaN), lr2],
      [poisoned(hr2, Infinity), lr2],
      [hr2, poisoned(lr2, NaN)], // through the LR input: G's output, and every loss, go non-finite
    ];
    for (const [hr, lr] of bad) {
      const v = a.step(hr, lr, { ...spec, step: 2 });
      expect(v.step_skipped).toBe(1);
      expect(Number.isFinite(v.g_loss)).toBe(false);
      const [sa, sb] = [await state(a), await state(b)];
      expect(sa.tensors).toEqual(sb.tensors);
      // Adam's β products and update counts as well; the random crops drawn are spent, like the batch.
      expect([sa.scalars.optG, sa.scalars.optD]).toEqual([sb.scalars.optG, sb.scalars.optD]);
    }
    tf.dispose(bad.flat().filter((t) => t !== hr2 && t !== lr2));
    const v = a.step(hr2, lr2, { ...spec, step: 2 });
    expect(v.step_skipped).toBeUndefined();
    expect(Number.isFinite(v.g_loss) && Number.isFinite(v.d_loss)).toBe(true);
    expect((await state(a)).scalars.optG.iterations).toBe(2);
    tf.dispose([hr1, lr1, hr2, lr2]);
    a.dispose();
    b.dispose();
  });

  it('as the very first step, leaves fresh optimizers (the moments it created are zeros) and the initial weights', async () => {
    const a = new Gan(cfg());
    const b = new Gan(cfg());
    const [hr, lr] = batch(cfg(), 3);
    const hrBad = poisoned(hr, NaN);
    expect(a.step(hrBad, lr, { lrG: 1e-3, lrD: 1e-3, dSteps: 2 }).step_skipped).toBe(1);
    const [sa, sb] = [await state(a), await state(b)];
    const moments = Object.keys(sa.tensors).filter((k) => k.startsWith('optG/') || k.startsWith('optD/'));
    expect(moments.length).toBeGreaterThan(0);
    for (const k of moments) expect(sa.tensors[k].every((x) => x === 0)).toBe(true);
    for (const [k, t] of Object.entries(sb.tensors)) expect(sa.tensors[k]).toEqual(t);
    expect([sa.scalars.optG, sa.scalars.optD]).toEqual([sb.scalars.optG, sb.scalars.optD]);
    tf.dispose([hr, lr, hrBad]);
    a.dispose();
    b.dispose();
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
    const row0 = Array.from(out.dataSync())
      .filter((_, i) => i % 3 === 0)
      .slice(0, 4);
    // Centre-aligned bilinear ×2 of [0, 1]: 0, 0.25, 0.75, 1 (clamped at the edges).
    expect(row0.map((v) => Number(v.toFixed(4)))).toEqual([0, 0.25, 0.75, 1]);
    tf.dispose([lr, out]);
    gan.dispose();
  });
});

describe('accumulate: a step in equal parts is the whole-batch step', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  // esrgan-x4 shrunk: RRDBNet, the U-Net D with spectral norm, the bundled perceptual net, L1, shift crops.
  const config = (accumulate: number, batchSize = 4) =>
    resolveConfig({
      preset: 'esrgan-x4',
      generator: { blocks: 1, channels: 8, growth: 4 },
      discriminator: { channels: 4 },
      patchSize: 32,
      maxShift: 8,
      batchSize,
      accumulate,
    });

  async function train(accumulate: number, opts: { replay?: boolean; steps?: number } = {}) {
    const cfg = config(accumulate);
    const rand = mulberry32(77);
    const perceptual = await createPerceptualLoss({ ...cfg.perceptual, maxShift: cfg.maxShift }, rand);
    const gan = new Gan(cfg, { perceptual, replay: opts.replay === false ? [] : [rand] });
    const logged: Record<string, number>[] = [];
    for (let s = 1; s <= (opts.steps ?? 2); s++) {
      const [hr, lr] = batch(cfg, s);
      logged.push(gan.step(hr, lr, { lrG: 1e-3, lrD: 1e-3, dSteps: 2, step: s }));
      tf.dispose([hr, lr]);
    }
    const { tensors, scalars } = await gan.exportState();
    const state = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Float32Array.from(t.dataSync())]));
    const out = { logged, state, scalars, perceptualRng: rand.state };
    gan.dispose();
    return out;
  }

  /** Largest |a − b| over every tensor of two exportState()s. */
  const maxDiff = (a: Record<string, Float32Array>, b: Record<string, Float32Array>) => {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    let m = 0;
    for (const k of Object.keys(a)) a[k].forEach((x, i) => (m = Math.max(m, Math.abs(x - b[k][i]))));
    return m;
  };
  /** The tensor with the largest max |a − b| / max |b|, and that ratio. */
  const worst = (a: Record<string, Float32Array>, b: Record<string, Float32Array>) => {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    let out = { name: '', rel: 0 };
    for (const k of Object.keys(b)) {
      const scale = b[k].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const diff = b[k].reduce((m, x, i) => Math.max(m, Math.abs(x - a[k][i])), 0);
      if (scale > 0 && diff / scale > out.rel) out = { name: k, rel: diff / scale };
    }
    return out;
  };

  it('2 and 4 parts give the losses, weights, D vectors, optimizer moments and random streams of 1 part', async () => {
    const whole = await train(1);
    // Two steps apart, every value moved: the comparison below has something to find.
    expect(maxDiff(whole.state, (await train(1, { steps: 1 })).state)).toBeGreaterThan(1e-4);
    for (const k of [2, 4]) {
      const parts = await train(k);
      expect(parts.scalars).toEqual(whole.scalars);
      expect(parts.perceptualRng).toBe(whole.perceptualRng);
      for (const [i, row] of whole.logged.entries()) {
        // float32 sums in another order: equal to ~1e-6 relative (a wrong draw or vector differs by far more).
        for (const [key, v] of Object.entries(row))
          expect({ k, step: i + 1, key, rel: Math.abs(parts.logged[i][key] - v) / Math.max(Math.abs(v), 1e-3) }).toEqual({
            k,
            step: i + 1,
            key,
            rel: expect.closeTo(0, 5),
          });
      }
      // Per tensor, relative to its largest value. Rounding moves Adam's first steps where a gradient is
      // near its eps (1e-8): up to ~2e-4 here, as much as reordering the batch does; a part left out, a
      // wrong scale of the moments or another draw moves whole tensors by 1e-2 and more.
      expect(worst(parts.state, whole.state)).toEqual({ name: expect.any(String), rel: expect.closeTo(0, 3) });
    }
  }, 120_000);

  it('without replaying the perceptual shifts the parts train something else (the check above can fail)', async () => {
    const whole = await train(1, { steps: 1 });
    const parts = await train(2, { steps: 1, replay: false });
    expect(parts.perceptualRng).not.toBe(whole.perceptualRng);
    expect(Math.abs(parts.logged[0].g_perc - whole.logged[0].g_perc)).toBeGreaterThan(1e-6);
  }, 60_000);

  it('the config must split the batch evenly, and BatchNorm discriminators take the whole batch', () => {
    expect(() => config(3)).toThrow(/accumulate.*a divisor of batchSize \(4\)/);
    expect(() => resolveConfig({ preset: 'seed-final-x2', accumulate: 1 })).not.toThrow();
    expect(() => resolveConfig({ preset: 'seed-final-x2', batchSize: 2, accumulate: 2 })).toThrow(
      /accumulate.*1 with the dilated discriminator \(its BatchNorm/,
    );
    // Without the adversarial term there is no D, so nothing normalises over the batch.
    expect(resolveConfig({ batchSize: 8, accumulate: 4 }).accumulate).toBe(4);
    expect(resolveConfig({ preset: 'esrgan-x4' }).accumulate).toBe(4);
  });
});
