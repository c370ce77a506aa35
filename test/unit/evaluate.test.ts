// Benchmark evaluation (src/models/evaluate.ts): bicubic rows recomputed independently through
// degrade.ts, patches.ts and quality.ts; model rows equal one untiled forward pass measured the same way.

import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { downscale } from '../../src/data/degrade.js';
import { crop, loadRgb, upscaleBicubic, type RgbImage } from '../../src/data/patches.js';
import { mulberry32 } from '../../src/data/prng.js';
import { psnrY, ssimY } from '../../src/data/quality.js';
import { hasCode } from '../../src/errors.js';
import { initBackend } from '../../src/models/backend.js';
import { evaluate } from '../../src/models/evaluate.js';
import type { Generator } from '../../src/models/network.js';
import { PRESETS } from '../../src/models/presets.js';
import { buildGenerator } from '../../src/models/registry.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-evaluate-');
let gen: Generator;
const files: string[] = [];

async function writeImage(name: string, w: number, h: number, seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = 128 + 80 * Math.sin(x / (3 + seed)) * Math.cos(y / 5);
      data.set([v + 20 * rand(), 255 - v, (x * 4 + y * 3) % 256], (y * w + x) * 3);
    }
  }
  const p = path.join(tmp.dir, name);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(p);
  return p;
}

beforeAll(async () => {
  await initBackend('wasm');
  gen = buildGenerator(PRESETS['espcn-x2-fast']!.generator, 2, 11);
  // 51×37 is cropped to 50×36; 44×46 is already a multiple of 2.
  files.push(await writeImage('a.png', 51, 37, 1), await writeImage('b.png', 44, 46, 2));
});

afterAll(() => {
  gen.dispose();
  tmp.cleanup();
});

/** SR output of one untiled pass, clamped and rounded to 8 bits (BasicSR's tensor2img). */
function modelSr(lr: RgbImage): RgbImage {
  const y = tf.tidy(() => {
    const x = tf.div(tf.tensor4d(lr.data, [1, lr.height, lr.width, 3], 'float32'), 255) as tf.Tensor4D;
    return tf.round(tf.mul(tf.clipByValue(gen.apply(x), 0, 1), 255));
  });
  const data = Uint8Array.from(y.dataSync());
  y.dispose();
  return { width: lr.width * 2, height: lr.height * 2, data };
}

describe('evaluate', () => {
  it('scores bicubic and the model per image (border = scale), with means over images', async () => {
    const start = tf.memory().numTensors;
    const res = await evaluate(gen, files, { scale: 2, tile: 24, overlap: 6, blend: 4 });
    expect(tf.memory().numTensors).toBe(start);
    expect(res.scale).toBe(2);
    expect(res.border).toBe(2);
    expect(res.rows.map((r) => [r.file, r.width, r.height])).toEqual([
      [files[0], 50, 36],
      [files[1], 44, 46],
    ]);
    for (const row of res.rows) {
      // Independently: crop to a multiple of the scale, MATLAB-style bicubic down, Keys bicubic up.
      const full = await loadRgb(row.file);
      const hr = crop(full, 0, 0, full.width - (full.width % 2), full.height - (full.height % 2));
      const lr = downscale(hr, 2, 'bicubic-aa');
      const bic = upscaleBicubic(lr, 2);
      expect(row.bicubic.psnr).toBeCloseTo(psnrY(bic, hr, 2), 10);
      expect(row.bicubic.ssim).toBeCloseTo(ssimY(bic, hr, 2), 10);
      expect(row.bicubic.psnr).toBeGreaterThan(20);
      // The model row: tiled (overlap 6 ≥ radius 4) equals one untiled pass (float differences ~1e-7 could
      // flip a rounding tie in principle; with these seeded inputs none does).
      const sr = modelSr(lr);
      expect(row.model!.psnr).toBeCloseTo(psnrY(sr, hr, 2), 6);
      expect(row.model!.ssim).toBeCloseTo(ssimY(sr, hr, 2), 6);
      expect(Number.isFinite(row.model!.psnr)).toBe(true);
    }
    const mean = (f: (i: number) => number): number => (f(0) + f(1)) / 2;
    expect(res.bicubic.psnr).toBeCloseTo(mean((i) => res.rows[i]!.bicubic.psnr), 12);
    expect(res.bicubic.ssim).toBeCloseTo(mean((i) => res.rows[i]!.bicubic.ssim), 12);
    expect(res.model!.psnr).toBeCloseTo(mean((i) => res.rows[i]!.model!.psnr), 12);
    expect(res.model!.ssim).toBeCloseTo(mean((i) => res.rows[i]!.model!.ssim), 12);
  });

  it('without a generator scores bicubic only; the border is configurable', async () => {
    const withModel = await evaluate(gen, files.slice(0, 1), { scale: 2 });
    const res = await evaluate(null, files.slice(0, 1), { scale: 2 });
    expect(res.model).toBeNull();
    expect(res.rows[0]!.model).toBeNull();
    expect(res.bicubic).toEqual(withModel.bicubic);
    const b0 = await evaluate(null, files.slice(0, 1), { scale: 2, border: 0 });
    expect(b0.border).toBe(0);
    expect(b0.bicubic.psnr).not.toBeCloseTo(res.bicubic.psnr, 3);
  });

  it('rejects bad arguments and images too small to measure', async () => {
    await expect(evaluate(gen, files, { scale: 4 })).rejects.toThrow(/scale: 4 does not match the generator's scale 2/);
    await expect(evaluate(gen, [], { scale: 2 })).rejects.toThrow(/files/);
    await expect(evaluate(null, files, { scale: 3 as 2 })).rejects.toThrow(/scale/);
    await expect(evaluate(null, files, { scale: 2, border: -1 })).rejects.toThrow(/border/);
    const small = await writeImage('small.png', 15, 40, 3);
    const err = await evaluate(null, [small], { scale: 2 }).catch((e: unknown) => e);
    expect(hasCode(err, 'SRGAN_ERR_DATA')).toBe(true);
    expect((err as Error).message).toContain(small);
  });
});
