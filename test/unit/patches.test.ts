import fs from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import {
  applyAugment,
  augment,
  downscaleAA2,
  encodePng,
  hstack,
  loadRgb,
  makePair,
  randomCrop,
  upscaleBicubic,
  upscaleNearest,
} from '../../src/data/image/patches.js';
import type { RgbImage } from '../../src/data/image/rgb-image.js';
import { mulberry32 } from '../../src/util/prng.js';
import { SrganError } from '../../src/util/errors.js';
import { tempDir } from '../support/tmp.js';
import { channel, make, normalisedConv } from '../support/reference.js';

function px(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
}

/** Independent reference for docs/seed.md §2.5: 2-D conv(zero-padded x) / conv(zero-padded ones), stride 2. */
const referenceAA2 = (img: RgbImage): RgbImage =>
  normalisedConv(
    img,
    2,
    [1, 3, 3, 1].map((t) => t / 8),
  );

describe('downscaleAA2', () => {
  it('matches hand-computed values, with renormalised border taps', () => {
    // 4×2. Horizontally: o=0 reads taps 3,3,1 (/7), o=1 reads 1,3,3 (/7). Vertically (height 2) only the
    // two middle taps are in range, 3,3 (/6): a plain average of the two rows.
    const rows = [
      [0, 70, 140, 210],
      [8, 8, 8, 8],
    ];
    const img = make(4, 2, (x, y) => [rows[y][x], 100, 255 - rows[y][x]]);
    const out = downscaleAA2(img);
    expect(out.width).toBe(2);
    expect(out.height).toBe(1);
    // Row 0: (3·0 + 3·70 + 140)/7 = 50 and (70 + 3·140 + 3·210)/7 = 160; row 1: 8 and 8. Averages 29 and 84.
    expect(px(out, 0, 0)).toEqual([29, 100, 255 - 29]);
    expect(px(out, 1, 0)).toEqual([84, 100, 255 - 84]);
  });

  it('uses the full [1,3,3,1]/8 taps in the interior', () => {
    // 6×2 ramp 0,8,..,40, both rows equal. o=1 is interior: (8 + 3·16 + 3·24 + 32)/8 = 20 (the ramp at x=2.5).
    // o=0: (3·0 + 3·8 + 16)/7 = 5.71 → 6; o=2: (24 + 3·32 + 3·40)/7 = 34.29 → 34.
    const img = make(6, 2, (x) => [8 * x, 8 * x, 8 * x]);
    expect(channel(downscaleAA2(img), 0)).toEqual([6, 20, 34]);
  });

  it('equals the 2-D normalised convolution on random images', () => {
    const rand = mulberry32(3);
    for (const [w, h] of [
      [2, 2],
      [10, 8],
      [4, 14],
    ] as const) {
      const img = make(w, h, () => [rand() * 256, rand() * 256, rand() * 256].map(Math.floor));
      expect(downscaleAA2(img)).toEqual(referenceAA2(img));
    }
  });

  it('keeps a constant image constant, borders included', () => {
    const out = downscaleAA2(make(10, 6, () => [17, 128, 254]));
    for (let y = 0; y < out.height; y++) for (let x = 0; x < out.width; x++) expect(px(out, x, y)).toEqual([17, 128, 254]);
  });

  it('keeps a ramp aligned: output o sits at source x = 2o + 0.5, mean preserved', () => {
    const img = make(16, 4, (x) => [10 * x, 10 * x, 10 * x]);
    const out = downscaleAA2(img);
    const row = channel(out, 0).slice(0, 8);
    // Interior outputs (full taps) reproduce the ramp at their centres exactly.
    for (let o = 1; o < 7; o++) expect(row[o]).toBe(10 * (2 * o + 0.5));
    // Border renormalisation pulls the two end samples inwards symmetrically, so the mean is unchanged.
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(channel(out, 0)) - mean(channel(img, 0)))).toBeLessThan(0.5);
  });

  it('rejects odd sizes', () => {
    expect(() => downscaleAA2(make(5, 4, () => [0, 0, 0]))).toThrow(RangeError);
    expect(() => downscaleAA2(make(4, 3, () => [0, 0, 0]))).toThrow(/even/);
  });
});

describe('upscaleBicubic', () => {
  it('keeps a linear ramp linear and centre-aligned (no half-pixel shift)', () => {
    // Input x has value 10 + 20x. Output j samples x = (j + 0.5)/2 − 0.5, so it must read 5 + 10j.
    // sharp's enlargement would give 10j (a shift of half an output pixel).
    const img = make(8, 3, (x) => [10 + 20 * x, 10 + 20 * x, 200 - 20 * x]);
    const out = upscaleBicubic(img, 2);
    expect(out.width).toBe(16);
    expect(out.height).toBe(6);
    for (let y = 0; y < out.height; y++) {
      // Away from the clamped borders (the kernel reaches 2 input pixels out).
      for (let j = 3; j <= 12; j++) expect(px(out, j, y)).toEqual([5 + 10 * j, 5 + 10 * j, 205 - 10 * j]);
    }
  });

  it('is centre-aligned at ×3 and along y too', () => {
    const img = make(3, 9, (_x, y) => [20 + 25 * y, 0, 0]);
    const out = upscaleBicubic(img, 3);
    for (let i = 6; i < out.height - 6; i++) {
      const expected = 20 + 25 * ((i + 0.5) / 3 - 0.5);
      expect(Math.abs(px(out, 4, i)[0] - expected)).toBeLessThanOrEqual(0.5);
    }
  });

  it('keeps a constant image constant', () => {
    const out = upscaleBicubic(
      make(5, 4, () => [3, 77, 250]),
      4,
    );
    for (let i = 0; i < out.data.length; i += 3) expect([out.data[i], out.data[i + 1], out.data[i + 2]]).toEqual([3, 77, 250]);
  });

  it('rejects non-integer scales', () => {
    expect(() =>
      upscaleBicubic(
        make(2, 2, () => [0, 0, 0]),
        1.5,
      ),
    ).toThrow(RangeError);
  });

  // Pinned against values computed independently of resample.ts with NumPy (python3 + numpy 1.x):
  //
  //   def keys(x, a=-0.5):
  //       t = abs(x)
  //       if t <= 1: return (a+2)*t**3 - (a+3)*t**2 + 1
  //       if t < 2: return a*t**3 - 5*a*t**2 + 8*a*t - 4*a
  //       return 0.0
  //   def up_matrix(n, s):                 # row j: weights of the n inputs in output j
  //       M = np.zeros((n*s, n))
  //       for j in range(n*s):
  //           u = (j + 0.5)/s - 0.5; i0 = int(np.floor(u))
  //           for i in range(i0-1, i0+3): M[j, min(max(i, 0), n-1)] += keys(u - i)
  //       return M
  //   to_byte = lambda v: np.clip(np.floor(v + 0.5 + 1e-9), 0, 255).astype(int)
  //   img = np.full((5, 5), 100.0); img[2, 2] = 200; M = up_matrix(5, 2)
  //   to_byte(M @ img @ M.T)                          # the impulse below
  //   to_byte(up_matrix(8, s) @ (4.0*np.arange(8)**2))  # the quadratic ramps, s = 2 and 4
  //
  // The impulse shows the kernel's shape, negative lobes included (94 < 100, which no positive kernel such
  // as bilinear gives); the quadratic, which Keys' a = −0.5 reproduces exactly away from the borders
  // (4·1.75² = 12.25 → 12), tells Keys from bilinear, whose chord lies above the parabola (→ 13); a linear
  // ramp could not, since both reproduce it.

  it('matches independently computed Keys values on an impulse', () => {
    const expected = [
      [100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
      [100, 100, 100, 99, 98, 98, 99, 100, 100, 100],
      [100, 100, 100, 98, 94, 94, 98, 100, 100, 100],
      [100, 99, 98, 105, 120, 120, 105, 98, 99, 100],
      [100, 98, 94, 120, 175, 175, 120, 94, 98, 100],
      [100, 98, 94, 120, 175, 175, 120, 94, 98, 100],
      [100, 99, 98, 105, 120, 120, 105, 98, 99, 100],
      [100, 100, 100, 98, 94, 94, 98, 100, 100, 100],
      [100, 100, 100, 99, 98, 98, 99, 100, 100, 100],
      [100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
    ];
    // Red: +100 at the centre; green constant; blue: −100 at the centre (the mirror image, so 200 − red).
    const img = make(5, 5, (x, y) => (x === 2 && y === 2 ? [200, 50, 0] : [100, 50, 100]));
    const out = upscaleBicubic(img, 2);
    expect([out.width, out.height]).toEqual([10, 10]);
    const rows = (c: number): number[][] => Array.from({ length: 10 }, (_, y) => channel(out, c).slice(y * 10, y * 10 + 10));
    expect(rows(0)).toEqual(expected);
    expect(rows(1)).toEqual(expected.map((r) => r.map(() => 50)));
    expect(rows(2)).toEqual(expected.map((r) => r.map((v) => 200 - v)));
  });

  it('matches independently computed Keys values on a quadratic ramp, ×2 and ×4', () => {
    const img = make(8, 2, (x) => [4 * x * x, 4 * x * x, 4 * x * x]);
    const x2 = upscaleBicubic(img, 2);
    expect([x2.width, x2.height]).toEqual([16, 4]);
    for (let y = 0; y < 4; y++)
      expect(channel(x2, 1).slice(y * 16, y * 16 + 16)).toEqual([0, 1, 2, 6, 12, 20, 30, 42, 56, 72, 90, 110, 132, 158, 186, 200]);
    const x4 = upscaleBicubic(img, 4);
    expect([x4.width, x4.height]).toEqual([32, 8]);
    const row4 = [
      0, 0, 0, 1, 2, 3, 5, 8, 11, 14, 18, 23, 28, 33, 39, 46, 53, 60, 68, 77, 86, 95, 105, 116, 127, 138, 150, 165, 180, 192, 198, 200,
    ];
    for (let y = 0; y < 8; y++) expect(channel(x4, 0).slice(y * 32, y * 32 + 32)).toEqual(row4);
  });
});

describe('upscaleNearest, hstack, encodePng', () => {
  it('repeats each pixel in a scale×scale block', () => {
    const img = make(2, 1, (x) => [x * 100, 1, 2]);
    const out = upscaleNearest(img, 3);
    expect(out.width).toBe(6);
    expect(out.height).toBe(3);
    for (let y = 0; y < 3; y++) expect(channel(out, 0).slice(y * 6, y * 6 + 6)).toEqual([0, 0, 0, 100, 100, 100]);
  });

  it('stacks images side by side, top-aligned, gap and padding filled', () => {
    const a = make(2, 2, () => [255, 0, 0]);
    const b = make(1, 1, () => [0, 255, 0]);
    const out = hstack([a, b], 1, 7);
    expect(out.width).toBe(4);
    expect(out.height).toBe(2);
    expect(px(out, 1, 1)).toEqual([255, 0, 0]);
    expect(px(out, 2, 0)).toEqual([7, 7, 7]);
    expect(px(out, 3, 0)).toEqual([0, 255, 0]);
    expect(px(out, 3, 1)).toEqual([7, 7, 7]);
  });

  it('round-trips through PNG', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const rand = mulberry32(9);
      const img = make(7, 5, () => [rand() * 256, rand() * 256, rand() * 256].map(Math.floor));
      const file = path.join(dir, 'x.png');
      fs.writeFileSync(file, await encodePng(img));
      expect(await loadRgb(file)).toEqual(img);
    } finally {
      cleanup();
    }
  });
});

describe('randomCrop, augment, makePair', () => {
  // Pixel (x, y) = [x, y, 7]: every pixel names its own coordinates.
  const coords = make(40, 30, (x, y) => [x, y, 7]);

  it('crops the right pixels, reproducibly for a seed', () => {
    const a = randomCrop(coords, 8, mulberry32(5));
    const b = randomCrop(coords, 8, mulberry32(5));
    expect(a).toEqual(b);
    const r = mulberry32(5);
    const x0 = Math.floor(r() * (40 - 8 + 1));
    const y0 = Math.floor(r() * (30 - 8 + 1));
    expect(a.width).toBe(8);
    expect(a.height).toBe(8);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(px(a, x, y)).toEqual([x0 + x, y0 + y, 7]);
  });

  it('reaches every position, corners included, and rejects oversized crops', () => {
    const seen = new Set<string>();
    const rand = mulberry32(11);
    const small = make(4, 3, (x, y) => [x, y, 0]);
    for (let i = 0; i < 300; i++) {
      const c = randomCrop(small, 2, rand);
      seen.add(px(c, 0, 0).slice(0, 2).join(','));
    }
    expect(seen.size).toBe(3 * 2);
    expect(() => randomCrop(small, 4, rand)).toThrow(RangeError);
  });

  it('applies flips and transposes as documented', () => {
    const img = make(5, 3, (x, y) => [x, y, 0]);
    for (const hflip of [false, true]) {
      for (const vflip of [false, true]) {
        for (const transpose of [false, true]) {
          const out = applyAugment(img, { hflip, vflip, transpose });
          expect([out.width, out.height]).toEqual(transpose ? [3, 5] : [5, 3]);
          for (let y = 0; y < out.height; y++) {
            for (let x = 0; x < out.width; x++) {
              let sx = transpose ? y : x;
              let sy = transpose ? x : y;
              if (hflip) sx = 4 - sx;
              if (vflip) sy = 2 - sy;
              expect(px(out, x, y)).toEqual([sx, sy, 0]);
            }
          }
        }
      }
    }
  });

  it('augment draws its three decisions from rand, in order', () => {
    const seq = [0.1, 0.9, 0.2];
    const img = make(4, 2, (x, y) => [x, y, 0]);
    const out = augment(img, () => seq.shift()!);
    expect(out).toEqual(applyAugment(img, { hflip: true, vflip: false, transpose: true }));
    // Transpose then hflip is a 90° rotation: the top-left output pixel is the input's top-right.
    expect(px(out, 0, 0)).toEqual([3, 0, 0]);
    const a = augment(coords, mulberry32(2));
    expect(a).toEqual(augment(coords, mulberry32(2)));
  });

  it('makePair gives an augmented HR crop and its AA ×2 downscale, reproducibly', () => {
    const rand = mulberry32(1);
    const img = make(50, 40, () => [rand() * 256, rand() * 256, rand() * 256].map(Math.floor));
    const p = makePair(img, { patch: 16, scale: 2 }, mulberry32(77));
    expect(p).toEqual(makePair(img, { patch: 16, scale: 2 }, mulberry32(77)));
    expect([p.hr.width, p.hr.height, p.lr.width, p.lr.height]).toEqual([16, 16, 8, 8]);
    expect(p.lr).toEqual(downscaleAA2(p.hr));
    const r = mulberry32(77);
    const crop = randomCrop(img, 16, r);
    expect(p.hr).toEqual(augment(crop, r));
    expect(() => makePair(img, { patch: 15, scale: 2 }, r)).toThrow(/patch/);
    expect(() => makePair(img, { patch: 16, scale: 4 as 2 }, r)).toThrow(/scale/);
  });
});

describe('loadRgb', () => {
  const { dir, cleanup } = tempDir();
  afterAll(cleanup);

  it('drops alpha from an RGBA PNG, keeping the colour values', async () => {
    const rgba = new Uint8Array(4 * 3 * 4);
    for (let i = 0; i < 12; i++) rgba.set([i * 20, 255 - i * 20, 9, i * 21], i * 4);
    const file = path.join(dir, 'rgba.png');
    await sharp(rgba, { raw: { width: 4, height: 3, channels: 4 } })
      .png()
      .toFile(file);
    expect((await sharp(file).metadata()).channels).toBe(4);
    const img = await loadRgb(file);
    expect([img.width, img.height, img.data.length]).toEqual([4, 3, 36]);
    for (let i = 0; i < 12; i++) expect(px(img, i % 4, Math.floor(i / 4))).toEqual([i * 20, 255 - i * 20, 9]);
  });

  it('replicates a greyscale PNG to three channels', async () => {
    const grey = Uint8Array.from({ length: 6 * 2 }, (_, i) => i * 20);
    const file = path.join(dir, 'grey.png');
    await sharp(grey, { raw: { width: 6, height: 2, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(file);
    expect((await sharp(file).metadata()).channels).toBe(1);
    const img = await loadRgb(file);
    for (let i = 0; i < 12; i++) expect(px(img, i % 6, Math.floor(i / 6))).toEqual([i * 20, i * 20, i * 20]);
  });

  it('reduces a 16-bit PNG to 8 bits', async () => {
    const file = path.join(dir, 'deep.png');
    await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .toColourspace('rgb16')
      .png()
      .toFile(file);
    expect((await sharp(file).metadata()).depth).toBe('ushort');
    const img = await loadRgb(file);
    expect(img.data.length).toBe(18);
    for (const v of [px(img, 0, 0), px(img, 2, 1)]) {
      v.forEach((c, k) => expect(Math.abs(c - [200, 100, 50][k])).toBeLessThanOrEqual(1));
    }
  });

  it('applies EXIF orientation 6 (stored left half ends up on top)', async () => {
    // Stored 32×16: left half red, right half blue. Orientation 6 = rotate 90° clockwise for display,
    // so the displayed image is 16×32 with red on top and blue below.
    const stored = make(32, 16, (x) => (x < 16 ? [230, 20, 20] : [20, 20, 230]));
    const file = path.join(dir, 'rot6.jpg');
    await sharp(stored.data, { raw: { width: 32, height: 16, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toFile(file);
    expect((await sharp(file).metadata()).orientation).toBe(6);
    const img = await loadRgb(file);
    expect([img.width, img.height]).toEqual([16, 32]);
    const top = px(img, 8, 4);
    const bottom = px(img, 8, 27);
    expect(top[0] - top[2]).toBeGreaterThan(150);
    expect(bottom[2] - bottom[0]).toBeGreaterThan(150);
  });

  it('reports a corrupt or missing file as SRGAN_ERR_DATA naming the file', async () => {
    const bad = path.join(dir, 'corrupt.png');
    const png = await encodePng(make(8, 8, () => [1, 2, 3]));
    fs.writeFileSync(bad, png.subarray(0, 40)); // header survives, image data cut off
    const err = await loadRgb(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SrganError);
    expect((err as SrganError).code).toBe('SRGAN_ERR_DATA');
    expect((err as SrganError).message).toContain(bad);

    const junk = path.join(dir, 'junk.jpg');
    fs.writeFileSync(junk, 'not an image at all');
    await expect(loadRgb(junk)).rejects.toMatchObject({ code: 'SRGAN_ERR_DATA' });
    await expect(loadRgb(path.join(dir, 'missing.png'))).rejects.toMatchObject({ code: 'SRGAN_ERR_DATA' });
  });
});
