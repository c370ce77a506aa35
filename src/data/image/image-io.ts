// Reading and writing the user's own images for `srgan upscale`: unlike the training loader
// (patches.ts loadRgb, 8-bit RGB only), this keeps what the user will expect to get back: 16-bit
// precision, the alpha channel, greyscale-ness. Orientation and colour space are normalised on the way
// in (EXIF orientation applied, embedded ICC profile converted to sRGB), so the network always sees
// upright sRGB, and the output carries neither tag.
//
// Pixels travel as float32 in [0, 1]: 8-bit samples are divided by 255, 16-bit ones by 65535 (never
// truncated to 8 bits first).

import { extname } from 'node:path';

import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';

import { SrganError } from '../../util/errors.js';
import { checkImage, type RgbImage } from './rgb-image.js';
import { cubicUpTaps } from './resample.js';

/** A float RGB image, HWC, tightly packed (data.length === width·height·3), nominally in [0, 1]. */
export interface FloatImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** An image as `srgan upscale` handles it: colour and alpha apart, plus what the output must mirror. */
export interface UpscaleImage {
  /** sRGB, upright; greyscale inputs are replicated to three equal channels. */
  rgb: FloatImage;
  /** Straight (not premultiplied) alpha, H×W in [0, 1]; null when the input has none. */
  alpha: Float32Array | null;
  /** The input was stored as greyscale (one channel, or grey + alpha). */
  grey: boolean;
  /** 16 when the input had more than 8 bits per sample, else 8. */
  bitDepth: 8 | 16;
}

/** What the output extension selects. */
export type OutputFormat = 'png' | 'jpeg' | 'webp';

const FORMATS: Readonly<Record<string, OutputFormat>> = Object.freeze({
  '.png': 'png',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.webp': 'webp',
});

/** Lossy quality for JPEG and WebP output: high, because the point of upscaling is detail. */
export const DEFAULT_QUALITY = 95;

/** Throws RangeError unless `img` is a well-formed FloatImage. */
export function checkFloatImage(img: FloatImage, name = 'img'): void {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new RangeError(`${name}: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Float32Array) || data.length !== width * height * 3) {
    throw new RangeError(
      `${name}.data: expected a Float32Array of ${width * height * 3} values (${width}×${height}×3), got ${
        data instanceof Float32Array ? data.length : typeof data
      }`,
    );
  }
}

/** 8-bit RGB → float in [0, 1] (v / 255). */
export function toFloatImage(img: RgbImage): FloatImage {
  checkImage(img);
  const data = new Float32Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = img.data[i] / 255;
  return { width: img.width, height: img.height, data };
}

/** Float → 8-bit RGB: clamp to [0, 1], × 255, round half up (BasicSR's tensor2img; what metrics measure). */
export function toRgbImage(img: FloatImage): RgbImage {
  checkFloatImage(img);
  const data = new Uint8Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = quantise(img.data[i], 255);
  return { width: img.width, height: img.height, data };
}

/** Clamps v to [0, 1] and rounds v·max to an integer (NaN → 0). */
function quantise(v: number, max: number): number {
  if (!(v > 0)) return 0;
  if (v >= 1) return max;
  return Math.round(v * max);
}

/**
 * The output format `path`'s extension selects: .png, .jpg/.jpeg or .webp (case-insensitive).
 * Throws RangeError naming the path otherwise; call it before any expensive work.
 */
export function outputFormat(path: string): OutputFormat {
  const ext = extname(path).toLowerCase();
  const format = FORMATS[ext];
  if (format === undefined) {
    throw new RangeError(
      `outPath: unsupported extension ${JSON.stringify(ext)} in ${JSON.stringify(path)}; expected .png, .jpg, .jpeg or .webp`,
    );
  }
  return format;
}

/**
 * Decodes an image file for upscaling: EXIF orientation applied, an embedded ICC profile converted to
 * sRGB, alpha split off, 16-bit samples kept at 16-bit precision. Throws SrganError SRGAN_ERR_DATA
 * naming the file when it cannot be read or decoded.
 */
export async function readForUpscale(path: string): Promise<UpscaleImage> {
  const fail = (err: unknown): never => {
    const msg = err instanceof Error ? err.message : String(err);
    throw new SrganError('SRGAN_ERR_DATA', `cannot decode image ${path}: ${msg}`, { cause: err });
  };
  let meta: Metadata;
  try {
    meta = await sharp(path).metadata();
  } catch (err) {
    return fail(err);
  }
  // Metadata describes the stored image (before rotation): channels 1 = grey, 2 = grey + alpha.
  const grey = meta.channels === 1 || meta.channels === 2;
  const bitDepth: 8 | 16 = meta.depth === 'uchar' || meta.depth === 'char' ? 8 : 16;
  let pipeline: Sharp = sharp(path).rotate();
  // sharp converts an embedded profile to sRGB by itself for 8-bit input, but not for 16-bit input
  // (checked with sharp 0.35: a 16-bit Display-P3 PNG comes back with its P3 values); withIccProfile
  // makes the conversion explicit for both. Greyscale profiles are left alone: they cannot be the
  // source of an RGB transform, and grey stays grey.
  if (meta.icc !== undefined && !grey) pipeline = pipeline.withIccProfile('srgb');
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline
      .toColourspace(bitDepth === 16 ? 'rgb16' : 'srgb')
      .raw({ depth: bitDepth === 16 ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    return fail(err);
  }
  const { width, height, channels } = info;
  const samples: ArrayLike<number> = bitDepth === 16 ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : data;
  if ((channels !== 3 && channels !== 4) || samples.length !== width * height * channels) {
    // rgb16 / srgb output always has 3 channels plus alpha; say so loudly if sharp ever disagrees.
    return fail(new Error(`expected 3 or 4 channels, got ${channels} channels and ${samples.length} samples for ${width}×${height}`));
  }
  const max = bitDepth === 16 ? 65535 : 255;
  const rgb = new Float32Array(width * height * 3);
  const alpha = channels === 4 ? new Float32Array(width * height) : null;
  for (let i = 0, s = 0; i < width * height; i++, s += channels) {
    rgb[3 * i] = samples[s] / max;
    rgb[3 * i + 1] = samples[s + 1] / max;
    rgb[3 * i + 2] = samples[s + 2] / max;
    if (alpha !== null) alpha[i] = samples[s + 3] / max;
  }
  return { rgb: { width, height, data: rgb }, alpha, grey, bitDepth };
}

export interface WriteOptions {
  /** JPEG / WebP quality, 1..100. Default DEFAULT_QUALITY (95). Ignored for PNG. */
  quality?: number;
}

/**
 * Writes an upscaled image, format by extension (outputFormat):
 * - PNG: 16 bits per sample when bitDepth is 16, else 8; greyscale when `grey` (the mean of R, G, B:
 *   for a grey input the channels differ only by the network's noise, and the mean is its unbiased
 *   estimate); with an alpha channel when alpha is given.
 * - JPEG: 8-bit, greyscale when `grey`; JPEG has no alpha, so the image is composited over white (the
 *   usual flatten background).
 * - WebP: 8-bit RGB (WebP has no greyscale mode), alpha kept.
 * Values are clamped to [0, 1]. Throws RangeError for a bad extension or image, SrganError
 * SRGAN_ERR_DATA naming the file when writing fails.
 */
export async function writeUpscaled(path: string, img: UpscaleImage, opts: WriteOptions = {}): Promise<void> {
  const format = outputFormat(path);
  const { rgb, grey, bitDepth } = img;
  checkFloatImage(rgb, 'rgb');
  const { width, height } = rgb;
  const n = width * height;
  let alpha = img.alpha;
  if (alpha !== null && (!(alpha instanceof Float32Array) || alpha.length !== n)) {
    throw new RangeError(
      `alpha: expected a Float32Array of ${n} values (${width}×${height}) or null, got ${alpha instanceof Float32Array ? alpha.length : typeof alpha}`,
    );
  }
  if (bitDepth !== 8 && bitDepth !== 16) throw new RangeError(`bitDepth: expected 8 or 16, got ${JSON.stringify(bitDepth)}`);
  if (typeof grey !== 'boolean') throw new RangeError(`grey: expected a boolean, got ${JSON.stringify(grey)}`);
  const quality = opts.quality ?? DEFAULT_QUALITY;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`quality: expected an integer in 1..100, got ${JSON.stringify(opts.quality)}`);
  }

  let src = rgb.data;
  if (format === 'jpeg' && alpha !== null) {
    src = new Float32Array(src.length);
    for (let i = 0; i < n; i++) {
      const a = Math.min(1, Math.max(0, alpha[i]));
      for (let c = 0; c < 3; c++) src[3 * i + c] = rgb.data[3 * i + c] * a + (1 - a);
    }
    alpha = null;
  }
  const asGrey = grey && format !== 'webp';
  const deep = bitDepth === 16 && format === 'png';
  const colour = asGrey ? 1 : 3;
  const channels = (colour + (alpha === null ? 0 : 1)) as 1 | 2 | 3 | 4;
  const max = deep ? 65535 : 255;
  const out = deep ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  for (let i = 0, o = 0; i < n; i++) {
    if (asGrey) {
      out[o++] = quantise((src[3 * i] + src[3 * i + 1] + src[3 * i + 2]) / 3, max);
    } else {
      out[o++] = quantise(src[3 * i], max);
      out[o++] = quantise(src[3 * i + 1], max);
      out[o++] = quantise(src[3 * i + 2], max);
    }
    if (alpha !== null) out[o++] = quantise(alpha[i], max);
  }

  // sharp infers 8 or 16 bits from the typed array; the interpretation picks grey vs RGB output.
  let pipeline = sharp(out, { raw: { width, height, channels } }).toColourspace(
    asGrey ? (deep ? 'grey16' : 'b-w') : deep ? 'rgb16' : 'srgb',
  );
  switch (format) {
    case 'png':
      pipeline = pipeline.png();
      break;
    case 'jpeg':
      pipeline = pipeline.jpeg({ quality });
      break;
    case 'webp':
      pipeline = pipeline.webp({ quality });
      break;
  }
  try {
    await pipeline.toFile(path);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new SrganError('SRGAN_ERR_DATA', `cannot write image ${path}: ${msg}`, { cause: err });
  }
}

/**
 * Upscales an alpha plane (width×height, row-major) by an integer factor with the same centre-aligned
 * Keys bicubic as upscaleBicubic (clamp-to-edge), in float, clamped to [0, 1]: alpha is a coverage
 * mask, not image content, so it does not go through the network.
 */
export function upscaleAlpha(alpha: Float32Array, width: number, height: number, scale: number): Float32Array {
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new RangeError(`upscaleAlpha: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(alpha instanceof Float32Array) || alpha.length !== width * height) {
    throw new RangeError(
      `alpha: expected a Float32Array of ${width * height} values (${width}×${height}), got ${alpha instanceof Float32Array ? alpha.length : typeof alpha}`,
    );
  }
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`scale: expected a positive integer, got ${JSON.stringify(scale)}`);
  const xt = cubicUpTaps(width, scale);
  const yt = cubicUpTaps(height, scale);
  const ow = width * scale;
  const oh = height * scale;
  // Rows first, in float64, then columns; clamp once at the end (Keys overshoots near edges).
  const tmp = new Float64Array(height * ow);
  for (let y = 0; y < height; y++) {
    for (let j = 0; j < ow; j++) {
      let s = 0;
      for (let k = 0; k < xt.taps; k++) s += xt.wt[j * xt.taps + k] * alpha[y * width + xt.idx[j * xt.taps + k]];
      tmp[y * ow + j] = s;
    }
  }
  const out = new Float32Array(ow * oh);
  for (let i = 0; i < oh; i++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let k = 0; k < yt.taps; k++) s += yt.wt[i * yt.taps + k] * tmp[yt.idx[i * yt.taps + k] * ow + x];
      out[i * ow + x] = s < 0 ? 0 : s > 1 ? 1 : s;
    }
  }
  return out;
}
