// PSNR-Y / SSIM-Y in BasicSR's convention (src/data/image/quality.ts): hand-computed PSNR, closed-form SSIM
// of flat images, and an independent brute-force 2-D SSIM.

import { describe, expect, it } from 'vitest';

import type { RgbImage } from '../../src/data/image/rgb-image.js';
import { mulberry32 } from '../../src/util/prng.js';
import { psnrY, ssimY, toY } from '../../src/data/image/quality.js';
import { make } from '../support/reference.js';

const grey = (w: number, h: number, v: number): RgbImage => make(w, h, () => [v, v, v]);

/** A copy of img with pixel (x, y) set to rgb. */
function withPixel(img: RgbImage, x: number, y: number, rgb: readonly number[]): RgbImage {
  const data = img.data.slice();
  data.set(rgb, (y * img.width + x) * 3);
  return { ...img, data };
}

function noisy(img: RgbImage, amp: number, seed: number): RgbImage {
  const rand = mulberry32(seed);
  const data = img.data.map((v) => Math.max(0, Math.min(255, Math.round(v + (rand() * 2 - 1) * amp))));
  return { ...img, data };
}

function texture(w: number, h: number, seed: number): RgbImage {
  const rand = mulberry32(seed);
  return make(w, h, (x, y) => [
    Math.round(128 + 60 * Math.sin(x / 3) + 40 * rand()),
    Math.round(100 + 50 * Math.cos(y / 4) + 40 * rand()),
    Math.round(80 + 30 * Math.sin((x + y) / 5) + 40 * rand()),
  ]);
}

/** Brute force: 2-D 11×11 Gaussian window (σ 1.5) at every 'valid' position, as BasicSR's _ssim reads. */
function ssimReference(a: RgbImage, b: RgbImage): number {
  const ya = toY(a);
  const yb = toY(b);
  const g = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * 1.5 * 1.5)));
  const gs = g.reduce((s, v) => s + v, 0);
  const win = (i: number, j: number): number => (g[i] / gs) * (g[j] / gs);
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  let total = 0;
  let count = 0;
  for (let y = 0; y + 11 <= a.height; y++) {
    for (let x = 0; x + 11 <= a.width; x++) {
      let m1 = 0,
        m2 = 0,
        e11 = 0,
        e22 = 0,
        e12 = 0;
      for (let i = 0; i < 11; i++) {
        for (let j = 0; j < 11; j++) {
          const k = (y + i) * a.width + x + j;
          const w = win(i, j);
          m1 += w * ya[k];
          m2 += w * yb[k];
          e11 += w * ya[k] * ya[k];
          e22 += w * yb[k] * yb[k];
          e12 += w * ya[k] * yb[k];
        }
      }
      const s1 = e11 - m1 * m1;
      const s2 = e22 - m2 * m2;
      const s12 = e12 - m1 * m2;
      total += ((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1 * m1 + m2 * m2 + c1) * (s1 + s2 + c2));
      count++;
    }
  }
  return total / count;
}

describe('toY', () => {
  it('is BT.601 studio-swing luma of 8-bit RGB, as a float in [16, 235]', () => {
    const img = make(
      4,
      1,
      (x) =>
        [
          [0, 0, 0],
          [255, 255, 255],
          [255, 0, 0],
          [10, 20, 30],
        ][x],
    );
    const y = toY(img);
    expect(y[0]).toBeCloseTo(16, 12);
    expect(y[1]).toBeCloseTo(235, 12); // 16 + (65.481 + 128.553 + 24.966) = 16 + 219
    expect(y[2]).toBeCloseTo(16 + 65.481, 12);
    expect(y[3]).toBeCloseTo(16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255, 12);
  });
});

describe('psnrY', () => {
  // a: 4×4 grey 100. b: (0,0) grey +10, (3,2) grey −20, (1,1) blue +51. For grey pixels the Y weights sum
  // to 219, so ΔY = Δ·219/255; a blue-only change gives ΔY = 24.966·Δ/255.
  //   SSE = (10·219/255)² + (20·219/255)² + (24.966·51/255)² = 73.7578 + 295.0311 + 24.9320 = 393.7210
  //   MSE = 393.7210 / 16 = 24.60756;  PSNR = 10·log10(255² / 24.60756) = 34.2201 dB.
  // With border 1 only the central 2×2 counts, which holds only (1,1):
  //   MSE = 24.9320 / 4 = 6.23301;  PSNR = 10·log10(65025 / 6.23301) = 40.1838 dB.
  const a = grey(4, 4, 100);
  const b = withPixel(withPixel(withPixel(a, 0, 0, [110, 110, 110]), 3, 2, [80, 80, 80]), 1, 1, [100, 100, 151]);
  const k = 219 / 255;
  const sse = (10 * k) ** 2 + (20 * k) ** 2 + ((24.966 * 51) / 255) ** 2;

  it('matches the arithmetic by hand on a 4×4 image', () => {
    expect(sse).toBeCloseTo(393.721, 3);
    expect(psnrY(a, b)).toBeCloseTo(10 * Math.log10((255 * 255) / (sse / 16)), 10);
    expect(psnrY(a, b)).toBeCloseTo(34.2201, 4);
    expect(psnrY(b, a)).toBe(psnrY(a, b));
  });

  it('crops the border first', () => {
    expect(psnrY(a, b, 1)).toBeCloseTo(40.1838, 4);
    // Differences only in the outer ring vanish with border 1.
    const ringOnly = withPixel(withPixel(a, 0, 0, [0, 0, 0]), 3, 3, [255, 0, 0]);
    expect(psnrY(a, ringOnly)).toBeLessThan(30);
    expect(psnrY(a, ringOnly, 1)).toBe(Infinity);
  });

  it('is +Infinity for identical images', () => {
    const t = texture(9, 7, 1);
    expect(psnrY(t, { ...t, data: t.data.slice() })).toBe(Infinity);
  });

  it('rejects size mismatches naming both sizes, and bad borders', () => {
    expect(() => psnrY(grey(4, 4, 1), grey(5, 4, 1))).toThrow(RangeError);
    expect(() => psnrY(grey(4, 4, 1), grey(5, 4, 1))).toThrow(/4×4.*5×4/);
    expect(() => psnrY(a, b, 2)).toThrow(/border/);
    expect(() => psnrY(a, b, -1)).toThrow(/border/);
    expect(() => psnrY(a, b, 0.5)).toThrow(/border/);
  });
});

describe('ssimY', () => {
  it('is 1 for identical images', () => {
    const t = texture(20, 16, 2);
    expect(ssimY(t, { ...t, data: t.data.slice() })).toBeCloseTo(1, 12);
  });

  it('is symmetric and below 1 for noise, falling as the noise grows', () => {
    const t = texture(24, 19, 3);
    const n1 = noisy(t, 10, 4);
    const n2 = noisy(t, 40, 5);
    const s1 = ssimY(t, n1);
    expect(ssimY(n1, t)).toBeCloseTo(s1, 12);
    expect(s1).toBeLessThan(1);
    expect(ssimY(t, n2)).toBeLessThan(s1);
    expect(ssimY(t, n2)).toBeGreaterThan(0);
  });

  it('equals the closed form for flat images: (2μ1μ2 + C1) / (μ1² + μ2² + C1)', () => {
    const y1 = 16 + (100 * 219) / 255;
    const y2 = 16 + (130 * 219) / 255;
    const c1 = (0.01 * 255) ** 2;
    expect(ssimY(grey(12, 11, 100), grey(12, 11, 130))).toBeCloseTo((2 * y1 * y2 + c1) / (y1 * y1 + y2 * y2 + c1), 9);
  });

  it('equals a brute-force 2-D windowed SSIM (valid positions only)', () => {
    const t = texture(17, 13, 6);
    const n = noisy(t, 25, 7);
    expect(ssimY(t, n)).toBeCloseTo(ssimReference(t, n), 10);
  });

  it('crops the border first', () => {
    const t = texture(15, 15, 8);
    // Change only the outer 2-pixel ring: border 2 leaves two identical 11×11 images.
    const data = t.data.slice();
    for (let y = 0; y < 15; y++) {
      for (let x = 0; x < 15; x++) {
        if (x < 2 || y < 2 || x >= 13 || y >= 13) data.set([0, 255, 0], (y * 15 + x) * 3);
      }
    }
    const ring = { ...t, data };
    expect(ssimY(t, ring, 2)).toBeCloseTo(1, 12);
    // Border 1 keeps one row/column of the ring: 13×13, 3×3 windows, each with changed pixels at its
    // edge, where the Gaussian weight is small (e^(−25/4.5) ≈ 0.004 of the centre's), so the drop is small.
    const s1 = ssimY(t, ring, 1);
    expect(s1).toBeLessThan(0.999);
    const crop = (img: RgbImage, b: number): RgbImage =>
      make(img.width - 2 * b, img.height - 2 * b, (x, y) =>
        Array.from(img.data.subarray(((y + b) * img.width + x + b) * 3, ((y + b) * img.width + x + b) * 3 + 3)),
      );
    expect(s1).toBeCloseTo(ssimReference(crop(t, 1), crop(ring, 1)), 10);
  });

  it('rejects size mismatches naming both sizes, and images smaller than the window', () => {
    expect(() => ssimY(grey(12, 12, 1), grey(12, 13, 1))).toThrow(/12×12.*12×13/);
    expect(() => ssimY(grey(10, 12, 1), grey(10, 12, 1))).toThrow(/11×11/);
    expect(() => ssimY(grey(14, 14, 1), grey(14, 14, 1), 2)).toThrow(/border/);
  });
});
