// The names a run config uses for LR synthesis (docs/degradations.md): the downscale filters, the blur
// bound, and the lrFilter / lrBlur settings. Names only; data/image/degrade.ts implements them.

export type DownscaleFilter = 'bilinear-aa' | 'box-gamma' | 'bicubic-aa' | 'area' | 'lanczos3';
export const DOWNSCALE_FILTERS: readonly DownscaleFilter[] = Object.freeze(['bicubic-aa', 'bilinear-aa', 'area', 'lanczos3', 'box-gamma']);

/** LR syntheses `srgan eval` and the quality bench score by default: the standard protocol first. */
export const EVAL_LR_SYNTHESES: readonly string[] = Object.freeze(['bicubic-aa', 'bilinear-aa', 'area', 'lanczos3', 'blur0.8+bicubic-aa']);

/** The largest Gaussian blur (standard deviation, HR pixels) downscale takes. */
export const MAX_BLUR = 4;

/**
 * How training LR inputs are made (config `lrFilter` and `lrBlur`, docs/degradations.md): one filter,
 * or a mix `{filter: weight}` from which each patch draws one (weights need not sum to 1); and a
 * Gaussian blur applied before it with `probability`, its σ drawn uniformly in [sigmaMin, sigmaMax].
 */
export type LrFilterSetting = DownscaleFilter | Partial<Record<DownscaleFilter, number>>;
export interface LrBlurSetting {
  probability: number;
  sigmaMin: number;
  sigmaMax: number;
}
