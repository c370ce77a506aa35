// `srgan upscale` without the CLI: one file in, one file out, through a generator. Colour goes through
// the network tile by tile (tiling.ts); alpha is enlarged separately with bicubic (image-io.ts), since
// it is a coverage mask the network was never trained on; greyscale inputs run as RGB (three equal
// channels, what the network was trained on) and are written back as grey.

import { outputFormat, readForUpscale, upscaleAlpha, writeUpscaled, type WriteOptions } from '../../data/image/image-io.js';
import { upscaleTiled, type TileOptions, type UpscaleModel } from './tiling.js';

export interface UpscaleFileOptions extends Partial<TileOptions>, WriteOptions {
  /** Clock for `ms`, in milliseconds. Default performance.now. */
  now?: () => number;
}

export interface UpscaleFileResult {
  /** Input size, after EXIF orientation. */
  width: number;
  height: number;
  outWidth: number;
  outHeight: number;
  /** Wall time of the whole call (read, inference, write). */
  ms: number;
}

/**
 * Reads `inPath`, upscales it by gen.scale (colour clamped to [0, 1]) and writes `outPath`, whose
 * extension picks the format (image-io.ts writeUpscaled: 16-bit PNG for 16-bit input, grey for grey,
 * RGBA when the input has alpha). Tiling defaults: tiling.ts DEFAULT_TILE_OPTIONS. The output
 * extension is checked before any work. Throws SrganError SRGAN_ERR_DATA for unreadable or unwritable
 * files.
 */
export async function upscaleFile(
  gen: UpscaleModel,
  inPath: string,
  outPath: string,
  opts: UpscaleFileOptions = {},
): Promise<UpscaleFileResult> {
  const { now = () => performance.now(), quality, ...tiling } = opts;
  const t0 = now();
  outputFormat(outPath);
  const input = await readForUpscale(inPath);
  const sr = await upscaleTiled(gen, input.rgb, tiling);
  for (let i = 0; i < sr.data.length; i++) {
    const v = sr.data[i];
    sr.data[i] = v > 0 ? (v < 1 ? v : 1) : 0;
  }
  const { width, height } = input.rgb;
  const alpha = input.alpha === null ? null : upscaleAlpha(input.alpha, width, height, gen.scale);
  await writeUpscaled(outPath, { rgb: sr, alpha, grey: input.grey, bitDepth: input.bitDepth }, quality === undefined ? {} : { quality });
  return { width, height, outWidth: sr.width, outHeight: sr.height, ms: now() - t0 };
}
