// Benchmark evaluation (src/models/infer/evaluate.ts): the protocol (mod-crop, MATLAB-style bicubic LR, the
// bicubic baseline, PSNR-Y and SSIM-Y with the border cropped, the model path) against numbers computed
// once outside this code (test/fixtures/eval_reference.py, NumPy; test/support/eval-reference.ts); model
// rows equal one untiled forward pass.

import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { downscale, parseLrSynthesis } from '../../src/data/image/degrade.js';
import { EVAL_LR_SYNTHESES } from '../../src/config/lr-synthesis.js';
import { crop, loadRgb, upscaleBicubic } from '../../src/data/image/patches.js';
import type { RgbImage } from '../../src/data/image/rgb-image.js';
import { mulberry32 } from '../../src/util/prng.js';
import { psnrY, ssimY } from '../../src/data/image/quality.js';
import { hasCode } from '../../src/util/errors.js';
import { initBackend } from '../../src/models/backend/init.js';
import { evaluate } from '../../src/models/infer/evaluate.js';
import type { Generator } from '../../src/models/archs/network.js';
import { PRESETS } from '../../src/config/presets.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { bicubicGenerator, bicubicLayersModel } from '../support/bicubic-model.js';
import { PSNR_TOL, referenceRows, sha256, SSIM_TOL, writeReferencePictures } from '../support/eval-reference.js';
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
  await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(p);
  return p;
}

beforeAll(async () => {
  await initBackend('wasm');
  gen = buildGenerator(PRESETS['espcn-x2-fast'].generator, 2, 11);
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
      // (The bicubic row's numbers are pinned against the reference below.) The model row: tiled
      // (overlap 6 ≥ radius 4) equals one untiled pass on the standard LR (float differences ~1e-7 could
      // flip a rounding tie in principle; with these seeded inputs none does).
      const full = await loadRgb(row.file);
      const hr = crop(full, 0, 0, full.width - (full.width % 2), full.height - (full.height % 2));
      const sr = modelSr(downscale(hr, 2, 'bicubic-aa'));
      expect(row.model!.psnr).toBeCloseTo(psnrY(sr, hr, 2), 6);
      expect(row.model!.ssim).toBeCloseTo(ssimY(sr, hr, 2), 6);
      expect(Number.isFinite(row.model!.psnr)).toBe(true);
    }
    const mean = (f: (i: number) => number): number => (f(0) + f(1)) / 2;
    expect(res.bicubic.psnr).toBeCloseTo(
      mean((i) => res.rows[i].bicubic.psnr),
      12,
    );
    expect(res.bicubic.ssim).toBeCloseTo(
      mean((i) => res.rows[i].bicubic.ssim),
      12,
    );
    expect(res.model!.psnr).toBeCloseTo(
      mean((i) => res.rows[i].model!.psnr),
      12,
    );
    expect(res.model!.ssim).toBeCloseTo(
      mean((i) => res.rows[i].model!.ssim),
      12,
    );
  });

  it('without a generator scores bicubic only; the border is configurable', async () => {
    const withModel = await evaluate(gen, files.slice(0, 1), { scale: 2 });
    const res = await evaluate(null, files.slice(0, 1), { scale: 2 });
    expect(res.model).toBeNull();
    expect(res.rows[0].model).toBeNull();
    expect(res.bicubic).toEqual(withModel.bicubic);
    const b0 = await evaluate(null, files.slice(0, 1), { scale: 2, border: 0 });
    expect(b0.border).toBe(0);
    expect(b0.bicubic.psnr).not.toBeCloseTo(res.bicubic.psnr, 3);
  });

  it('reports the LR synthesis and the gain over bicubic; another LR synthesis changes the LR', async () => {
    const std = await evaluate(gen, files, { scale: 2 });
    expect(std.lr).toEqual({ filter: 'bicubic-aa', blur: 0 });
    expect(std.gain).toBeCloseTo(std.model!.psnr - std.bicubic.psnr, 12);
    const area = await evaluate(gen, files, { scale: 2, lr: parseLrSynthesis('area') });
    expect(area.lr).toEqual({ filter: 'area', blur: 0 });
    expect(area.bicubic.psnr).not.toBeCloseTo(std.bicubic.psnr, 3);
    // The LR synthesis reaches the LR (the numbers: against the reference below).
    const hr = await loadRgb(files[1]);
    expect(area.rows[1].bicubic.psnr).toBe(psnrY(upscaleBicubic(downscale(hr, 2, 'area'), 2), hr, 2));
    expect((await evaluate(null, files, { scale: 2 })).gain).toBeNull();
  });

  it('a network that copies bicubic gains 0.00 dB, under the standard protocol and every other LR synthesis', async () => {
    // test/support/bicubic-model.ts: the Keys enlargement as a fixed conv per output phase + depthToSpace.
    // Pictures with noise in every channel, like photos: the float32 network and upscaleBicubic's
    // float64 can round an exact .5 differently, and the pictures above have a linear channel, whose
    // bicubic enlargement is full of exact halves (±0.005 dB from ties alone on images this small).
    const noisy: string[] = [];
    for (const [name, w, h, seed] of [
      ['n1.png', 60, 52, 7],
      ['n2.png', 49, 45, 8],
    ] as const) {
      const rand = mulberry32(seed);
      const data = new Uint8Array(w * h * 3);
      for (let i = 0; i < data.length; i++) {
        const x = Math.floor(i / 3) % w;
        const y = Math.floor(i / 3 / w);
        data[i] = Math.round(128 + 70 * Math.sin(x / (3 + (i % 3)) + y / 5) + 40 * (rand() - 0.5));
      }
      const p = path.join(tmp.dir, name);
      await sharp(data, { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(p);
      noisy.push(p);
    }
    for (const scale of [2, 4] as const) {
      const copy = bicubicGenerator(scale);
      try {
        // Its output, before rounding, is within half a level of upscaleBicubic's bytes everywhere: the
        // same values up to float32 error. (Rounded, they may differ by 1 at exact halves, which these
        // pictures' linear channel makes common: Keys reproduces a ramp, 2·k + ¼·2 = …5.)
        const full = await loadRgb(files[1]);
        const lr = downscale(crop(full, 0, 0, 44, 44), scale, 'bicubic-aa');
        const out = tf.tidy(() =>
          tf
            .mul(
              tf.clipByValue(copy.apply(tf.div(tf.tensor4d(lr.data, [1, lr.height, lr.width, 3], 'float32'), 255) as tf.Tensor4D), 0, 1),
              255,
            )
            .dataSync(),
        );
        const ref = upscaleBicubic(lr, scale).data;
        expect(out.length).toBe(ref.length);
        let worst = 0;
        out.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref[i]))));
        expect(worst).toBeLessThanOrEqual(0.5 + 1e-3);

        const start = tf.memory().numTensors;
        // Tiles of 16 with overlap 4 (radius 2): the seams are exact too.
        const std = await evaluate(copy, noisy, { scale, tile: 16, overlap: 4, blend: 0 });
        expect(tf.memory().numTensors).toBe(start);
        expect(std.lr).toEqual({ filter: 'bicubic-aa', blur: 0 });
        expect(Math.abs(std.gain!)).toBeLessThanOrEqual(0.01);
        expect(Math.abs(std.model!.ssim - std.bicubic.ssim)).toBeLessThan(1e-4);
        for (const row of std.rows) expect(Math.abs(row.model!.psnr - row.bicubic.psnr)).toBeLessThanOrEqual(0.01);
        if (scale === 2) {
          for (const name of EVAL_LR_SYNTHESES) {
            const r = await evaluate(copy, noisy, { scale, lr: parseLrSynthesis(name) });
            expect(Math.abs(r.gain!), name).toBeLessThanOrEqual(0.01);
          }
        }
      } finally {
        copy.dispose();
      }
    }
    // The espcn generator is not a bicubic copy: its gain is far from 0 (a check that the check can fail).
    const random = await evaluate(gen, files, { scale: 2 });
    expect(Math.abs(random.gain!)).toBeGreaterThan(1);
  });

  it('the bicubic copy built from tfjs-layers built-in layers (what srgan eval --compare loads) equals the tfjs-core one', () => {
    for (const scale of [2, 4] as const) {
      const model = bicubicLayersModel(scale);
      const copy = bicubicGenerator(scale);
      const rand = mulberry32(scale);
      const x = tf.tensor4d(
        Float32Array.from({ length: 2 * 9 * 13 * 3 }, () => rand()),
        [2, 9, 13, 3],
      );
      const [a, b] = [model.predict(x) as tf.Tensor, copy.apply(x)];
      expect(a.shape).toEqual([2, 9 * scale, 13 * scale, 3]);
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-5);
      tf.dispose([x, a, b]);
      model.dispose();
      copy.dispose();
    }
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

/** A "model" that enlarges by nearest neighbour (each channel repeated per sub-pixel, then depthToSpace). */
function nearestGenerator(scale: 2 | 4): Generator {
  return {
    variables: {},
    scale,
    paramCount: 0,
    flopsPerForward: () => 0,
    apply: (x) => tf.tidy(() => tf.depthToSpace(tf.tile(x, [1, 1, 1, scale * scale]), scale)),
    dispose: () => undefined,
  };
}

describe('evaluate against the independent reference (test/fixtures/eval_reference.py)', () => {
  let refFiles: string[];
  beforeAll(async () => {
    refFiles = await writeReferencePictures(path.join(tmp.dir, 'reference'));
  });

  for (const scale of [2, 4] as const) {
    it(`×${scale}: mod-crop, MATLAB imresize LR, bicubic and model rows, PSNR-Y and SSIM-Y with a ${scale} px border, as NumPy computed them`, async () => {
      const want = referenceRows(scale);
      const res = await evaluate(nearestGenerator(scale), refFiles, { scale });
      expect(res.border).toBe(scale);
      expect(res.rows.map((r) => [path.basename(r.file), r.width, r.height])).toEqual(want.map((w) => [w.image, w.width, w.height]));
      res.rows.forEach((row, i) => {
        const w = want[i];
        expect(Math.abs(row.bicubic.psnr - w.bicubic.psnr), `${w.image} bicubic PSNR`).toBeLessThanOrEqual(PSNR_TOL);
        expect(Math.abs(row.bicubic.ssim - w.bicubic.ssim), `${w.image} bicubic SSIM`).toBeLessThanOrEqual(SSIM_TOL);
        // The model path: output clamped, ×255, rounded (nearest neighbour needs no rounding), scored alike.
        expect(Math.abs(row.model!.psnr - w.nearest.psnr), `${w.image} model PSNR`).toBeLessThanOrEqual(PSNR_TOL);
        expect(Math.abs(row.model!.ssim - w.nearest.ssim), `${w.image} model SSIM`).toBeLessThanOrEqual(SSIM_TOL);
      });
      const mean = (f: (w: (typeof want)[number]) => number): number => want.reduce((a, w) => a + f(w), 0) / want.length;
      expect(Math.abs(res.bicubic.psnr - mean((w) => w.bicubic.psnr))).toBeLessThanOrEqual(PSNR_TOL);
      expect(Math.abs(res.bicubic.ssim - mean((w) => w.bicubic.ssim))).toBeLessThanOrEqual(SSIM_TOL);
      expect(Math.abs(res.gain! - (mean((w) => w.nearest.psnr) - mean((w) => w.bicubic.psnr)))).toBeLessThanOrEqual(2 * PSNR_TOL);

      // Where a mismatch would come from: the LR is MATLAB's imresize byte for byte.
      for (const [i, w] of want.entries()) {
        const full = await loadRgb(refFiles[i]);
        expect(sha256(downscale(crop(full, 0, 0, w.width, w.height), scale, 'bicubic-aa').data), `${w.image} LR`).toBe(w.lrSha256);
      }

      // Another LR synthesis ('area', the block mean) with the same bicubic baseline.
      const area = await evaluate(null, refFiles, { scale, lr: parseLrSynthesis('area') });
      area.rows.forEach((row, i) => {
        expect(Math.abs(row.bicubic.psnr - want[i].bicubicOfArea.psnr), `${want[i].image} area PSNR`).toBeLessThanOrEqual(PSNR_TOL);
        expect(Math.abs(row.bicubic.ssim - want[i].bicubicOfArea.ssim), `${want[i].image} area SSIM`).toBeLessThanOrEqual(SSIM_TOL);
      });
    });
  }
});
