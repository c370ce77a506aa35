// LR synthesis for training pairs (SEED_SPEC §2.5): the downscale filters the seed's experiments used,
// a bicubic alternative, and the JPEG degradation of the final model. Pure functions over 8-bit RGB
// (patches.ts's RgbImage); inputs are never modified.

import sharp from 'sharp';

import { SrganError } from '../errors.js';
import { checkImage, type RgbImage } from './patches.js';
import { cubicDownTaps, renormalisedTaps, resampleSeparable, toByte } from './resample.js';

export type DownscaleFactor = 2 | 4;
export type DownscaleFilter = 'bilinear-aa' | 'box-gamma' | 'bicubic-aa';

/**
 * Taps of PyTorch's `interpolate(mode='bilinear', antialias=True)` at integer factors (SEED_SPEC §2.5):
 * the triangle filter stretched by the factor, sampled at the source pixel centres. Both tables are
 * centred on the centre of the factor-wide source block.
 */
export const BILINEAR_AA_TAPS: Readonly<Record<DownscaleFactor, readonly number[]>> = Object.freeze({
  2: Object.freeze([1, 3, 3, 1].map((t) => t / 8)),
  4: Object.freeze([1, 3, 5, 7, 7, 5, 3, 1].map((t) => t / 32)),
});

/** The early experiments' gamma (SEED_SPEC §2.5: `(avgpool_f(x^2.2))^(1/2.2)`). */
export const BOX_GAMMA = 2.2;

/**
 * Downscales by 2 or 4; width and height must be multiples of the factor. Filters:
 * - 'bilinear-aa': the later experiments' and final model's filter, taps [1,3,3,1]/8 (×2) or
 *   [1,3,5,7,7,5,3,1]/32 (×4), border taps renormalised; ×2 is byte-identical to downscaleAA2.
 * - 'box-gamma': the early experiments' filter, the mean of each f×f block in linear light
 *   (decode v^2.2, average, encode ^(1/2.2)); the seed works on floats, we round once to uint8.
 * - 'bicubic-aa': MATLAB imresize's antialiased bicubic (Keys a = −0.5 stretched by f, mirrored borders).
 * Every filter rounds once, at the end.
 */
export function downscale(img: RgbImage, factor: DownscaleFactor, filter: DownscaleFilter): RgbImage {
  checkImage(img);
  if (factor !== 2 && factor !== 4) throw new RangeError(`factor: expected 2 or 4, got ${String(factor)}`);
  const { width: w, height: h } = img;
  if (w % factor !== 0 || h % factor !== 0) {
    throw new RangeError(`downscale: width and height must be multiples of factor ${factor}, got ${w}×${h}`);
  }
  switch (filter) {
    case 'bilinear-aa': {
      const taps = BILINEAR_AA_TAPS[factor];
      return resampleSeparable(img, renormalisedTaps(w, factor, taps), renormalisedTaps(h, factor, taps));
    }
    case 'bicubic-aa':
      return resampleSeparable(img, cubicDownTaps(w, factor), cubicDownTaps(h, factor));
    case 'box-gamma':
      return boxGamma(img, factor);
    default:
      throw new RangeError(`filter: expected 'bilinear-aa', 'box-gamma' or 'bicubic-aa', got ${String(filter)}`);
  }
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
          r += DECODE[data[s]!]!;
          g += DECODE[data[s + 1]!]!;
          b += DECODE[data[s + 2]!]!;
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

/** The JPEG qualities the final model drew from, one per batch (SEED_SPEC §2.5). */
export const JPEG_QUALITIES: readonly number[] = Object.freeze([50, 70, 80, 90, 95, 99]);

/** One quality from JPEG_QUALITIES, uniformly; draws rand() once. Call once per batch. */
export function drawJpegQuality(rand: () => number): number {
  const i = Math.min(JPEG_QUALITIES.length - 1, Math.floor(rand() * JPEG_QUALITIES.length));
  return JPEG_QUALITIES[i]!;
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
    .raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    // toColourspace('srgb') + removeAlpha() should always give the input's size in 3 channels.
    throw new SrganError(
      'SRGAN_ERR_DATA',
      `jpegDegrade: decoded ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`,
    );
  }
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}
