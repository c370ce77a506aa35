// LR synthesis (docs/seed.md §2.5) against hand-computed values and independent references.

import { describe, expect, it } from 'vitest';

import {
  BILINEAR_AA_TAPS,
  JPEG_QUALITIES,
  downscale,
  drawJpegQuality,
  drawLrSynthesis,
  lrSynthesisName,
  parseLrSynthesis,
  jpegDegrade,
} from '../../src/data/image/degrade.js';
import { DOWNSCALE_FILTERS, EVAL_LR_SYNTHESES, type DownscaleFilter } from '../../src/config/lr-synthesis.js';
import { downscaleAA2 } from '../../src/data/image/patches.js';
import type { RgbImage } from '../../src/data/image/rgb-image.js';
import { mulberry32 } from '../../src/util/prng.js';
import { gaussianTaps, resampleSeparable } from '../../src/data/image/resample.js';
import { channel, make, normalisedConv } from '../support/reference.js';

function random(width: number, height: number, seed: number): RgbImage {
  const rand = mulberry32(seed);
  return make(width, height, () => [rand() * 256, rand() * 256, rand() * 256].map(Math.floor));
}

function psnr(a: RgbImage, b: RgbImage): number {
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i] - b.data[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.data.length));
}

const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
const FILTERS: DownscaleFilter[] = ['bilinear-aa', 'box-gamma', 'bicubic-aa', 'area', 'lanczos3'];

describe("downscale 'bilinear-aa'", () => {
  it('has the seed taps: ×2 [1,3,3,1]/8 and ×4 [1,3,5,7,7,5,3,1]/32, each summing to 1', () => {
    expect(BILINEAR_AA_TAPS[2]).toEqual([1, 3, 3, 1].map((t) => t / 8));
    expect(BILINEAR_AA_TAPS[4]).toEqual([1, 3, 5, 7, 7, 5, 3, 1].map((t) => t / 32));
    for (const f of [2, 4] as const) expect(BILINEAR_AA_TAPS[f].reduce((s, t) => s + t, 0)).toBe(1);
  });

  it('×2 is byte-identical to downscaleAA2', () => {
    for (const [w, h, seed] of [
      [2, 2, 1],
      [10, 8, 2],
      [4, 14, 3],
      [64, 32, 4],
    ] as const) {
      const img = random(w, h, seed);
      expect(downscale(img, 2, 'bilinear-aa')).toEqual(downscaleAA2(img));
    }
  });

  it('×4 matches hand-computed values, with renormalised border taps', () => {
    // 8×4, every row the ramp 0,8,..,56. Output o reads source 4o−2..4o+5.
    // o=0: taps at −2,−1 fall outside; (5·0 + 7·8 + 7·16 + 5·24 + 3·32 + 1·40)/28 = 424/28 = 15.14 → 15.
    // o=1: taps at 8, 9 fall outside; (1·16 + 3·24 + 5·32 + 7·40 + 7·48 + 5·56)/28 = 1144/28 = 40.86 → 41.
    // Vertically (height 4) the four middle taps 5,7,7,5 are in range; the rows are equal, so they average to the row.
    const img = make(8, 4, (x) => [8 * x, 8 * x, 255 - 8 * x]);
    const out = downscale(img, 4, 'bilinear-aa');
    expect([out.width, out.height]).toEqual([2, 1]);
    expect(channel(out, 0)).toEqual([15, 41]);
    expect(channel(out, 2)).toEqual([255 - 15, 255 - 41]);
  });

  it('×4 uses the full taps in the interior, centred on the 4-pixel block (a ramp keeps alignment and mean)', () => {
    // Output o sits at source x = 4o + 1.5. Interior o (taps 4o−2..4o+5 all inside) reproduce the ramp
    // there exactly: e.g. o=1, (1·16 + 3·24 + 5·32 + 7·40 + 7·48 + 5·56 + 3·64 + 1·72)/32 = 1408/32 = 44 = 8·5.5.
    const img = make(32, 8, (x) => [8 * x, 8 * x, 8 * x]);
    const out = downscale(img, 4, 'bilinear-aa');
    const row = channel(out, 0).slice(0, 8);
    expect(row[1]).toBe(44);
    for (let o = 1; o < 7; o++) expect(row[o]).toBe(8 * (4 * o + 1.5));
    // The border outputs are pulled inwards symmetrically, so the mean is unchanged.
    expect(Math.abs(mean(channel(out, 0)) - mean(channel(img, 0)))).toBeLessThan(0.5);
    // Along y too.
    const col = downscale(
      make(4, 32, (_x, y) => [8 * y, 0, 0]),
      4,
      'bilinear-aa',
    );
    for (let o = 1; o < 7; o++) expect(col.data[o * 3]).toBe(8 * (4 * o + 1.5));
  });

  it('×4 equals the 2-D normalised convolution on random images', () => {
    for (const [w, h, seed] of [
      [4, 4, 5],
      [12, 8, 6],
      [8, 20, 7],
      [36, 28, 8],
    ] as const) {
      const img = random(w, h, seed);
      expect(downscale(img, 4, 'bilinear-aa')).toEqual(normalisedConv(img, 4, [1, 3, 5, 7, 7, 5, 3, 1]));
    }
  });
});

describe("downscale 'box-gamma'", () => {
  it('averages f×f blocks in linear light: hand-computed values', () => {
    // ×2 blocks: {0,255,255,0} → 255·0.5^(1/2.2) = 186.08 → 186; {0,0,0,255} → 255·0.25^(1/2.2) = 135.79 → 136;
    // {40,40,40,40} → 40.
    const blocks = [
      [0, 255, 255, 0],
      [0, 0, 0, 255],
      [40, 40, 40, 40],
    ];
    const img = make(6, 2, (x, y) => {
      const v = blocks[Math.floor(x / 2)][y * 2 + (x % 2)];
      return [v, v, v];
    });
    expect(channel(downscale(img, 2, 'box-gamma'), 1)).toEqual([186, 136, 40]);
    // ×4: one black pixel among 16 white → 255·(15/16)^(1/2.2) = 247.63 → 248.
    const four = make(4, 4, (x, y) => (x === 1 && y === 2 ? [0, 0, 0] : [255, 255, 255]));
    expect(channel(downscale(four, 4, 'box-gamma'), 0)).toEqual([248]);
  });

  it('is brighter than the plain box average on a black/white checker', () => {
    // Linear-light averaging of black and white gives 0.5 linear = 186 in sRGB-ish gamma, not 128.
    const checker = make(8, 8, (x, y) => ((x + y) % 2 === 0 ? [0, 0, 0] : [255, 255, 255]));
    for (const f of [2, 4] as const) {
      const out = downscale(checker, f, 'box-gamma');
      const plain = 127.5;
      for (const v of out.data) {
        expect(v).toBe(186);
        expect(v).toBeGreaterThan(plain);
      }
    }
  });

  it('reads only its own block (no overlap with neighbours)', () => {
    const img = make(8, 4, (x) => (x < 4 ? [10, 20, 30] : [200, 100, 0]));
    const out = downscale(img, 4, 'box-gamma');
    expect(Array.from(out.data)).toEqual([10, 20, 30, 200, 100, 0]);
  });
});

describe("downscale 'bicubic-aa'", () => {
  it('×2 has the stretched Keys taps [−3,−9,29,111,111,29,−9,−3]/256: an impulse', () => {
    // Weights cubic((u − j)/2) at distances 0.25, 0.75, 1.25, 1.75 are 0.8671875, 0.2265625, −0.0703125,
    // −0.0234375 (sum 1 per side, 2 in all), i.e. 111, 29, −9, −3 /256 after normalising.
    // Row: 100 everywhere, 228 at x=8 (+128). Output o is centred at u = 2o + 0.5 and reads 2o−3..2o+4:
    // o=2: 100 − 3·0.5 = 98.5 → 99; o=3: 100 + 29·0.5 = 114.5 → 115; o=4: 100 + 111·0.5 = 155.5 → 156;
    // o=5: 100 − 9·0.5 = 95.5 → 96. The other outputs do not reach x=8.
    const img = make(16, 2, (x) => (x === 8 ? [228, 228, 228] : [100, 100, 100]));
    const out = downscale(img, 2, 'bicubic-aa');
    expect([out.width, out.height]).toEqual([8, 1]);
    expect(channel(out, 0)).toEqual([100, 100, 99, 115, 156, 96, 100, 100]);
  });

  it('×2 mirrors the border (half-sample symmetric, as imresize pads)', () => {
    // Ramp 16x over 8 pixels: 0,16,..,112. With the /256 taps above:
    // o=0 (u=0.5) reads x=−3..4 = mirrored 2,1,0,0,1,2,3,4 → values 32,16,0,0,16,32,48,64:
    //   (−3·32 − 9·16 + 0 + 0 + 111·16 + 29·32 − 9·48 − 3·64)/256 = 1840/256 = 7.19 → 7.
    // o=1 (u=2.5) reads x=−1..6 → 0,0,16,32,48,64,80,96: 10192/256 = 39.81 → 40.
    // o=3 (u=6.5) reads x=3..10 → 48,64,80,96,112,112,96,80: 26832/256 = 104.81 → 105.
    const img = make(8, 2, (x) => [16 * x, 16 * x, 16 * x]);
    expect(channel(downscale(img, 2, 'bicubic-aa'), 0)).toEqual([7, 40, 72, 105]);
  });

  it('×4 taps are symmetric, centred, and reproduce a ramp in the interior', () => {
    const img = make(64, 4, (x) => [2 * x + 40, 2 * x + 40, 2 * x + 40]);
    const out = channel(downscale(img, 4, 'bicubic-aa'), 0);
    // Output o sits at x = 4o + 1.5, value 2(4o + 1.5) + 40; interior o are those whose 16 taps (4o−6..4o+9) are inside.
    for (let o = 2; o < 14; o++) expect(out[o]).toBe(2 * (4 * o + 1.5) + 40);
  });
});

// A 24-sample signal in 4 equal rows, and Pillow 9.4's resize to 12×2 of the same signal, computed once
// outside this code (Image.fromarray(a, 'L').resize((12, 2), f)): Pillow centres outputs like MATLAB
// (source (o + 0.5)·2 − 0.5) and stretches the kernel by the factor, but renormalises border taps
// where MATLAB mirrors, so only the interior must agree (to ±1: Pillow's 8-bit fixed-point weights).
const SIGNAL = Array.from({ length: 24 }, (_, x) => (x * 37 + ((x * x) % 23) * 5) % 256);
const PILLOW = {
  box: [21, 125, 212, 25, 134, 168, 114, 100, 139, 90, 23, 67],
  lanczos: [17, 133, 204, 36, 119, 189, 113, 68, 162, 95, 9, 69],
  bicubic: [22, 130, 199, 42, 123, 180, 114, 80, 151, 94, 16, 65],
};
const signalImage = (): RgbImage => make(24, 4, (x) => [SIGNAL[x], SIGNAL[x], SIGNAL[x]]);
const firstRow = (img: RgbImage): number[] => channel(img, 0).slice(0, img.width);

describe("downscale 'area'", () => {
  it('×2 is the mean of each 2×2 block, rounded half up: Pillow BOX exactly', () => {
    expect(firstRow(downscale(signalImage(), 2, 'area'))).toEqual(PILLOW.box);
  });

  it('×4 averages each 4×4 block (hand-computed)', () => {
    // Row values 0, 10, 20, …: block 0 averages 0,10,20,30 → 15; block 1 averages 40..70 → 55.
    const out = downscale(
      make(8, 4, (x) => [10 * x, 10 * x, 10 * x]),
      4,
      'area',
    );
    expect(channel(out, 0)).toEqual([15, 55]);
  });
});

describe("downscale 'lanczos3'", () => {
  it('×2 agrees with Pillow LANCZOS in the interior (±1)', () => {
    const ours = firstRow(downscale(signalImage(), 2, 'lanczos3'));
    // Output o reads source 2o − 5 .. 2o + 6: o = 3..8 touch no border.
    for (let o = 3; o <= 8; o++) expect(Math.abs(ours[o] - PILLOW.lanczos[o])).toBeLessThanOrEqual(1);
    // A bilinear or bicubic stand-in would not: the kernels differ where the signal is rough.
    const cubicRow = firstRow(downscale(signalImage(), 2, 'bicubic-aa'));
    expect(cubicRow.slice(3, 9)).not.toEqual(ours.slice(3, 9));
  });

  it('×2 bicubic-aa agrees with Pillow BICUBIC (a = −0.5) in the interior (±1)', () => {
    const ours = firstRow(downscale(signalImage(), 2, 'bicubic-aa'));
    for (let o = 2; o <= 9; o++) expect(Math.abs(ours[o] - PILLOW.bicubic[o])).toBeLessThanOrEqual(1);
  });
});

describe('downscale with a Gaussian blur first', () => {
  it('equals blurring then downscaling (one rounding instead of two: within ±1)', () => {
    const img = random(32, 24, 9);
    for (const filter of ['bicubic-aa', 'area', 'lanczos3', 'bilinear-aa'] as const) {
      const once = downscale(img, 2, filter, 0.8);
      const blurred = resampleSeparable(img, gaussianTaps(32, 0.8), gaussianTaps(24, 0.8));
      const twice = downscale(blurred, 2, filter);
      for (let i = 0; i < once.data.length; i++) expect(Math.abs(once.data[i] - twice.data[i])).toBeLessThanOrEqual(1);
    }
  });

  it('blurs: a sharper filter after blur loses detail a plain one keeps, and blur 0 is the plain filter', () => {
    const img = random(32, 32, 10);
    expect(downscale(img, 2, 'bicubic-aa', 0)).toEqual(downscale(img, 2, 'bicubic-aa'));
    const plain = downscale(img, 2, 'bicubic-aa');
    const soft = downscale(img, 2, 'bicubic-aa', 1.2);
    const spread = (im: RgbImage) => {
      const v = Array.from(im.data);
      const m = mean(v);
      return mean(v.map((x) => (x - m) ** 2));
    };
    expect(spread(soft)).toBeLessThan(spread(plain) * 0.8);
  });

  it('keeps a constant image constant and refuses blur with box-gamma or out of range', () => {
    const flat = make(16, 16, () => [77, 140, 3]);
    expect(downscale(flat, 2, 'lanczos3', 1)).toEqual(make(8, 8, () => [77, 140, 3]));
    expect(() => downscale(flat, 2, 'box-gamma', 0.5)).toThrow(/box-gamma/);
    expect(() => downscale(flat, 2, 'area', -1)).toThrow(/blur/);
    expect(() => downscale(flat, 2, 'area', 9)).toThrow(/blur/);
  });
});

describe('LR synthesis names and the training mix', () => {
  it('parses filters and blurSIGMA+FILTER, and prints them back', () => {
    for (const f of DOWNSCALE_FILTERS) expect(parseLrSynthesis(f)).toEqual({ filter: f, blur: 0 });
    expect(parseLrSynthesis('blur0.8+bicubic-aa')).toEqual({ filter: 'bicubic-aa', blur: 0.8 });
    expect(lrSynthesisName({ filter: 'area', blur: 1.5 })).toBe('blur1.5+area');
    for (const n of EVAL_LR_SYNTHESES) expect(lrSynthesisName(parseLrSynthesis(n))).toBe(n);
    for (const bad of ['bicubic', 'blur+area', 'blur0.8+box-gamma', 'blur9+area', 'blur0.8', '']) {
      expect(() => parseLrSynthesis(bad)).toThrow(/LR filter: expected one of .*got/);
    }
  });

  it('draws filters in proportion to their weights, blur with its probability and σ in range', () => {
    const rand = mulberry32(3);
    const n = 8000;
    const counts: Record<string, number> = {};
    let blurred = 0;
    for (let i = 0; i < n; i++) {
      const s = drawLrSynthesis({ 'bicubic-aa': 3, area: 1, lanczos3: 0 }, { probability: 0.25, sigmaMin: 0.3, sigmaMax: 0.9 }, rand);
      counts[s.filter] = (counts[s.filter] ?? 0) + 1;
      if (s.blur > 0) {
        blurred++;
        expect(s.blur).toBeGreaterThanOrEqual(0.3);
        expect(s.blur).toBeLessThanOrEqual(0.9);
      }
    }
    expect(counts.lanczos3).toBeUndefined();
    expect(counts['bicubic-aa'] / n).toBeCloseTo(0.75, 1);
    expect(counts.area / n).toBeCloseTo(0.25, 1);
    expect(blurred / n).toBeCloseTo(0.25, 1);
  });

  it('always draws rand() three times, so what follows does not depend on the outcome; a single filter without blur is itself', () => {
    const a = mulberry32(5);
    const b = mulberry32(5);
    drawLrSynthesis({ 'bicubic-aa': 1, area: 1 }, { probability: 0.5, sigmaMin: 0.2, sigmaMax: 1 }, a);
    drawLrSynthesis('lanczos3', null, b);
    expect(a()).toBe(b());
    expect(drawLrSynthesis('area', { probability: 0, sigmaMin: 0.2, sigmaMax: 1 }, mulberry32(1))).toEqual({ filter: 'area', blur: 0 });
  });

  it('is reproducible from the seed', () => {
    const draw = (seed: number) => {
      const r = mulberry32(seed);
      return Array.from({ length: 20 }, () =>
        drawLrSynthesis({ 'bicubic-aa': 1, 'bilinear-aa': 1, area: 1, lanczos3: 1 }, { probability: 0.3, sigmaMin: 0.2, sigmaMax: 1 }, r),
      );
    };
    expect(draw(9)).toEqual(draw(9));
    expect(draw(9)).not.toEqual(draw(10));
  });
});

describe('downscale (all filters)', () => {
  it('keeps a constant image constant, borders included', () => {
    for (const filter of FILTERS) {
      for (const f of [2, 4] as const) {
        for (const [w, h] of [
          [4, 4],
          [12, 8],
          [16, 36],
        ] as const) {
          const out = downscale(
            make(w, h, () => [17, 128, 254]),
            f,
            filter,
          );
          expect([out.width, out.height]).toEqual([w / f, h / f]);
          for (let i = 0; i < out.data.length; i += 3) {
            expect([out.data[i], out.data[i + 1], out.data[i + 2]], `${filter} ×${f} ${w}×${h}`).toEqual([17, 128, 254]);
          }
        }
      }
    }
  });

  it('does not modify its input', () => {
    const img = random(16, 16, 11);
    const copy = new Uint8Array(img.data);
    for (const filter of FILTERS) downscale(img, 4, filter);
    expect(img.data).toEqual(copy);
  });

  it('rejects sizes that are not multiples of the factor, bad factors and unknown filters', () => {
    expect(() =>
      downscale(
        make(6, 8, () => [0, 0, 0]),
        4,
        'bilinear-aa',
      ),
    ).toThrow(/multiples of factor 4/);
    expect(() =>
      downscale(
        make(5, 4, () => [0, 0, 0]),
        2,
        'box-gamma',
      ),
    ).toThrow(RangeError);
    expect(() =>
      downscale(
        make(8, 8, () => [0, 0, 0]),
        3 as 2,
        'bicubic-aa',
      ),
    ).toThrow(/factor/);
    expect(() =>
      downscale(
        make(8, 8, () => [0, 0, 0]),
        2,
        'lanczos' as DownscaleFilter,
      ),
    ).toThrow(/filter/);
  });
});

describe('JPEG degradation', () => {
  // A textured image: smooth gradients, hard edges and seeded noise, so every quality loses something. The
  // noise is the same in all three channels (luma): independent chroma noise would mostly be lost to the
  // 4:2:0 subsampling at any quality, flattening the PSNR curve at the top.
  const rand = mulberry32(21);
  const textured = make(64, 48, (x, y) => {
    const n = (rand() - 0.5) * 60;
    const edge = (Math.floor(x / 7) + Math.floor(y / 5)) % 2 === 0 ? 40 : 0;
    return [2 * x + 40 + edge + n, 3 * y + 30 + n, 200 - x - y + edge + n].map((v) => Math.max(0, Math.min(255, Math.round(v))));
  });

  it('keeps the size and changes the pixels', async () => {
    const out = await jpegDegrade(textured, 80);
    expect([out.width, out.height, out.data.length]).toEqual([64, 48, 64 * 48 * 3]);
    expect(out.data).not.toEqual(textured.data);
    expect(textured.data.length).toBe(64 * 48 * 3); // input untouched in size
  });

  it('loses less at higher quality: PSNR increases over the seed list', async () => {
    const scores: number[] = [];
    for (const q of JPEG_QUALITIES) scores.push(psnr(textured, await jpegDegrade(textured, q)));
    for (let i = 1; i < scores.length; i++)
      expect(scores[i], `q ${JPEG_QUALITIES[i]} vs ${JPEG_QUALITIES[i - 1]}`).toBeGreaterThan(scores[i - 1]);
    expect(scores[0]).toBeGreaterThan(20); // q 50 is degraded, not destroyed
  });

  it('is deterministic', async () => {
    expect(await jpegDegrade(textured, 70)).toEqual(await jpegDegrade(textured, 70));
  });

  it('rejects quality 100 citing the article, and anything outside 1..99', async () => {
    await expect(jpegDegrade(textured, 100)).rejects.toThrow(RangeError);
    await expect(jpegDegrade(textured, 100)).rejects.toThrow(/article warns.*quality=100/);
    for (const q of [0, 101, 50.5, Number.NaN])
      await expect(jpegDegrade(textured, q)).rejects.toThrow(/quality: expected an integer in 1\.\.99/);
  });

  it('draws qualities from the seed list, one rand() per draw', () => {
    expect(JPEG_QUALITIES).toEqual([50, 70, 80, 90, 95, 99]);
    expect(Object.isFrozen(JPEG_QUALITIES)).toBe(true);
    expect(drawJpegQuality(() => 0)).toBe(50);
    expect(drawJpegQuality(() => 0.5)).toBe(90);
    expect(drawJpegQuality(() => 0.9999999)).toBe(99);
    const r = mulberry32(5);
    const seen = new Set<number>();
    let calls = 0;
    const counted = () => (calls++, r());
    for (let i = 0; i < 600; i++) seen.add(drawJpegQuality(counted));
    expect(calls).toBe(600);
    expect([...seen].sort((a, b) => a - b)).toEqual([50, 70, 80, 90, 95, 99]);
  });
});
