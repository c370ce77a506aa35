// Tiled inference (src/models/infer/tiling.ts): with overlap ≥ the receptive-field radius, tiled output equals
// one untiled forward pass; with less it does not (so the equality test can fail); tile layout,
// weights, the receptive-field formula against an impulse probe, and tensor hygiene.

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { FloatImage } from '../../src/data/image/image-io.js';
import { mulberry32 } from '../../src/util/prng.js';
import { initBackend } from '../../src/models/backend/init.js';
import type { Generator } from '../../src/models/archs/network.js';
import { PRESETS, type GeneratorConfig } from '../../src/config/presets.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import {
  autoTile,
  axisWeights,
  balancedTile,
  MAX_AUTO_TILE,
  measureBytesPerPixel,
  receptiveRadius,
  tileStarts,
  upscaleTiled,
  type TileModel,
} from '../../src/models/infer/tiling.js';

const FAST = PRESETS['espcn-x2-fast'].generator;
// The final generator shrunk to one block of 8 channels; without the dilated blocks its radius (13)
// fits a tile small enough for the test, with them it is 34.
const FINAL_SMALL: GeneratorConfig = { kind: 'final', channels: 8, blocks: 1, dilatedBlocks: false };

// A shallow net with a wide field: six convs, radius 19, whose far influence stays measurable.
const DILATED: GeneratorConfig = { kind: 'espcn', channels: 8, layout: 'dilated', skip: false, depth: 0 };

let fast: Generator;
let finalSmall: Generator;

beforeAll(async () => {
  await initBackend('wasm');
  fast = buildGenerator(FAST, 2, 7);
  finalSmall = buildGenerator(FINAL_SMALL, 2, 7);
});

afterAll(() => {
  fast.dispose();
  finalSmall.dispose();
});

function randomImage(width: number, height: number, seed: number): FloatImage {
  const rand = mulberry32(seed);
  // Smooth structure plus noise, so neighbouring tiles see different content.
  const data = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        data[(y * width + x) * 3 + c] = 0.5 + 0.3 * Math.sin((x + 2 * c) / 5) * Math.cos(y / 7) + 0.2 * (rand() - 0.5);
      }
    }
  }
  return { width, height, data };
}

/** One forward pass over the whole image. */
function untiled(gen: Generator, img: FloatImage): Float32Array {
  const y = tf.tidy(() => gen.apply(tf.tensor4d(img.data, [1, img.height, img.width, 3])));
  const out = y.dataSync() as Float32Array;
  y.dispose();
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('layout', () => {
  it('tileStarts: flush with both ends, neighbours share ≥ 2·overlap + blend, one tile when it fits', () => {
    for (const [n, tile, overlap, blend] of [
      [70, 24, 8, 4],
      [53, 24, 8, 4],
      [1000, 128, 16, 8],
      [129, 128, 16, 8],
      [25, 24, 0, 0],
    ] as const) {
      const s = tileStarts(n, tile, overlap, blend);
      expect(s[0]).toBe(0);
      expect(s.at(-1)).toBe(n - tile);
      for (let k = 1; k < s.length; k++) {
        expect(s[k] - s[k - 1]).toBeGreaterThan(0);
        expect(s[k - 1] + tile - s[k]).toBeGreaterThanOrEqual(2 * overlap + blend);
      }
    }
    expect(tileStarts(24, 24, 8, 4)).toEqual([0]);
    expect(tileStarts(10, 24, 8, 4)).toEqual([0]);
    expect(() => tileStarts(70, 20, 8, 4)).toThrow(RangeError);
  });

  it('axisWeights: zero within the overlap of inner edges, a partition of unity elsewhere', () => {
    // Stride ≥ 2·blend, so each tile's two cross-fade bands stay apart and the weights sum to exactly 1
    // (with narrower strides three tiles can overlap and upscaleTiled's normalisation takes over).
    const n = 70;
    const tile = 32;
    const overlap = 8;
    const scale = 2;
    const starts = tileStarts(n, tile, overlap, 4);
    const w = axisWeights(starts, tile, overlap, scale);
    const sum = new Float64Array(n * scale);
    starts.forEach((p, k) => {
      w[k].forEach((v, i) => {
        sum[p * scale + i] = sum[p * scale + i] + v;
        const lr = Math.floor(i / scale);
        if (k > 0 && lr < overlap) expect(v).toBe(0);
        if (k < starts.length - 1 && lr >= tile - overlap) expect(v).toBe(0);
      });
    });
    sum.forEach((v) => expect(v).toBeCloseTo(1, 12));
    // The flush ends keep full weight at the image border.
    expect(w[0][0]).toBe(1);
    expect(w.at(-1)!.at(-1)).toBe(1);
  });

  it('balancedTile: the shortest tile with as few tiles as the longest, never longer', () => {
    for (const [n, max, overlap, blend] of [
      [601, 512, 18, 0],
      [1203, 512, 32, 8],
      [831, 241, 32, 8],
      [100, 100, 4, 0],
      [101, 100, 4, 0],
      [5000, 90, 16, 8],
    ]) {
      const l = balancedTile(n, max, overlap, blend);
      const count = tileStarts(n, max, overlap, blend).length;
      expect(l).toBeLessThanOrEqual(max);
      expect(tileStarts(n, l, overlap, blend)).toHaveLength(count);
      // One pixel shorter would need another tile (or leave no stride).
      if (l > 2 * overlap + blend + 1 && l < n) expect(tileStarts(n, l - 1, overlap, blend).length).toBeGreaterThan(count);
    }
    expect(balancedTile(601, 512, 18, 0)).toBe(319);
    expect(balancedTile(80, 512, 18, 0)).toBe(80);
  });

  it('autoTile: the largest square within the budget, clamped', () => {
    // 1 GiB at 1 KiB per pixel: 1024² pixels, capped at MAX_AUTO_TILE.
    expect(autoTile(1024, 1024, 16, 8)).toBe(MAX_AUTO_TILE);
    // 1 GiB at 256 KiB per pixel: 4096 pixels → 64.
    expect(autoTile(256 * 1024, 1024, 16, 8)).toBe(64);
    // Never below 2·overlap + blend + 8, whatever the budget.
    expect(autoTile(1e12, 1, 16, 8)).toBe(48);
  });
});

describe('receptiveRadius', () => {
  /** Max LR distance from an impulse at the centre to an output block it changes. */
  function probeRadius(gen: Generator, side: number): number {
    const c = (side - 1) / 2;
    const base = randomImage(side, side, 3);
    const bumped = { ...base, data: base.data.slice() };
    for (let ch = 0; ch < 3; ch++) bumped.data[(c * side + c) * 3 + ch] += 0.5;
    const a = untiled(gen, base);
    const b = untiled(gen, bumped);
    const s = gen.scale;
    let r = 0;
    for (let Y = 0; Y < side * s; Y++) {
      for (let X = 0; X < side * s; X++) {
        const i = (Y * side * s + X) * 3;
        if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) {
          r = Math.max(r, Math.abs(Math.floor(X / s) - c), Math.abs(Math.floor(Y / s) - c));
        }
      }
    }
    return r;
  }

  it.each([
    ['espcn-x2-fast (plain + skip, depth 4)', FAST, 2, 8],
    ['espcn plain ×2, depth 0', { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 }, 2, 4],
    ['espcn dilated ×2 with depth 2', { kind: 'espcn', channels: 8, layout: 'dilated', skip: false, depth: 2 }, 2, 21],
    ['espcn conv-after-upsample ×2', { kind: 'espcn', channels: 8, layout: 'conv-after-upsample', skip: false, depth: 0 }, 2, 5],
    ['espcn x2x2 ×4', { kind: 'espcn', channels: 8, layout: 'x2x2', skip: false, depth: 0 }, 4, 6],
    ['espcn dilated ×2', DILATED, 2, 19],
    ['final 1 block, no dilation', FINAL_SMALL, 2, 13],
    ['rrdbnet 1 block ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4, 19],
  ] as Array<[string, GeneratorConfig, 2 | 4, number]>)('%s: formula ≥ impulse probe, within 1', (_name, cfg, scale, want) => {
    const r = receptiveRadius(cfg, scale);
    expect(r).toBe(want);
    const gen = buildGenerator(cfg, scale, 5);
    try {
      const probed = probeRadius(gen, 2 * r + 7);
      expect(probed).toBeLessThanOrEqual(r);
      // In a deep randomly initialised net the far influence (through every layer, each shrinking it by
      // ~1/√3 and the residual branches by 0.2) drops below float32 resolution of the output, so the
      // probe sees less than the true radius; only the upper bound is checked there.
      if (cfg.kind !== 'rrdbnet') expect(probed).toBeGreaterThanOrEqual(r - 1);
    } finally {
      gen.dispose();
    }
  });

  it('knows the presets', () => {
    expect(receptiveRadius(PRESETS['seed-final-x2'].generator, 2)).toBe(4 + 16 * 30);
    expect(receptiveRadius(PRESETS['esrgan-x4'].generator, 4)).toBe(4 + 23 * 15);
  });
});

describe('upscaleTiled', () => {
  it('equals the untiled output when overlap ≥ the receptive field (espcn-x2-fast, odd sizes)', async () => {
    const img = randomImage(70, 53, 1);
    const want = untiled(fast, img);
    const start = tf.memory().numTensors;
    let total = 0;
    const got = await upscaleTiled(fast, img, { tile: 32, overlap: 10, blend: 4, onTile: (_d, t) => (total = t) });
    expect(tf.memory().numTensors).toBe(start);
    expect(total).toBeGreaterThan(4);
    expect(got.width).toBe(140);
    expect(got.height).toBe(106);
    expect(maxAbsDiff(got.data, want)).toBeLessThan(1e-4);
    // The bound is tight: overlap = radius (8) is still exact, with a hard cut too.
    const tight = await upscaleTiled(fast, img, { tile: 27, overlap: 8, blend: 0 });
    expect(maxAbsDiff(tight.data, want)).toBeLessThan(1e-4);
  });

  it('differs when the overlap is smaller than the receptive field', async () => {
    const img = randomImage(70, 53, 1);
    const want = untiled(fast, img);
    const got = await upscaleTiled(fast, img, { tile: 24, overlap: 1, blend: 4 });
    // A deeper random net's far influence is small (see the probe above), but far above float noise
    // (the exact cases differ by < 1e-6).
    expect(maxAbsDiff(got.data, want)).toBeGreaterThan(3e-4);
  });

  it('equals the untiled output for a wider receptive field (final generator, radius 13)', async () => {
    const img = randomImage(71, 54, 2);
    const want = untiled(finalSmall, img);
    const start = tf.memory().numTensors;
    const got = await upscaleTiled(finalSmall, img, { tile: 40, overlap: 13, blend: 6 });
    expect(tf.memory().numTensors).toBe(start);
    expect(maxAbsDiff(got.data, want)).toBeLessThan(1e-4);
    // Far influence of a random deep net is tiny (see the receptiveRadius probe), so cut hard.
    const short = await upscaleTiled(finalSmall, img, { tile: 40, overlap: 1, blend: 6 });
    expect(maxAbsDiff(short.data, want)).toBeGreaterThan(1e-3);
  });

  it('equals the untiled output for the dilated ESPCN (radius 19) and differs with overlap 9', async () => {
    const gen = buildGenerator(DILATED, 2, 9);
    try {
      const img = randomImage(90, 61, 3);
      const want = untiled(gen, img);
      const start = tf.memory().numTensors;
      const got = await upscaleTiled(gen, img, { tile: 50, overlap: 19, blend: 4 });
      expect(tf.memory().numTensors).toBe(start);
      expect(maxAbsDiff(got.data, want)).toBeLessThan(1e-4);
      const short = await upscaleTiled(gen, img, { tile: 50, overlap: 9, blend: 4 });
      expect(maxAbsDiff(short.data, want)).toBeGreaterThan(1e-4);
    } finally {
      gen.dispose();
    }
  });

  it('runs an image smaller than a tile in one piece, and takes 8-bit RGB input', async () => {
    const img = randomImage(19, 11, 4);
    const rgb = { width: 19, height: 11, data: Uint8Array.from(img.data, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)) };
    const calls: number[] = [];
    const got = await upscaleTiled(fast, rgb, { tile: 24, overlap: 8, blend: 4, onTile: (d, t) => calls.push(d, t) });
    expect(calls).toEqual([1, 1]);
    const asFloat = { width: 19, height: 11, data: Float32Array.from(rgb.data, (v) => v / 255) };
    expect(maxAbsDiff(got.data, untiled(fast, asFloat))).toBeLessThan(1e-5);
  });

  it("'auto' measures memory and picks the largest tile that fits; several tiles equal the untiled output", async () => {
    const start = tf.memory().numTensors;
    const bpp = await measureBytesPerPixel(fast);
    expect(tf.memory().numTensors).toBe(start);
    // espcn-x2-fast, C = 32: a few hundred bytes to a few KiB of activations per LR pixel.
    expect(bpp).toBeGreaterThan(100);
    expect(bpp).toBeLessThan(16 * 1024);
    // A budget of 56² pixels at the measured rate: 'auto' must pick a 56 px tile (default overlap 16,
    // blend 8: stride 16), so this 130×100 image takes 6 × 4 tiles.
    const memoryMiB = (bpp * 56 * 56 + 0.5) / 2 ** 20;
    expect(autoTile(bpp, memoryMiB, 16, 8)).toBe(56);
    const img = randomImage(130, 100, 5);
    const tiles: number[] = [];
    const got = await upscaleTiled(fast, img, { memoryMiB, onTile: (_d, t) => tiles.push(t) });
    expect(tf.memory().numTensors).toBe(start);
    expect(tiles).toHaveLength(tileStarts(130, 56, 16, 8).length * tileStarts(100, 56, 16, 8).length);
    expect(tiles.length).toBe(24);
    expect([got.width, got.height]).toEqual([260, 200]);
    // Overlap 16 ≥ radius 8: every seam is exact (float rounding of the weighted sum aside).
    expect(maxAbsDiff(got.data, untiled(fast, img))).toBeLessThan(1e-5);
    // With the default budget the same image fits one tile.
    const one: number[] = [];
    await upscaleTiled(fast, img, { onTile: (_d, t) => one.push(t) });
    expect(one).toEqual([1]);
  });

  it("'auto' sizes a TileModel's tiles by the bytes per pixel it states, else takes MAX_AUTO_TILE", async () => {
    // Nearest ×2 in plain JS: a model outside tfjs.
    const calls: [number, number][] = [];
    const nearest = (bytesPerPixel?: number): TileModel => ({
      scale: 2,
      ...(bytesPerPixel === undefined ? {} : { bytesPerPixel }),
      run: (x, w, h) => {
        calls.push([w, h]);
        const y = new Float32Array(4 * w * h * 3);
        for (let r = 0; r < 2 * h; r++)
          for (let q = 0; q < 2 * w; q++) for (let c = 0; c < 3; c++) y[(r * 2 * w + q) * 3 + c] = x[((r >> 1) * w + (q >> 1)) * 3 + c];
        return Promise.resolve(y);
      },
    });
    const img = randomImage(200, 100, 7);
    // 1 MiB at 256 B per pixel: 64² pixels.
    const sized = await upscaleTiled(nearest(256), img, { memoryMiB: 1, overlap: 4, blend: 0 });
    // As many tiles as 64² ones would take (4 × 2), each as short as that count allows (balancedTile).
    expect(calls).toHaveLength(tileStarts(200, 64, 4, 0).length * tileStarts(100, 64, 4, 0).length);
    expect(new Set(calls.map(([w, h]) => `${w}×${h}`))).toEqual(new Set([`${balancedTile(200, 64, 4, 0)}×${balancedTile(100, 64, 4, 0)}`]));
    expect([balancedTile(200, 64, 4, 0), balancedTile(100, 64, 4, 0)]).toEqual([56, 54]);
    calls.length = 0;
    const whole = await upscaleTiled(nearest(), img, { memoryMiB: 1, overlap: 4, blend: 0 });
    expect(calls).toEqual([[200, 100]]);
    expect(maxAbsDiff(sized.data, whole.data)).toBeLessThan(1e-6);
  });

  it('stops between tiles when aborted, leaving no tensors', async () => {
    const img = randomImage(70, 53, 6);
    const ac = new AbortController();
    const start = tf.memory().numTensors;
    const run = upscaleTiled(fast, img, {
      tile: 24,
      overlap: 8,
      blend: 4,
      signal: ac.signal,
      onTile: (d) => d === 2 && ac.abort(new Error('stop')),
    });
    await expect(run).rejects.toThrow('stop');
    expect(tf.memory().numTensors).toBe(start);
  });

  it('validates options, naming the field', async () => {
    const img = randomImage(30, 30, 7);
    await expect(upscaleTiled(fast, img, { tile: 20, overlap: 8, blend: 4 })).rejects.toThrow(/tile.*2·overlap \+ blend = 20/);
    await expect(upscaleTiled(fast, img, { overlap: -1 })).rejects.toThrow(/overlap/);
    await expect(upscaleTiled(fast, img, { blend: 1.5 })).rejects.toThrow(/blend/);
    await expect(upscaleTiled(fast, img, { memoryMiB: 0 })).rejects.toThrow(/memoryMiB/);
    await expect(upscaleTiled(fast, img, { tiles: 32 } as never)).rejects.toThrow(/unknown option "tiles"/);
    await expect(upscaleTiled(fast, { width: 3, height: 2, data: new Float32Array(5) })).rejects.toThrow(/img\.data/);
  });
});
