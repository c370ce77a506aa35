// `srgan prepare` worker (a piscina task entry): one task is one source file. It reads and hashes the
// file, decodes it to upright 8-bit sRGB, cuts the patch plan's crops from the photo and its downscaled
// levels, and encodes them as PNG. It answers with the PNGs packed into one ArrayBuffer that is
// transferred, not copied, plus the crop boxes; the main thread gives the ids and writes the files, so ids
// stay dense and in source order whatever the number of workers. Every failure of one file becomes a
// skip result with a reason code: a task never throws for a bad image.
//
// Nothing here loads better-sqlite3 (main thread only).

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';

import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import sharp, { type Metadata } from 'sharp';

import { cameraMatches, cameraName, readExifIfd0 } from '../image/exif.js';
import type { PatchParams, SkipReason } from './manifest.js';
import { deriveSeed, mulberry32 } from '../../util/prng.js';

export interface PrepareWorkerData {
  params: PatchParams;
  /** Refuse images with more pixels than this (decompression bombs), from the header alone. */
  maxPixels: number;
  /** zlib level 0..9 of the PNG patches. */
  pngLevel: number;
}

export interface PrepareTask {
  /** Absolute path of the source file. */
  path: string;
  /** Content hashes of committed sources of the same byte size: a match is a duplicate, not decoded. */
  knownHashes: string[];
}

/** Seconds spent in each stage of one source (summed by the main thread for the benchmark). */
export interface StageTimes {
  read: number;
  decode: number;
  resize: number;
  encode: number;
}

interface ResultBase {
  /** sha256 of the file, hex; null when it could not be read or was empty. */
  hash: string | null;
  width?: number;
  height?: number;
  camera: string | null;
  predownscaled: boolean;
  /** Pixels decoded from the source (0 when it was not decoded). */
  pixels: number;
  times: StageTimes;
}

export interface PreparedPatch {
  level: number;
  x: number;
  y: number;
  size: number;
  /** Where its PNG lies in `png`. */
  offset: number;
  length: number;
}

export interface PrepareDone extends ResultBase {
  status: 'done';
  patches: PreparedPatch[];
  /** All PNGs of the source, back to back (transferred). */
  png: ArrayBuffer;
}

export interface PrepareSkipped extends ResultBase {
  status: 'skipped';
  reason: SkipReason;
  message: string;
}

/** The content matches a committed source (knownHashes): nothing was decoded. */
export interface PrepareDuplicate extends ResultBase {
  status: 'duplicate';
}

export type PrepareResult = PrepareDone | PrepareSkipped | PrepareDuplicate;

/** Formats accepted as photos; anything else sharp can read (SVG, PDF, …) is `unsupported`. */
const PHOTO_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif', 'avif']);
const UNREADABLE_CODES: ReadonlySet<string> = new Set(['EACCES', 'EPERM', 'ENOENT', 'EISDIR', 'EIO', 'ELOOP', 'ENXIO', 'EBUSY']);

/** An 8-bit RGB raster, HWC, tightly packed. */
interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

const config = workerData as PrepareWorkerData;

export default async function prepareTask(task: PrepareTask): Promise<PrepareResult> {
  const times: StageTimes = { read: 0, decode: 0, resize: 0, encode: 0 };
  const base: ResultBase = { hash: null, camera: null, predownscaled: false, pixels: 0, times };
  const skip = (reason: SkipReason, message: string): PrepareSkipped => ({ ...base, status: 'skipped', reason, message });
  try {
    return await processSource(task, base, skip);
  } catch (err) {
    // A bug or an exhausted resource, not a property of the file: `failed` is retried by the next run.
    return skip('failed', `unexpected error: ${(err as Error).message ?? String(err)}`);
  }
}

async function processSource(
  task: PrepareTask,
  base: ResultBase,
  skip: (reason: SkipReason, message: string) => PrepareSkipped,
): Promise<PrepareResult> {
  const { params, maxPixels } = config;
  const times = base.times;
  let t = performance.now();
  let buf: Buffer;
  try {
    buf = await fsp.readFile(task.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (UNREADABLE_CODES.has(code)) return skip('unreadable', `cannot read: ${(err as Error).message}`);
    throw err;
  }
  if (buf.length === 0) return skip('empty', 'the file is empty (0 bytes)');
  base.hash = createHash('sha256').update(buf).digest('hex');
  times.read = seconds(t);
  if (task.knownHashes.includes(base.hash)) return { ...base, status: 'duplicate' };

  t = performance.now();
  let meta: Metadata;
  try {
    meta = await sharp(buf, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (err) {
    return skip('not-an-image', `not an image sharp can read: ${(err as Error).message}`);
  }
  if (!meta.format || !PHOTO_FORMATS.has(meta.format)) {
    return skip('unsupported', `${meta.format ?? 'unknown'} is not a photo format srgan prepares (jpeg, png, webp, tiff, gif, avif)`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.pageHeight ?? meta.height ?? 0;
  // Refused from the header alone: a decompression bomb must not be decoded to find out.
  if (w0 * h0 > maxPixels) {
    return skip('too-large', `${w0}×${h0} = ${w0 * h0} pixels is over the limit of ${maxPixels} (--max-pixels)`);
  }
  const exif = meta.exif ? readExifIfd0(meta.exif) : null;
  base.camera = cameraName(exif);

  let img: Raw;
  try {
    img = await decodeWithMessage(buf, params.alpha, maxPixels);
  } catch (err) {
    const message = (err as Error).message;
    if (/exceeds pixel limit/i.test(message)) return skip('too-large', `over the limit of ${maxPixels} pixels (--max-pixels): ${message}`);
    // The prebuilt libvips reads AVIF (AV1) but not HEVC-coded HEIF (iPhone .heic saved as .avif, say).
    if (meta.format === 'heif' && meta.compression !== 'av1')
      return skip('unsupported', `HEIF with ${meta.compression ?? 'unknown'} compression cannot be decoded: ${message}`);
    return skip('corrupt', `cannot decode: ${message}`);
  }
  base.width = img.width;
  base.height = img.height;
  base.pixels = img.width * img.height;
  times.decode = seconds(t);

  const P = params.patch;
  if (params.predownscale || cameraMatches(exif, params.predownscaleModels)) {
    t = performance.now();
    img = await shrink(img, 2, params.linear);
    times.resize += seconds(t);
    base.predownscaled = true;
  }
  if (Math.floor(img.width / params.levels[0]) < P || Math.floor(img.height / params.levels[0]) < P) {
    const what = base.predownscaled
      ? `${base.width}×${base.height} (${img.width}×${img.height} after the ×2 pre-downscale)`
      : `${img.width}×${img.height}`;
    return skip('too-small', `${what} is smaller than one ${P} px patch at level ${params.levels[0]}`);
  }

  const sourceSeed = deriveSeed(params.seed, parseInt(base.hash.slice(0, 8), 16) | 0);
  const pngs: Buffer[] = [];
  const patches: PreparedPatch[] = [];
  let offset = 0;
  // Each level is made from the coarsest level already made whose factor divides its own (1, 2, 4, 8:
  // three ×2 steps): 2–3× cheaper than three resizes of the full photo, and as well antialiased.
  const made = new Map<number, Raw>([[1, img]]);
  for (const f of params.levels) {
    const lw = Math.floor(img.width / f);
    const lh = Math.floor(img.height / f);
    if (lw < P || lh < P) continue;
    t = performance.now();
    const from = Math.max(...[...made.keys()].filter((g) => f % g === 0));
    const level = from === f ? img : await shrink(made.get(from)!, f / from, params.linear);
    made.set(f, level);
    times.resize += seconds(t);
    t = performance.now();
    const rand = mulberry32(deriveSeed(sourceSeed, f));
    for (let k = 0; k < patchesAtLevel(lw, lh, P, params.perLevel); k++) {
      const x = Math.floor(rand() * (lw - P + 1));
      const y = Math.floor(rand() * (lh - P + 1));
      const png = await encodePng(crop(level, x, y, P), P, config.pngLevel);
      pngs.push(png);
      patches.push({ level: f, x, y, size: P, offset, length: png.length });
      offset += png.length;
    }
    times.encode += seconds(t);
  }
  // One fresh ArrayBuffer for all of them: sharp's output buffers are external memory that cannot be
  // transferred, and one memcpy here is cheaper than a structured clone of each.
  const packed = new Uint8Array(offset);
  for (let i = 0; i < pngs.length; i++) packed.set(pngs[i], patches[i].offset);
  const result: PrepareDone = { ...base, status: 'done', patches, png: packed.buffer };
  return move({ [transferableSymbol]: [packed.buffer], [valueSymbol]: result }) as unknown as PrepareResult;
}

/**
 * How many patches a level gives: `perLevel`, but no more than twice the level's area in patches
 * (rounded up), so a level barely larger than a patch does not give perLevel near-copies of itself.
 */
export function patchesAtLevel(width: number, height: number, patch: number, perLevel: number): number {
  if (width < patch || height < patch) return 0;
  return Math.min(perLevel, Math.ceil((2 * width * height) / (patch * patch)));
}

/**
 * decode(), tried a second time when it fails with libvips's "Unknown error": libvips keeps one error
 * buffer per process, so while another worker's operation clears it, a failure can lose its message
 * (seen on truncated JPEGs). Whether it fails does not depend on the buffer, only what it says.
 */
async function decodeWithMessage(buf: Buffer, alpha: 'drop' | 'flatten', maxPixels: number): Promise<Raw> {
  try {
    return await decode(buf, alpha, maxPixels);
  } catch (err) {
    if (!/unknown error/i.test((err as Error).message)) throw err;
    return await decode(buf, alpha, maxPixels);
  }
}

/**
 * Decodes to upright 8-bit sRGB: EXIF orientation applied; grey, palette, CMYK, 16-bit and embedded ICC
 * profiles converted to sRGB (sharp colour-manages with the embedded profile, or its built-in CMYK one);
 * alpha dropped (like Pillow's convert('RGB')) or composited on white.
 */
async function decode(buf: Buffer, alpha: 'drop' | 'flatten', maxPixels: number): Promise<Raw> {
  let s = sharp(buf, { failOn: 'error', limitInputPixels: maxPixels }).autoOrient();
  s = alpha === 'flatten' ? s.flatten({ background: { r: 255, g: 255, b: 255 } }) : s.removeAlpha();
  const { data, info } = await s.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new Error(
      `decoded to ${info.channels} channels, ${data.length} bytes for ${info.width}×${info.height}; expected 3 channels of 8 bits`,
    );
  }
  return { data, width: info.width, height: info.height };
}

/**
 * Downscales by exactly `f`: the largest top-left region whose sides are multiples of f (dropping at most
 * f − 1 columns and rows) is resized to 1/f, so level pixel (x, y) covers pixels [x·f, (x+1)·f) of the
 * input. Since floor(floor(W/g)/h) = floor(W/(g·h)), a level made in steps covers the same photo region
 * as one made directly. libvips resize with the lanczos3 kernel (for factors over 2 it first box-shrinks
 * to within 2× of the target). fastShrinkOnLoad is off (and the input is raw anyway): JPEG
 * shrink-on-load would make a level depend on the source's file format. `linear` resizes in scRGB
 * (linear light), then back to 8-bit sRGB.
 */
async function shrink(img: Raw, f: number, linear: boolean): Promise<Raw> {
  const width = Math.floor(img.width / f);
  const height = Math.floor(img.height / f);
  let s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (width * f !== img.width || height * f !== img.height) s = s.extract({ left: 0, top: 0, width: width * f, height: height * f });
  if (linear) s = s.pipelineColourspace('scrgb');
  s = s.resize(width, height, { kernel: 'lanczos3', fit: 'fill', fastShrinkOnLoad: false });
  if (linear) s = s.toColourspace('srgb');
  const { data, info } = await s.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new Error(`resize gave ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`);
  }
  return { data, width, height };
}

function crop(img: Raw, x: number, y: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size * size * 3);
  const row = size * 3;
  for (let r = 0; r < size; r++) {
    const from = ((y + r) * img.width + x) * 3;
    img.data.copy(out, r * row, from, from + row);
  }
  return out;
}

/** PNG with adaptive row filters (as Pillow and libpng's defaults do; about half the size of unfiltered). */
function encodePng(rgb: Buffer, size: number, level: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: level, adaptiveFiltering: level > 0 })
    .toBuffer();
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}
