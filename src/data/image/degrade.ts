// LR synthesis for training pairs (docs/seed.md §2.5): the downscale filters the seed's experiments used,
// a bicubic alternative, and the JPEG degradation of the final model. Pure functions over 8-bit RGB
// (rgb-image.ts's RgbImage); inputs are never modified.

import sharp from 'sharp';

import { SrganError } from '../../util/errors.js';
import { DOWNSCALE_FILTERS, MAX_BLUR, type DownscaleFilter, type LrBlurSetting, type LrFilterSetting } from '../../config/lr-synthesis.js';
import { checkImage, type RgbImage } from './rgb-image.js';
import {
  composeTaps,
  cubicDownTaps,
  gaussianTaps,
  lanczos3DownTaps,
  renormalisedTaps,
  resampleSeparable,
  toByte,
  type AxisTaps,
} from './resample.js';

export type DownscaleFactor = 2 | 4;

/**
 * Taps of PyTorch's `interpolate(mode='bilinear', antialias=True)` at integer factors (docs/seed.md §2.5):
 * the triangle filter stretched by the factor, sampled at the source pixel centres. Both tables are
 * centred on the centre of the factor-wide source block.
 */
export const BILINEAR_AA_TAPS: Readonly<Record<DownscaleFactor, readonly number[]>> = Object.freeze({
  2: Object.freeze([1, 3, 3, 1].map((t) => t / 8)),
  4: Object.freeze([1, 3, 5, 7, 7, 5, 3, 1].map((t) => t / 32)),
});

/** The early experiments' gamma (docs/seed.md §2.5: `(avgpool_f(x^2.2))^(1/2.2)`). */
export const BOX_GAMMA = 2.2;

/**
 * Downscales by 2 or 4; width and height must be multiples of the factor. Filters (docs/degradations.md):
 * - 'bicubic-aa': MATLAB imresize's antialiased bicubic (Keys a = −0.5 stretched by f, mirrored borders),
 *   the standard SR benchmark protocol's LR.
 * - 'bilinear-aa': the seed's filter, taps [1,3,3,1]/8 (×2) or [1,3,5,7,7,5,3,1]/32 (×4), border taps
 *   renormalised; ×2 is byte-identical to downscaleAA2.
 * - 'area': the mean of each f×f block (OpenCV INTER_AREA, Pillow BOX at integer factors).
 * - 'lanczos3': MATLAB imresize's antialiased lanczos3 (mirrored borders).
 * - 'box-gamma': the seed's early filter, the mean of each f×f block in linear light (decode v^2.2,
 *   average, encode ^(1/2.2)).
 * `blur` > 0 first applies a Gaussian blur of that standard deviation (in HR pixels, mirrored borders);
 * the blur and a linear filter are composed into one tap table, so every filter rounds once, at the end.
 */
export function downscale(img: RgbImage, factor: DownscaleFactor, filter: DownscaleFilter, blur = 0): RgbImage {
  checkImage(img);
  if (factor !== 2 && factor !== 4) throw new RangeError(`factor: expected 2 or 4, got ${String(factor)}`);
  const { width: w, height: h } = img;
  if (w % factor !== 0 || h % factor !== 0) {
    throw new RangeError(`downscale: width and height must be multiples of factor ${factor}, got ${w}×${h}`);
  }
  if (!(typeof blur === 'number' && Number.isFinite(blur) && blur >= 0 && blur <= MAX_BLUR)) {
    throw new RangeError(`blur: expected a standard deviation in 0..${MAX_BLUR} pixels, got ${String(blur)}`);
  }
  if (filter === 'box-gamma') {
    if (blur > 0) throw new RangeError("blur: not available with 'box-gamma' (it averages in linear light)");
    return boxGamma(img, factor);
  }
  const taps = LINEAR_TAPS[filter];
  if (!taps) throw new RangeError(`filter: expected one of ${DOWNSCALE_FILTERS.map((f) => `'${f}'`).join(', ')}, got ${String(filter)}`);
  const axis = (n: number): AxisTaps => (blur > 0 ? composeTaps(taps(n, factor), gaussianTaps(n, blur)) : taps(n, factor));
  return resampleSeparable(img, axis(w), axis(h));
}

const LINEAR_TAPS: Readonly<Partial<Record<DownscaleFilter, (n: number, factor: DownscaleFactor) => AxisTaps>>> = Object.freeze({
  'bicubic-aa': cubicDownTaps,
  'bilinear-aa': (n: number, f: DownscaleFactor) => renormalisedTaps(n, f, BILINEAR_AA_TAPS[f]),
  area: (n: number, f: number) => renormalisedTaps(n, f, new Array<number>(f).fill(1 / f)),
  lanczos3: lanczos3DownTaps,
});

/** One LR synthesis: a Gaussian blur (0 = none) and then a downscale filter. */
export interface LrSynthesis {
  filter: DownscaleFilter;
  /** Standard deviation of the Gaussian blur before downscaling, in HR pixels; 0 = no blur. */
  blur: number;
}

/** Name of an LR synthesis as the CLI takes it: the filter, or `blurS+FILTER` (e.g. `blur0.8+bicubic-aa`). */
export function lrSynthesisName(s: LrSynthesis): string {
  return s.blur > 0 ? `blur${s.blur}+${s.filter}` : s.filter;
}

/** Parses lrSynthesisName's form; throws RangeError naming the value and the accepted forms. */
export function parseLrSynthesis(name: string): LrSynthesis {
  const m = /^(?:blur(\d+(?:\.\d+)?)\+)?([a-z0-9-]+)$/.exec(String(name));
  const filter = m?.[2] as DownscaleFilter | undefined;
  const blur = m?.[1] === undefined ? 0 : Number(m[1]);
  if (!m || !filter || !DOWNSCALE_FILTERS.includes(filter) || !(blur >= 0 && blur <= MAX_BLUR) || (blur > 0 && filter === 'box-gamma')) {
    throw new RangeError(
      `LR filter: expected one of ${DOWNSCALE_FILTERS.join(', ')}, optionally after a Gaussian blur written blurSIGMA+FILTER ` +
        `(SIGMA in 0..${MAX_BLUR}, e.g. blur0.8+bicubic-aa; not with box-gamma), got ${JSON.stringify(name)}`,
    );
  }
  return { filter, blur };
}

/**
 * Draws one patch's LR synthesis. Always draws rand() three times (filter, blur or not, σ), so the
 * stream after it does not depend on the outcome; with a single filter and no blur it is that filter.
 */
export function drawLrSynthesis(filter: LrFilterSetting, blur: LrBlurSetting | null | undefined, rand: () => number): LrSynthesis {
  const u = rand();
  const b = rand();
  const s = rand();
  let chosen: DownscaleFilter;
  if (typeof filter === 'string') {
    chosen = filter;
  } else {
    const entries = Object.entries(filter).filter(([, w]) => w > 0) as [DownscaleFilter, number][];
    const total = entries.reduce((a, [, w]) => a + w, 0);
    if (entries.length === 0 || !(total > 0))
      throw new RangeError(`lrFilter: a mix needs at least one positive weight, got ${JSON.stringify(filter)}`);
    let x = u * total;
    chosen = entries[entries.length - 1][0];
    for (const [f, w] of entries) {
      if (x < w) {
        chosen = f;
        break;
      }
      x -= w;
    }
  }
  const sigma =
    blur && blur.probability > 0 && b < blur.probability && chosen !== 'box-gamma'
      ? blur.sigmaMin + s * (blur.sigmaMax - blur.sigmaMin)
      : 0;
  // Two decimals: the value a user could type back (lrSynthesisName), and no false precision.
  return { filter: chosen, blur: Math.round(sigma * 100) / 100 };
}

// byte → linear light, (v/255)^2.2; computed once.
const DECODE = Float64Array.from({ length: 256 }, (_, v) => Math.pow(v / 255, BOX_GAMMA));

function boxGamma(img: RgbImage, f: number): RgbImage {
  const { width: w, height: h, data } = img;
  const ow = w / f;
  const oh = h / f;
  const out = new Uint8Array(ow * oh * 3);
  const inv = 1 / (f * f);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dy = 0; dy < f; dy++) {
        let s = ((oy * f + dy) * w + ox * f) * 3;
        for (let dx = 0; dx < f; dx++, s += 3) {
          r += DECODE[data[s]];
          g += DECODE[data[s + 1]];
          b += DECODE[data[s + 2]];
        }
      }
      const t = (oy * ow + ox) * 3;
      out[t] = encodeGamma(r * inv);
      out[t + 1] = encodeGamma(g * inv);
      out[t + 2] = encodeGamma(b * inv);
    }
  }
  return { width: ow, height: oh, data: out };
}

function encodeGamma(linear: number): number {
  return toByte(255 * Math.pow(linear, 1 / BOX_GAMMA));
}

/** The JPEG qualities the final model drew from, one per batch (docs/seed.md §2.5). */
export const JPEG_QUALITIES: readonly number[] = Object.freeze([50, 70, 80, 90, 95, 99]);

/** One quality from JPEG_QUALITIES, uniformly; draws rand() once. Call once per batch. */
export function drawJpegQuality(rand: () => number): number {
  const i = Math.min(JPEG_QUALITIES.length - 1, Math.floor(rand() * JPEG_QUALITIES.length));
  return JPEG_QUALITIES[i];
}

/**
 * JPEG round trip through sharp (libjpeg-turbo): encode at `quality` with 4:2:0 chroma, decode back to
 * 8-bit RGB. Quality must be an integer in 1..99. This stands in for the seed's DiffJPEG: close, not
 * bit-identical (real encoders round coefficients to integers, clamp tables to >= 1, and upsample chroma
 * smoothly rather than by nearest neighbour).
 */
export async function jpegDegrade(img: RgbImage, quality: number): Promise<RgbImage> {
  checkImage(img);
  if (quality === 100) {
    throw new RangeError(
      'quality: 100 is not allowed; the article warns never to pass quality=100, because its quantisation factor ' +
        '(200 − 2q)/100 is 0 there and DiffJPEG divides by zero. Use at most 99',
    );
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 99) {
    throw new RangeError(`quality: expected an integer in 1..99, got ${quality}`);
  }
  const { width, height } = img;
  const input = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const jpeg = await sharp(input, { raw: { width, height, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
  const { data, info } = await sharp(jpeg)
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    // toColourspace('srgb') + removeAlpha() should always give the input's size in 3 channels.
    throw new SrganError(
      'SRGAN_ERR_DATA',
      `jpegDegrade: decoded ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`,
    );
  }
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}
