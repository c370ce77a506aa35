// Benchmark evaluation the way SR papers report it (BasicSR's test pipeline): each HR image is cropped
// to a multiple of the scale from the top-left (BasicSR's mod_crop), its LR made with MATLAB-style
// antialiased bicubic (degrade.ts 'bicubic-aa'; `lr` may name another synthesis, to measure how a
// model copes with LR made another way), and the model's output (clamped to [0, 1] and rounded
// to 8 bits, like tensor2img) and a plain bicubic enlargement are scored against the HR with PSNR-Y and
// SSIM-Y after cropping `border` pixels (quality.ts). Means are over images: the mean of per-image
// scores, as the papers' tables are.

import { downscale, type LrSynthesis } from '../../data/image/degrade.js';
import { toRgbImage } from '../../data/image/image-io.js';
import { crop, loadRgb, upscaleBicubic } from '../../data/image/patches.js';
import { psnrY, ssimY, SSIM_WINDOW } from '../../data/image/quality.js';
import { SrganError } from '../../util/errors.js';
import { upscaleTiled, type TileOptions, type UpscaleModel } from './tiling.js';

export interface EvaluateOptions extends Partial<TileOptions> {
  /** Upscale factor; must equal gen.scale. */
  scale: 2 | 4;
  /** Pixels cropped from each side before measuring. Default: the scale (the papers' convention). */
  border?: number;
  /** How the LR inputs are made. Default: MATLAB-style antialiased bicubic, the standard protocol. */
  lr?: LrSynthesis;
}

export interface Score {
  /** PSNR of the Y channel, dB (+Infinity for a perfect match). */
  psnr: number;
  /** SSIM of the Y channel. */
  ssim: number;
}

export interface EvaluateRow {
  file: string;
  /** HR size after cropping to a multiple of the scale. */
  width: number;
  height: number;
  model: Score | null;
  bicubic: Score;
}

export interface EvaluateResult {
  scale: 2 | 4;
  border: number;
  /** The LR synthesis the scores were measured with. */
  lr: LrSynthesis;
  /** Means over the images; model is null when no generator was given. */
  model: Score | null;
  bicubic: Score;
  /**
   * model.psnr − bicubic.psnr, dB: what the network adds over plain bicubic on the same LR (equal to the
   * mean of the per-image gains); null when no generator was given.
   */
  gain: number | null;
  rows: EvaluateRow[];
}

/**
 * Scores `gen` (or only the bicubic baseline when gen is null) on the HR images `files`; see the
 * header for the protocol. Throws RangeError for bad options, SrganError SRGAN_ERR_DATA naming the file
 * for an unreadable image or one too small to measure (after cropping the border it must be at least
 * 11×11, SSIM's window). Tiling options go to upscaleTiled.
 */
export async function evaluate(gen: UpscaleModel | null, files: readonly string[], opts: EvaluateOptions): Promise<EvaluateResult> {
  const { scale, border = opts.scale, lr: how = { filter: 'bicubic-aa', blur: 0 }, ...tiling } = opts;
  if (scale !== 2 && scale !== 4) throw new RangeError(`scale: expected 2 or 4, got ${JSON.stringify(scale)}`);
  if (!Number.isInteger(border) || border < 0)
    throw new RangeError(`border: expected a non-negative integer, got ${JSON.stringify(border)}`);
  if (gen !== null && gen.scale !== scale) throw new RangeError(`scale: ${scale} does not match the generator's scale ${gen.scale}`);
  if (!Array.isArray(files) || files.length === 0) throw new RangeError('files: expected at least one image file, got none');

  const rows: EvaluateRow[] = [];
  for (const file of files as readonly string[]) {
    // Array.isArray narrowed it to any[]
    const full = await loadRgb(file);
    const width = full.width - (full.width % scale);
    const height = full.height - (full.height % scale);
    const minSide = SSIM_WINDOW + 2 * border;
    if (width < minSide || height < minSide) {
      throw new SrganError(
        'SRGAN_ERR_DATA',
        `image ${file} is too small to evaluate: ${full.width}×${full.height}, need at least ${minSide}×${minSide} at scale ${scale} with border ${border}`,
      );
    }
    const hr = width === full.width && height === full.height ? full : crop(full, 0, 0, width, height);
    const lr = downscale(hr, scale, how.filter, how.blur);
    const score = (sr: typeof hr): Score => ({ psnr: psnrY(sr, hr, border), ssim: ssimY(sr, hr, border) });
    const bicubic = score(upscaleBicubic(lr, scale));
    const model = gen === null ? null : score(toRgbImage(await upscaleTiled(gen, lr, tiling)));
    rows.push({ file, width, height, model, bicubic });
  }
  const mean = (pick: (r: EvaluateRow) => Score): Score => ({
    psnr: rows.reduce((a, r) => a + pick(r).psnr, 0) / rows.length,
    ssim: rows.reduce((a, r) => a + pick(r).ssim, 0) / rows.length,
  });
  const model = gen === null ? null : mean((r) => r.model!);
  const bicubic = mean((r) => r.bicubic);
  return {
    scale,
    border,
    lr: { filter: how.filter, blur: how.blur },
    model,
    bicubic,
    gain: model === null ? null : model.psnr - bicubic.psnr,
    rows,
  };
}
