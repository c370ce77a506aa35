// Pure image functions for the patch-loader worker and the monitor's preview strip.
//
// Every image here is 8-bit RGB, row-major HWC, with no padding: data.length === width * height * 3.
// Functions never modify their input; they return fresh buffers.

import sharp, { type OutputInfo } from 'sharp';

import { SrganError } from '../../util/errors.js';
import { cubicUpTaps, renormalisedTaps, resampleSeparable } from './resample.js';
import { checkImage, type RgbImage } from './rgb-image.js';

/** Which of the 8 square symmetries `applyAugment` performs: flips first, then a transpose. */
export interface AugmentOps {
  hflip: boolean;
  vflip: boolean;
  /** Swap x and y; together with the flips this gives all four 90° rotations. */
  transpose: boolean;
}

export interface PairOptions {
  /** Side of the square HR patch, in pixels; must be even. */
  patch: number;
  /** Only ×2 is supported: the LR image is made with `downscaleAA2`. */
  scale: 2;
}

function checkScale(scale: number, name = 'scale'): void {
  if (!Number.isInteger(scale) || scale < 1) {
    throw new RangeError(`${name}: expected a positive integer, got ${scale}`);
  }
}

/**
 * Decodes an image file to 8-bit sRGB: EXIF orientation applied, alpha dropped, grey replicated to
 * three channels. Any decoding failure becomes SrganError SRGAN_ERR_DATA naming the file.
 */
export async function loadRgb(path: string): Promise<RgbImage> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(path).rotate().toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new SrganError('SRGAN_ERR_DATA', `cannot decode image ${path}: ${msg}`, { cause: err });
  }
  const { data, info } = out;
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    // toColourspace('srgb') + removeAlpha() should always give 3 channels; say so loudly if not.
    throw new SrganError(
      'SRGAN_ERR_DATA',
      `cannot decode image ${path}: expected 3 channels of 8 bits, got ${info.channels} channels, ${data.length} bytes`,
    );
  }
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Copies the width×height rectangle whose top-left corner is (x, y). */
export function crop(img: RgbImage, x: number, y: number, width: number, height: number): RgbImage {
  checkImage(img);
  if (
    !Number.isInteger(x) ||
    !Number.isInteger(y) ||
    !Number.isInteger(width) ||
    !Number.isInteger(height) ||
    x < 0 ||
    y < 0 ||
    width <= 0 ||
    height <= 0 ||
    x + width > img.width ||
    y + height > img.height
  ) {
    throw new RangeError(`crop: rectangle ${width}×${height} at (${x}, ${y}) is outside the ${img.width}×${img.height} image`);
  }
  const out = new Uint8Array(width * height * 3);
  const rowBytes = width * 3;
  for (let r = 0; r < height; r++) {
    const src = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(src, src + rowBytes), r * rowBytes);
  }
  return { width, height, data: out };
}

/**
 * A uniformly placed size×size crop. Draws rand() twice (x, then y), so a seeded rand gives
 * reproducible crops.
 */
export function randomCrop(img: RgbImage, size: number, rand: () => number): RgbImage {
  checkImage(img);
  if (!Number.isInteger(size) || size <= 0 || size > img.width || size > img.height) {
    throw new RangeError(`size: expected an integer in 1..${Math.min(img.width, img.height)}, got ${size}`);
  }
  const x = Math.min(img.width - size, Math.floor(rand() * (img.width - size + 1)));
  const y = Math.min(img.height - size, Math.floor(rand() * (img.height - size + 1)));
  return crop(img, x, y, size, size);
}

/**
 * Applies flips then an optional transpose. Output pixel (x, y) reads input (sx, sy) where, before the
 * flips, (sx, sy) = transpose ? (y, x) : (x, y); hflip mirrors sx, vflip mirrors sy.
 */
export function applyAugment(img: RgbImage, ops: AugmentOps): RgbImage {
  checkImage(img);
  const { width: w, height: h, data } = img;
  const ow = ops.transpose ? h : w;
  const oh = ops.transpose ? w : h;
  const out = new Uint8Array(data.length);
  let o = 0;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx = ops.transpose ? y : x;
      let sy = ops.transpose ? x : y;
      if (ops.hflip) sx = w - 1 - sx;
      if (ops.vflip) sy = h - 1 - sy;
      const s = (sy * w + sx) * 3;
      out[o] = data[s]!;
      out[o + 1] = data[s + 1]!;
      out[o + 2] = data[s + 2]!;
      o += 3;
    }
  }
  return { width: ow, height: oh, data: out };
}

/**
 * One of the 8 flips/90° rotations, each with probability 1/8. Draws rand() three times
 * (hflip, vflip, transpose; each true when rand() < 0.5).
 */
export function augment(img: RgbImage, rand: () => number): RgbImage {
  const ops: AugmentOps = { hflip: rand() < 0.5, vflip: rand() < 0.5, transpose: rand() < 0.5 };
  return applyAugment(img, ops);
}

// Taps [1,3,3,1]/8 of the antialiased bilinear ×2 (docs/seed.md §2.5). Output sample o sits between source
// samples 2o and 2o+1 and reads 2o-1..2o+2; taps that fall outside are dropped and the rest renormalised
// (renormalisedTaps), which equals conv(zero-padded x) / conv(zero-padded ones).
const AA2_TAPS = [1, 3, 3, 1] as const;

/**
 * ×2 antialiased bilinear downscale (PyTorch `interpolate(bilinear, antialias=True)` for factor 2):
 * separable taps [1,3,3,1]/8 with border renormalisation, rounded to uint8. Width and height must be even.
 */
export function downscaleAA2(img: RgbImage): RgbImage {
  checkImage(img);
  const { width: w, height: h } = img;
  if (w % 2 !== 0 || h % 2 !== 0) {
    throw new RangeError(`downscaleAA2: width and height must be even, got ${w}×${h}`);
  }
  return resampleSeparable(img, renormalisedTaps(w, 2, AA2_TAPS), renormalisedTaps(h, 2, AA2_TAPS));
}

/**
 * A training pair: `hr` is a random patch×patch crop with a random flip/rotation, `lr` is
 * downscaleAA2(hr). Draws rand() five times (crop x, y, then the three augment draws).
 */
export function makePair(img: RgbImage, opts: PairOptions, rand: () => number): { hr: RgbImage; lr: RgbImage } {
  if (opts.scale !== 2) throw new RangeError(`scale: only 2 is supported, got ${String(opts.scale)}`);
  if (!Number.isInteger(opts.patch) || opts.patch < 2 || opts.patch % 2 !== 0) {
    throw new RangeError(`patch: expected an even integer >= 2, got ${opts.patch}`);
  }
  const hr = augment(randomCrop(img, opts.patch, rand), rand);
  return { hr, lr: downscaleAA2(hr) };
}

/**
 * Centre-aligned bicubic enlargement by an integer factor: output pixel j samples input coordinate
 * (j + 0.5)/scale − 0.5 with the Keys kernel (a = −0.5) and clamp-to-edge. Written out rather than using
 * sharp, whose enlargement is shifted by half an output pixel (docs/degradations.md, "Why not sharp for
 * enlargement").
 */
export function upscaleBicubic(img: RgbImage, scale: number): RgbImage {
  checkImage(img);
  checkScale(scale);
  return resampleSeparable(img, cubicUpTaps(img.width, scale), cubicUpTaps(img.height, scale));
}

/** Nearest-neighbour enlargement by an integer factor (each pixel becomes a scale×scale block). */
export function upscaleNearest(img: RgbImage, scale: number): RgbImage {
  checkImage(img);
  checkScale(scale);
  const { width: w, height: h, data } = img;
  const ow = w * scale;
  const out = new Uint8Array(ow * h * scale * 3);
  // Build each output row once, then copy it scale-1 more times.
  const rowBytes = ow * 3;
  for (let y = 0; y < h; y++) {
    const first = y * scale * rowBytes;
    let o = first;
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3;
      for (let k = 0; k < scale; k++) {
        out[o++] = data[s]!;
        out[o++] = data[s + 1]!;
        out[o++] = data[s + 2]!;
      }
    }
    for (let k = 1; k < scale; k++) out.copyWithin(first + k * rowBytes, first, first + rowBytes);
  }
  return { width: ow, height: h * scale, data: out };
}

/**
 * Places images side by side, top-aligned, with `gap` columns between them; the gap and the space under
 * shorter images are filled with grey level `fill` (default 0, black).
 */
export function hstack(images: readonly RgbImage[], gap: number, fill = 0): RgbImage {
  if (images.length === 0) throw new RangeError('images: expected at least one image, got 0');
  if (!Number.isInteger(gap) || gap < 0) throw new RangeError(`gap: expected a non-negative integer, got ${gap}`);
  if (!Number.isInteger(fill) || fill < 0 || fill > 255) throw new RangeError(`fill: expected 0..255, got ${fill}`);
  images.forEach((im, i) => checkImage(im, `images[${i}]`));
  const width = images.reduce((s, im) => s + im.width, 0) + gap * (images.length - 1);
  const height = Math.max(...images.map((im) => im.height));
  const out = new Uint8Array(width * height * 3).fill(fill);
  let x0 = 0;
  for (const im of images) {
    const rowBytes = im.width * 3;
    for (let y = 0; y < im.height; y++) {
      out.set(im.data.subarray(y * rowBytes, (y + 1) * rowBytes), (y * width + x0) * 3);
    }
    x0 += im.width + gap;
  }
  return { width, height, data: out };
}

/** Captions of previewStrip's panels, left to right (stored with each preview, db.ts `previews.panels`). */
export const PREVIEW_PANELS: readonly string[] = Object.freeze(['low-res input', 'bicubic', 'model output', 'original']);
/** Columns between previewStrip's panels, and their grey level. */
export const PREVIEW_GAP = 4;
export const PREVIEW_FILL = 32;

/**
 * The monitor's preview strip (PREVIEW_PANELS): the LR enlarged by nearest neighbour (to show its
 * pixels as they are), the centre-aligned bicubic enlargement of the same LR (the baseline srgan eval
 * scores, so the strip and the eval table show one bicubic), the model's output, and the HR; side by
 * side, PREVIEW_GAP grey columns apart. `model` and `pair.hr` must be `scale` times `pair.lr`'s size.
 */
export function previewStrip(pair: { hr: RgbImage; lr: RgbImage }, model: RgbImage, scale: number): RgbImage {
  checkImage(pair.lr, 'pair.lr');
  checkImage(pair.hr, 'pair.hr');
  checkImage(model, 'model');
  checkScale(scale);
  const w = pair.lr.width * scale;
  const h = pair.lr.height * scale;
  for (const [name, im] of [
    ['pair.hr', pair.hr],
    ['model', model],
  ] as const) {
    if (im.width !== w || im.height !== h) {
      throw new RangeError(
        `${name}: expected ${w}×${h} (pair.lr ${pair.lr.width}×${pair.lr.height} ×${scale}), got ${im.width}×${im.height}`,
      );
    }
  }
  return hstack([upscaleNearest(pair.lr, scale), upscaleBicubic(pair.lr, scale), model, pair.hr], PREVIEW_GAP, PREVIEW_FILL);
}

/** Encodes an RGB image as PNG (sharp, default compression). */
export async function encodePng(img: RgbImage): Promise<Buffer> {
  checkImage(img);
  const input = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return sharp(input, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toBuffer();
}
