// Reading and writing user images for `srgan upscale` (src/data/image/image-io.ts) and the file driver
// (src/models/infer/upscale.ts). Fixtures are written by sharp into a temp dir.

import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import sharp, { type Metadata } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readForUpscale, toFloatImage, upscaleAlpha, writeUpscaled, type FloatImage } from '../../src/data/image/image-io.js';
import { SrganError } from '../../src/util/errors.js';
import { initBackend } from '../../src/models/backend/init.js';
import type { Generator } from '../../src/models/archs/network.js';
import { PRESETS } from '../../src/config/presets.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { upscaleFile } from '../../src/models/infer/upscale.js';
import { evalReference, referenceAlpha } from '../support/eval-reference.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-image-io-');
const file = (name: string): string => path.join(tmp.dir, name);
afterAll(() => tmp.cleanup());

/** Raw samples of an image file as sharp stores them (no colour conversion), with its metadata. */
async function rawOf(p: string): Promise<{ data: number[]; meta: Metadata }> {
  const meta = await sharp(p).metadata();
  const deep = meta.depth === 'ushort';
  const space = meta.channels <= 2 ? (deep ? 'grey16' : 'b-w') : deep ? 'rgb16' : 'srgb';
  const buf = await sharp(p)
    .pipelineColourspace(space)
    .toColourspace(space)
    .raw({ depth: deep ? 'ushort' : 'uchar' })
    .toBuffer();
  const data = deep ? Array.from(new Uint16Array(buf.buffer, buf.byteOffset, buf.length / 2)) : Array.from(buf);
  return { data, meta };
}

/** A w×h RGB float image from a per-pixel function. */
function floatImage(w: number, h: number, f: (x: number, y: number) => [number, number, number]): FloatImage {
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), (y * w + x) * 3);
  return { width: w, height: h, data };
}

describe('readForUpscale', () => {
  it('applies EXIF orientation 6 (rotate 90° clockwise)', async () => {
    // Stored 48×32: 3×2 blocks of 16×16, one colour each; JPEG at q100, 4:4:4 keeps them close.
    const colours = [
      [200, 30, 30],
      [30, 200, 30],
      [30, 30, 200],
      [200, 200, 30],
      [30, 200, 200],
      [200, 30, 200],
    ];
    const stored = new Uint8Array(48 * 32 * 3);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 48; x++) stored.set(colours[Math.floor(y / 16) * 3 + Math.floor(x / 16)], (y * 48 + x) * 3);
    const p = file('orient6.jpg');
    await sharp(stored, { raw: { width: 48, height: 32, channels: 3 } })
      .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
      .withMetadata({ orientation: 6 })
      .toFile(p);
    expect((await sharp(p).metadata()).orientation).toBe(6);

    const img = await readForUpscale(p);
    expect([img.rgb.width, img.rgb.height]).toEqual([32, 48]);
    expect(img.grey).toBe(false);
    expect(img.bitDepth).toBe(8);
    expect(img.alpha).toBeNull();
    // Orientation 6: stored row 0 is the displayed right column, stored column 0 the displayed top row,
    // so displayed (x', y') = stored (x = y', y = 31 − x').
    for (const [xd, yd] of [
      [8, 8],
      [24, 8],
      [8, 24],
      [24, 40],
      [8, 40],
      [30, 2],
    ]) {
      const want = stored.subarray(((31 - xd) * 48 + yd) * 3, ((31 - xd) * 48 + yd) * 3 + 3);
      const got = img.rgb.data.subarray((yd * 32 + xd) * 3, (yd * 32 + xd) * 3 + 3);
      for (let c = 0; c < 3; c++) expect(Math.abs(got[c] * 255 - want[c])).toBeLessThan(8);
    }
  });

  it('keeps the alpha channel of an RGBA PNG, exactly', async () => {
    const w = 6;
    const h = 5;
    const raw = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) raw.set([i * 7, 255 - i * 3, (i * 37) % 256, i * 8], i * 4);
    const p = file('rgba.png');
    await sharp(raw, { raw: { width: w, height: h, channels: 4 } })
      .png()
      .toFile(p);
    const img = await readForUpscale(p);
    expect(img.alpha).not.toBeNull();
    expect(img.grey).toBe(false);
    for (let i = 0; i < w * h; i++) {
      expect(img.alpha![i]).toBeCloseTo(raw[i * 4 + 3] / 255, 7);
      for (let c = 0; c < 3; c++) expect(img.rgb.data[i * 3 + c]).toBeCloseTo(raw[i * 4 + c] / 255, 7);
    }
  });

  it('reads greyscale as three equal channels and says so', async () => {
    const g = Uint8Array.from({ length: 20 }, (_, i) => i * 12);
    const p = file('grey.png');
    await sharp(g, { raw: { width: 5, height: 4, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(p);
    expect((await sharp(p).metadata()).channels).toBe(1);
    const img = await readForUpscale(p);
    expect(img.grey).toBe(true);
    expect(img.alpha).toBeNull();
    for (let i = 0; i < 20; i++) {
      for (let c = 0; c < 3; c++) expect(img.rgb.data[i * 3 + c]).toBeCloseTo(g[i] / 255, 7);
    }
  });

  it('keeps 16-bit PNG samples at 16-bit precision (divided by 65535)', async () => {
    // 1000 and 1001 are the same 8-bit value; both must survive.
    const samples = Uint16Array.from({ length: 4 * 3 * 3 }, (_, i) => (1000 + i * 1789) % 65536);
    const p = file('deep.png');
    await sharp(samples, { raw: { width: 4, height: 3, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toFile(p);
    const img = await readForUpscale(p);
    expect(img.bitDepth).toBe(16);
    expect(Array.from(img.rgb.data, (v) => Math.round(v * 65535))).toEqual(Array.from(samples));
  });

  it('converts an embedded ICC profile to sRGB, also at 16 bits', async () => {
    // sRGB (200, 60, 30) stored as Display P3 (≈ 185, 72, 44), then widened to 16 bits with the profile kept.
    const srgb = new Uint8Array(4 * 4 * 3).map((_, i) => [200, 60, 30][i % 3]);
    const p3 = await sharp(srgb, { raw: { width: 4, height: 4, channels: 3 } })
      .withIccProfile('p3')
      .png()
      .toBuffer();
    const p = file('p3-16.png');
    await sharp(p3).pipelineColourspace('rgb16').toColourspace('rgb16').keepIccProfile().png().toFile(p);
    const stored = await rawOf(p);
    expect(stored.meta.icc).toBeDefined();
    expect(Math.abs(stored.data[0] / 257 - 200)).toBeGreaterThan(8); // really stored in P3
    const img = await readForUpscale(p);
    expect(img.bitDepth).toBe(16);
    [200, 60, 30].forEach((v, c) => expect(Math.abs(img.rgb.data[c] * 255 - v)).toBeLessThan(1.5));
  });

  it('rejects corrupt and missing files with SRGAN_ERR_DATA naming the file', async () => {
    const bad = file('corrupt.png');
    fs.writeFileSync(bad, Buffer.from('this is not an image at all'));
    const truncated = file('truncated.jpg');
    const jpeg = await sharp(new Uint8Array(64 * 64 * 3).fill(90), { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer();
    fs.writeFileSync(truncated, jpeg.subarray(0, jpeg.length >> 1));
    for (const p of [bad, truncated, file('missing.png')]) {
      const err = await readForUpscale(p).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SrganError);
      expect((err as SrganError).code).toBe('SRGAN_ERR_DATA');
      expect((err as SrganError).message).toContain(p);
    }
  });
});

describe('upscaleAlpha', () => {
  it('is the centre-aligned Keys bicubic (clamp-to-edge), in float, clamped to [0, 1]: values computed outside this code', () => {
    // test/fixtures/eval_reference.py: the same enlargement in NumPy float64, on planes of k/16 (exact in float32).
    for (const ref of evalReference.alpha) {
      const up = upscaleAlpha(referenceAlpha(ref.width, ref.height), ref.width, ref.height, ref.scale);
      expect(up.length).toBe(ref.width * ref.scale * ref.height * ref.scale);
      let worst = 0;
      up.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.values[i]))));
      // float32 output: within half an ulp of 1.
      expect(worst, `${ref.width}×${ref.height} ×${ref.scale}`).toBeLessThanOrEqual(6e-8);
    }
    const w = 7;
    const h = 5;
    const alpha = referenceAlpha(w, h);
    // A hard 0 → 1 edge overshoots in Keys' kernel; the clamp keeps it in range.
    const edge = Float32Array.from({ length: 8 }, (_, i) => (i % 4 < 2 ? 0 : 1));
    const e = upscaleAlpha(edge, 4, 2, 4);
    expect(Math.min(...e)).toBe(0);
    expect(Math.max(...e)).toBe(1);
    expect(() => upscaleAlpha(alpha, w, h + 1, 2)).toThrow(/alpha/);
  });
});

describe('writeUpscaled', () => {
  const rgb = floatImage(6, 4, (x, y) => [x / 5, y / 3, (x + y) / 8]);
  const alpha = Float32Array.from({ length: 24 }, (_, i) => i / 23);

  it('writes RGBA PNG with alpha, 8-bit', async () => {
    const p = file('out-rgba.png');
    await writeUpscaled(p, { rgb, alpha, grey: false, bitDepth: 8 });
    const back = await readForUpscale(p);
    expect(back.bitDepth).toBe(8);
    back.alpha!.forEach((v, i) => expect(Math.abs(v - alpha[i])).toBeLessThanOrEqual(0.5 / 255 + 1e-6));
    back.rgb.data.forEach((v, i) => expect(Math.abs(v - rgb.data[i])).toBeLessThanOrEqual(0.5 / 255 + 1e-6));
  });

  it('writes grey as a one-channel PNG (mean of R, G, B), and grey + alpha as two', async () => {
    const p = file('out-grey.png');
    await writeUpscaled(p, { rgb, alpha: null, grey: true, bitDepth: 8 });
    const { data, meta } = await rawOf(p);
    expect(meta.channels).toBe(1);
    data.forEach((v, i) => expect(v).toBe(Math.round(((rgb.data[3 * i] + rgb.data[3 * i + 1] + rgb.data[3 * i + 2]) / 3) * 255)));
    const pa = file('out-grey-alpha.png');
    await writeUpscaled(pa, { rgb, alpha, grey: true, bitDepth: 16 });
    const ga = await rawOf(pa);
    expect([ga.meta.channels, ga.meta.depth]).toEqual([2, 'ushort']);
  });

  it('round-trips 16-bit PNG beyond 8-bit precision', async () => {
    // Values 1/65535 apart: indistinguishable at 8 bits.
    const deep = floatImage(5, 3, (x, y) => [(20000 + x + 7 * y) / 65535, (20001 + 3 * x) / 65535, (65535 - x - y) / 65535]);
    const p = file('out-deep.png');
    await writeUpscaled(p, { rgb: deep, alpha: null, grey: false, bitDepth: 16 });
    const back = await readForUpscale(p);
    expect(back.bitDepth).toBe(16);
    expect(Array.from(back.rgb.data, (v) => Math.round(v * 65535))).toEqual(Array.from(deep.data, (v) => Math.round(v * 65535)));
    // And the file really holds 16-bit samples.
    expect((await sharp(p).metadata()).depth).toBe('ushort');
  });

  it('writes JPEG flattened over white and WebP with alpha; rejects unknown extensions', async () => {
    const clear = new Float32Array(24); // fully transparent
    const pj = file('out.jpg');
    await writeUpscaled(pj, { rgb, alpha: clear, grey: false, bitDepth: 16 });
    const j = await readForUpscale(pj);
    expect(j.alpha).toBeNull();
    expect(j.bitDepth).toBe(8);
    expect(Math.min(...j.rgb.data)).toBeGreaterThan(0.95);
    const pw = file('out.webp');
    await writeUpscaled(pw, { rgb, alpha, grey: false, bitDepth: 8 });
    expect((await readForUpscale(pw)).alpha).not.toBeNull();
    await expect(writeUpscaled(file('out.bmp'), { rgb, alpha: null, grey: false, bitDepth: 8 })).rejects.toThrow(/outPath.*\.bmp/);
    await expect(writeUpscaled(file('x.png'), { rgb, alpha: new Float32Array(3), grey: false, bitDepth: 8 })).rejects.toThrow(/alpha/);
    await expect(
      writeUpscaled(path.join(tmp.dir, 'no-such-dir', 'x.png'), { rgb, alpha: null, grey: false, bitDepth: 8 }),
    ).rejects.toMatchObject({
      code: 'SRGAN_ERR_DATA',
    });
  });
});

describe('upscaleFile', () => {
  let gen: Generator;
  beforeAll(async () => {
    await initBackend('wasm');
    gen = buildGenerator(PRESETS['espcn-x2-fast'].generator, 2, 3);
  });
  afterAll(() => gen.dispose());

  it('upscales RGBA: colour through the network (clamped), alpha by bicubic', async () => {
    const w = 30;
    const h = 21;
    const raw = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) raw.set([(i * 5) % 256, (i * 11) % 256, 128, (i * 3) % 256], i * 4);
    const pin = file('in-rgba.png');
    await sharp(raw, { raw: { width: w, height: h, channels: 4 } })
      .png()
      .toFile(pin);
    const pout = file('in-rgba-x2.png');
    let t = 1000;
    const start = tf.memory().numTensors;
    const res = await upscaleFile(gen, pin, pout, { tile: 24, overlap: 6, blend: 4, now: () => (t += 250) });
    expect(tf.memory().numTensors).toBe(start);
    expect(res).toEqual({ width: w, height: h, outWidth: 2 * w, outHeight: 2 * h, ms: 250 });
    const back = await readForUpscale(pout);
    expect([back.rgb.width, back.rgb.height]).toEqual([60, 42]);
    const input = await readForUpscale(pin);
    const wantAlpha = upscaleAlpha(input.alpha!, w, h, 2);
    back.alpha!.forEach((v, i) => expect(Math.abs(v - wantAlpha[i])).toBeLessThanOrEqual(0.5 / 255 + 1e-6));
    // Colour: one untiled forward pass, clamped, then quantised to 8 bits by the PNG.
    const srT = tf.tidy(() => tf.clipByValue(gen.apply(tf.tensor4d(input.rgb.data, [1, h, w, 3])), 0, 1));
    const sr = srT.dataSync();
    srT.dispose();
    let clamped = 0;
    back.rgb.data.forEach((v, i) => {
      expect(Math.abs(v - sr[i])).toBeLessThanOrEqual(0.5 / 255 + 1e-4);
      if (sr[i] === 0 || sr[i] === 1) clamped++;
    });
    expect(clamped).toBeGreaterThan(0); // the random net overshoots somewhere, so the clamp was exercised
  });

  it('writes a 16-bit grey input back as 16-bit grey', async () => {
    const g = Uint16Array.from({ length: 13 * 9 }, (_, i) => 30000 + i * 17);
    const pin = file('in-grey16.png');
    await sharp(g, { raw: { width: 13, height: 9, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toFile(pin);
    const pout = file('in-grey16-x2.png');
    await upscaleFile(gen, pin, pout);
    const meta = await sharp(pout).metadata();
    expect([meta.width, meta.height, meta.channels, meta.depth]).toEqual([26, 18, 1, 'ushort']);
  });

  it('checks the output extension before doing any work', async () => {
    await expect(upscaleFile(gen, file('does-not-exist.png'), file('out.gif'))).rejects.toThrow(RangeError);
  });
});

it('toFloatImage divides by 255', () => {
  expect(Array.from(toFloatImage({ width: 1, height: 1, data: Uint8Array.from([0, 51, 255]) }).data)).toEqual([0, Math.fround(0.2), 1]);
});
