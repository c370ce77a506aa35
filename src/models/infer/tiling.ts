// Tiled inference: runs a generator on an image of any size, one overlapping LR tile at a time, so
// memory is bounded by the tile instead of the image.
//
// Layout along each axis (LR pixels; the same rule for x and y):
//  - Tiles are `tile` pixels long (shorter only when the image is), the first flush with the start of
//    the image and the last flush with its end, never padded: a tile at the image edge sees the same
//    zero padding there as an untiled run, so its edge pixels are exact.
//  - Each tile's outer `overlap` pixels on a side facing another tile are context only: their output
//    gets weight 0. With overlap ≥ the receptive-field radius R every output pixel that counts was
//    computed with its full context, so tiled output equals untiled output (up to float rounding).
//  - Beyond that margin, neighbouring tiles cross-fade over at least `blend` pixels with a raised-cosine
//    ramp, so that for networks whose R exceeds the overlap (the deep presets: the theoretical R of the
//    final generator is ~500 px, most of it near-zero influence) the small tile-to-tile differences fade
//    out instead of forming a seam. Neighbours therefore share at least 2·overlap + blend pixels, and
//    the stride is at most tile − 2·overlap − blend; tiles are spread evenly between the two flush ends.
//  - Output = Σ w·tile / Σ w. The weights are products of per-axis weights over a grid of tiles, so the
//    normaliser is the product of per-axis sums and no 2-D weight image is kept.
//
// Memory: one tile's activations at a time (tf.tidy around apply, the result read back and disposed)
// plus the float32 output in JS. A tile runs through gen.infer, which frees each block's intermediates
// when the block ends (apply keeps every intermediate until it returns, for the gradient tape), so per-
// pixel activation memory is ≈21 KB per LR pixel for seed-final-x2 and ≈31 KB for esrgan-x4 (apply:
// ≈270 and ≈320 KB), ≈3 KB for espcn-x2-fast, measured with tf.profile on wasm; the 'auto' tile size
// measures it on a small probe and picks the largest tile that fits a memory budget.
//
// A model that is not a tfjs Generator (an ONNX model run in onnxruntime-node, onnx-model.ts) is a
// TileModel: HWC float tiles in and out. tf.profile cannot see its memory: its 'auto' tile comes from
// the bytes per LR pixel it states (our generators in ONNX Runtime: from the graph's peak of live
// activations, ONNX Runtime freeing each intermediate after its last use, so ~2–16 KB rather than tfjs'
// hundreds), or is the fixed MAX_AUTO_TILE side when it states none (a foreign .onnx file; --tile N
// caps it). docs/export.md, "Running it in srgan".

import * as tf from '@tensorflow/tfjs-core';

import type { FloatImage } from '../../data/image/image-io.js';
import type { RgbImage } from '../../data/image/rgb-image.js';
import type { Generator } from '../archs/network.js';
import { generatorGraph } from '../archs/build.js';
import { traceGraph } from '../archs/graph.js';
import type { GeneratorConfig } from '../../config/presets.js';

export interface TileOptions {
  /** LR side of a tile, or 'auto' (the largest that fits `memoryMiB`, at most MAX_AUTO_TILE). */
  tile: number | 'auto';
  /** LR pixels at each inner tile edge used as context only; ≥ the receptive-field radius for exact output. */
  overlap: number;
  /** Minimum LR width of the cross-fade between neighbouring tiles (0 = hard cut). */
  blend: number;
  /** Activation-memory budget of one tile, MiB, for tile 'auto'. */
  memoryMiB: number;
  /** Called after each tile with (done, total). */
  onTile?: (done: number, total: number) => void;
  /** Checked between tiles: when aborted, upscaleTiled rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Defaults. overlap 16: at least the exact receptive-field radius of every ESPCN layout without the
 * dilated stack (4–6) and of a one-block final generator without dilation (13), and above the 10 px of
 * context Real-ESRGAN's tiled inference gives RRDBNet by default (tile_pad, cropped hard, no blending).
 * The deep presets' theoretical radii (484 and 349) cannot be covered at any useful tile size; for them
 * the default accepts a small error near tile borders and fades it out. blend 8: 16 HR pixels at ×2,
 * wide enough to fade a small offset smoothly, narrow enough to keep the stride. tile 'auto' with
 * 1 GiB: a 128-pixel tile of espcn-x2-fast costs ~50 MiB but one of the deep presets ~500 MiB, so no
 * single number suits both (the wasm heap ends at 4 GiB).
 */
export const DEFAULT_TILE_OPTIONS: Readonly<Omit<TileOptions, 'onTile' | 'signal'>> = Object.freeze({
  tile: 'auto',
  overlap: 16,
  blend: 8,
  memoryMiB: 1024,
});

/**
 * A model the tiler can run that is not a tfjs Generator: `run` takes one LR tile, float RGB HWC in
 * [0, 1] (width·height·3 values), and resolves to its upscaled tile, HWC (width·scale · height·scale · 3).
 * 'auto' tiling uses its bytesPerPixel, or MAX_AUTO_TILE without one (see the header).
 */
export interface TileModel {
  readonly scale: number;
  /** Memory one LR pixel of a tile costs while it runs, bytes, when known: 'auto' tiling fits it to memoryMiB. */
  readonly bytesPerPixel?: number;
  run(input: Float32Array, width: number, height: number): Promise<Float32Array>;
}

/** What upscaleTiled runs: a tfjs Generator (tensors, its memory measured) or a TileModel. */
export type UpscaleModel = Generator | TileModel;

function isGenerator(m: UpscaleModel): m is Generator {
  return typeof (m as Partial<Generator>).apply === 'function';
}

/** Largest tile 'auto' picks: bigger tiles save little overlap and block the event loop for longer. */
export const MAX_AUTO_TILE = 512;

/** Side of the square probe 'auto' measures activation memory on. */
const PROBE = 16;

/** Smallest tile side with a stride of at least `minStride`, given overlap and blend. */
export function minTile(overlap: number, blend: number, minStride = 8): number {
  return 2 * overlap + blend + minStride;
}

/**
 * Tile start offsets along an axis of length n (LR pixels): one tile when n ≤ tile, else the fewest
 * tiles whose neighbours share ≥ 2·overlap + blend pixels, first at 0, last at n − tile, evenly spread.
 */
export function tileStarts(n: number, tile: number, overlap: number, blend: number): number[] {
  if (n <= tile) return [0];
  const stride = tile - 2 * overlap - blend;
  if (stride < 1) {
    throw new RangeError(`tile: ${tile} leaves no stride with overlap ${overlap} and blend ${blend}; need tile > 2·overlap + blend`);
  }
  const gaps = Math.ceil((n - tile) / stride);
  // round(k·span/gaps) steps by at most ceil(span/gaps) ≤ stride, so every pair shares enough.
  return Array.from({ length: gaps + 1 }, (_, k) => Math.round((k * (n - tile)) / gaps));
}

/**
 * The shortest tile length along an axis of length n that needs no more tiles (tileStarts) than length
 * `max` does: with c tiles, c·L − (c − 1)·(2·overlap + blend) ≥ n. For n = 601 and max 512 (overlap 18,
 * blend 0) that is two tiles of 319 instead of two of 512: 1.06× the pixels run instead of 1.7×.
 */
export function balancedTile(n: number, max: number, overlap: number, blend: number): number {
  if (n <= max) return n;
  const shared = 2 * overlap + blend;
  const count = tileStarts(n, max, overlap, blend).length;
  return Math.ceil((n + (count - 1) * shared) / count);
}

/** Raised-cosine ramp at pixel centre c: 0 for c ≤ lo, 1 for c ≥ hi, smooth in between. */
function ramp(c: number, lo: number, hi: number): number {
  if (c <= lo) return 0;
  if (c >= hi) return 1;
  return 0.5 - 0.5 * Math.cos((Math.PI * (c - lo)) / (hi - lo));
}

/**
 * Per-tile weights along one axis, in output (HR) pixels: weights[k][i] is tile k's weight at HR
 * position starts[k]·scale + i. Zero within `overlap` LR pixels of a side facing another tile, a
 * raised-cosine cross-fade over the band where both neighbours' kept parts overlap, 1 elsewhere.
 */
export function axisWeights(starts: readonly number[], len: number, overlap: number, scale: number): Float64Array[] {
  return starts.map((p, k) => {
    const w = new Float64Array(len * scale);
    for (let i = 0; i < w.length; i++) {
      const c = p * scale + i + 0.5;
      // Rising edge: the band from this tile's kept start to the previous tile's kept end.
      const up = k === 0 ? 1 : ramp(c, (p + overlap) * scale, (starts[k - 1] + len - overlap) * scale);
      const down = k === starts.length - 1 ? 1 : 1 - ramp(c, (starts[k + 1] + overlap) * scale, (p + len - overlap) * scale);
      w[i] = up * down;
    }
    return w;
  });
}

function nonNegativeInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new RangeError(`${field}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

const KNOWN_OPTIONS = new Set(['tile', 'overlap', 'blend', 'memoryMiB', 'onTile', 'signal']);

/** Merges `opts` over DEFAULT_TILE_OPTIONS and validates every field (unknown fields are errors). */
export function resolveTileOptions(opts: Partial<TileOptions> = {}): TileOptions {
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key))
      throw new RangeError(`tiling: unknown option ${JSON.stringify(key)}; expected one of ${[...KNOWN_OPTIONS].join(', ')}`);
  }
  const o: TileOptions = { ...DEFAULT_TILE_OPTIONS, ...stripUndefined(opts) };
  nonNegativeInt('overlap', o.overlap);
  nonNegativeInt('blend', o.blend);
  if (o.tile !== 'auto') {
    const t = nonNegativeInt('tile', o.tile);
    if (t <= 2 * o.overlap + o.blend) {
      throw new RangeError(`tile: expected more than 2·overlap + blend = ${2 * o.overlap + o.blend}, got ${t}`);
    }
  }
  if (typeof o.memoryMiB !== 'number' || !(o.memoryMiB > 0)) {
    throw new RangeError(`memoryMiB: expected a positive number, got ${JSON.stringify(o.memoryMiB)}`);
  }
  if (o.onTile !== undefined && typeof o.onTile !== 'function') throw new TypeError(`onTile: expected a function, got ${typeof o.onTile}`);
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Activation bytes per LR pixel of `gen`, measured on a PROBE×PROBE input with tf.profile (peak minus
 * what was allocated before). Leaves no tensors behind.
 */
export async function measureBytesPerPixel(gen: Generator): Promise<number> {
  const before = tf.memory().numBytes;
  const x = tf.zeros([1, PROBE, PROBE, 3]) as tf.Tensor4D;
  try {
    const info = await tf.profile(() => {
      const y = forward(gen, x);
      y.dispose();
    });
    return Math.max(1, info.peakBytes - before - x.size * 4) / (PROBE * PROBE);
  } finally {
    x.dispose();
  }
}

/** The 'auto' tile side: the largest square whose activations fit `memoryMiB`, in [minTile, MAX_AUTO_TILE]. */
export function autoTile(bytesPerPixel: number, memoryMiB: number, overlap: number, blend: number): number {
  const side = Math.floor(Math.sqrt((memoryMiB * 2 ** 20) / bytesPerPixel));
  return Math.max(minTile(overlap, blend), Math.min(MAX_AUTO_TILE, side));
}

/**
 * Upscales `img` (float HWC in [0, 1], or 8-bit RGB) by gen.scale, tile by tile (see the header), with
 * a tfjs Generator or a TileModel. Returns the raw float output, not clamped. Defaults:
 * DEFAULT_TILE_OPTIONS. Every tensor it creates is disposed, also on error; with `signal` aborted it
 * stops between tiles.
 */
export async function upscaleTiled(gen: UpscaleModel, img: FloatImage | RgbImage, opts: Partial<TileOptions> = {}): Promise<FloatImage> {
  const o = resolveTileOptions(opts);
  const src = toFloat(img);
  const { width: W, height: H } = src;
  const s = gen.scale;
  if (!Number.isInteger(s) || s < 1) throw new RangeError(`gen.scale: expected a positive integer, got ${JSON.stringify(s)}`);

  // Tile lengths along x and y. 'auto' finds the largest square that fits, then per axis the shortest
  // tile that needs no more tiles than that square would (balancedTile), so an image a little wider
  // than a tile is not run twice over. An explicit tile is taken as it is.
  let tileX: number;
  let tileY: number;
  if (o.tile === 'auto') {
    let side: number;
    // An image that fits the smallest useful tile runs in one piece without a probe.
    const small = Math.max(W, H) <= minTile(o.overlap, o.blend);
    if (small) side = Math.max(W, H);
    else if (isGenerator(gen)) side = autoTile(await measureBytesPerPixel(gen), o.memoryMiB, o.overlap, o.blend);
    else if (gen.bytesPerPixel !== undefined) side = autoTile(gen.bytesPerPixel, o.memoryMiB, o.overlap, o.blend);
    else side = Math.max(minTile(o.overlap, o.blend), MAX_AUTO_TILE);
    tileX = balancedTile(W, side, o.overlap, o.blend);
    tileY = balancedTile(H, side, o.overlap, o.blend);
  } else {
    tileX = tileY = o.tile;
  }
  const tw = Math.min(tileX, W);
  const th = Math.min(tileY, H);
  const xs = tileStarts(W, tileX, o.overlap, o.blend);
  const ys = tileStarts(H, tileY, o.overlap, o.blend);
  const wx = axisWeights(xs, tw, o.overlap, s);
  const wy = axisWeights(ys, th, o.overlap, s);

  const OW = W * s;
  const OH = H * s;
  const acc = new Float32Array(OW * OH * 3);
  const total = xs.length * ys.length;
  let done = 0;
  for (let j = 0; j < ys.length; j++) {
    for (let i = 0; i < xs.length; i++) {
      o.signal?.throwIfAborted();
      const x0 = xs[i];
      const y0 = ys[j];
      // A fresh buffer per tile: the cpu backend keeps the array it is given instead of copying it.
      const input = new Float32Array(tw * th * 3);
      for (let r = 0; r < th; r++) {
        const from = ((y0 + r) * W + x0) * 3;
        input.set(src.data.subarray(from, from + tw * 3), r * tw * 3);
      }
      let out: Float32Array;
      if (isGenerator(gen)) out = await runGenerator(gen, input, tw, th);
      else {
        out = await gen.run(input, tw, th);
        if (!(out instanceof Float32Array) || out.length !== tw * s * th * s * 3) {
          throw new TypeError(
            `model.run: returned ${out instanceof Float32Array ? out.length : typeof out} values for a ${tw}×${th} tile, expected ${tw * s * th * s * 3} (${tw * s}×${th * s}×3)`,
          );
        }
      }
      const wxi = wx[i];
      const wyj = wy[j];
      const ox0 = x0 * s;
      const oy0 = y0 * s;
      for (let r = 0; r < th * s; r++) {
        const a = wyj[r];
        if (a === 0) continue;
        let d = ((oy0 + r) * OW + ox0) * 3;
        let t = r * tw * s * 3;
        for (let q = 0; q < tw * s; q++, d += 3, t += 3) {
          const wgt = a * wxi[q];
          if (wgt === 0) continue;
          acc[d] = acc[d] + wgt * out[t];
          acc[d + 1] = acc[d + 1] + wgt * out[t + 1];
          acc[d + 2] = acc[d + 2] + wgt * out[t + 2];
        }
      }
      done++;
      o.onTile?.(done, total);
    }
  }

  // Normalise by Σ_i wx_i(X) · Σ_j wy_j(Y). Every sum is positive: at any position the tile whose kept
  // part reaches furthest has a non-zero ramp (checked, since a zero would silently blank pixels).
  const sx = axisSums(xs, wx, OW, s);
  const sy = axisSums(ys, wy, OH, s);
  for (let Y = 0; Y < OH; Y++) {
    for (let X = 0; X < OW; X++) {
      const inv = 1 / (sy[Y] * sx[X]);
      const d = (Y * OW + X) * 3;
      acc[d] = acc[d] * inv;
      acc[d + 1] = acc[d + 1] * inv;
      acc[d + 2] = acc[d + 2] * inv;
    }
  }
  return { width: OW, height: OH, data: acc };
}

/** gen.infer where the generator has it (block intermediates freed early), else gen.apply. */
function forward(gen: Generator, x: tf.Tensor4D): tf.Tensor4D {
  return gen.infer === undefined ? gen.apply(x) : gen.infer(x);
}

/** One tile through a tfjs generator: NHWC in, NHWC out, every tensor disposed. */
async function runGenerator(gen: Generator, input: Float32Array, tw: number, th: number): Promise<Float32Array> {
  const s = gen.scale;
  const y = tf.tidy(() => forward(gen, tf.tensor4d(input, [1, th, tw, 3])));
  try {
    const [n, oh, ow, c] = y.shape;
    if (n !== 1 || oh !== th * s || ow !== tw * s || c !== 3) {
      throw new TypeError(
        `gen.apply: returned shape [${y.shape.join(', ')}] for a ${tw}×${th} tile, expected [1, ${th * s}, ${tw * s}, 3]`,
      );
    }
    return (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
}

function axisSums(starts: readonly number[], weights: readonly Float64Array[], outLen: number, scale: number): Float64Array {
  const sum = new Float64Array(outLen);
  starts.forEach((p, k) => {
    const w = weights[k];
    for (let i = 0; i < w.length; i++) sum[p * scale + i] = sum[p * scale + i] + w[i];
  });
  const zero = sum.findIndex((v) => !(v > 0));
  if (zero >= 0) throw new Error(`tiling: internal error, no tile covers output position ${zero} (starts ${starts.join(', ')})`);
  return sum;
}

function toFloat(img: FloatImage | RgbImage): FloatImage {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new RangeError(`img: width and height must be positive integers, got ${width}×${height}`);
  }
  if (data instanceof Float32Array && data.length === width * height * 3) return { width, height, data };
  if (data instanceof Uint8Array && data.length === width * height * 3) {
    return { width, height, data: Float32Array.from(data, (v) => v / 255) };
  }
  throw new RangeError(
    `img.data: expected a Float32Array or Uint8Array of ${width * height * 3} values (${width}×${height}×3), got ${
      ArrayBuffer.isView(data) ? `${data.constructor.name}(${(data as Uint8Array).length})` : typeof data
    }`,
  );
}

/**
 * Receptive-field radius in LR pixels of the generator `cfg` builds (convs use 'same' zero padding):
 * LR output block x depends on LR input pixels x − R … x + R only. Read from the network's own
 * description (archs/graph.ts): a conv of radius k at s× adds k/s; the total is rounded up. Exact for
 * ESPCN 'plain' (4 + depth); an upper bound by less than one pixel elsewhere.
 */
export function receptiveRadius(cfg: GeneratorConfig, scale: 2 | 4): number {
  return Math.ceil(traceGraph(generatorGraph(cfg, scale), 1, 1).radius - 1e-9);
}
