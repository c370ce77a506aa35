// Image quality metrics in the convention super-resolution papers report (BasicSR's
// `calculate_psnr` / `calculate_ssim` with `test_y_channel=True`), so our numbers can be set beside
// published tables:
//
//  - Both images are 8-bit RGB. A model's float output is first clamped to [0, 1], scaled by 255 and
//    rounded (BasicSR's tensor2img; image-io.ts toRgbImage), then measured like any other image.
//  - `border` pixels are cropped from every side first (papers crop the scale factor: 2 for ×2, 4 for ×4).
//  - Only the luma is compared: BT.601 "studio swing" Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255,
//    a float in [16, 235] (BasicSR's rgb2ycbcr(..., y_only=True) × 255, not rounded).
//  - PSNR = 10 log10(255² / MSE) over the cropped Y plane; identical images give +Infinity.
//  - SSIM (Wang et al. 2004, as BasicSR computes it): 11×11 Gaussian window with σ = 1.5 (OpenCV's
//    getGaussianKernel(11, 1.5) ⊗ itself), 'valid' filtering (only windows entirely inside the cropped
//    image), C1 = (0.01·255)², C2 = (0.03·255)², mean of the SSIM map; all in float64. The cropped image
//    must therefore be at least 11×11.
//
// Pure functions; inputs are never modified.

import { checkImage, type RgbImage } from './rgb-image.js';

/** Luma weights of BT.601 for 8-bit R, G, B (BasicSR's rgb2ycbcr row for Y). */
const Y_WEIGHTS = [65.481, 128.553, 24.966] as const;

/** SSIM constants for 8-bit data: (K1·L)², (K2·L)² with K1 = 0.01, K2 = 0.03, L = 255. */
const C1 = (0.01 * 255) ** 2;
const C2 = (0.03 * 255) ** 2;

/** Side of the SSIM window and σ of its Gaussian. */
export const SSIM_WINDOW = 11;
export const SSIM_SIGMA = 1.5;

// OpenCV's getGaussianKernel(11, 1.5): exp(−(i − 5)² / (2σ²)), normalised to sum 1. The 2-D window is its
// outer product, so filtering by rows then columns gives the same sums (up to float64 rounding).
const GAUSS: Float64Array = (() => {
  const half = (SSIM_WINDOW - 1) / 2;
  const g = Float64Array.from({ length: SSIM_WINDOW }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * SSIM_SIGMA ** 2)));
  const sum = g.reduce((a, v) => a + v, 0);
  return g.map((v) => v / sum);
})();

/**
 * The BT.601 Y plane of an 8-bit RGB image, row-major, as float64 in [16, 235]:
 * 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (BasicSR's to_y_channel; not rounded).
 */
export function toY(img: RgbImage): Float64Array {
  checkImage(img);
  const { data } = img;
  const out = new Float64Array(img.width * img.height);
  for (let i = 0, s = 0; i < out.length; i++, s += 3) {
    out[i] = 16 + (Y_WEIGHTS[0] * data[s] + Y_WEIGHTS[1] * data[s + 1] + Y_WEIGHTS[2] * data[s + 2]) / 255;
  }
  return out;
}

/** A cropped Y plane. */
interface Plane {
  width: number;
  height: number;
  data: Float64Array;
}

/** Checks the pair and the border, and returns both Y planes with `border` pixels cropped from each side. */
function croppedY(fn: string, a: RgbImage, b: RgbImage, border: number, minSide: number): [Plane, Plane] {
  checkImage(a, 'a');
  checkImage(b, 'b');
  if (a.width !== b.width || a.height !== b.height) {
    throw new RangeError(`${fn}: image sizes differ: a is ${a.width}×${a.height}, b is ${b.width}×${b.height}`);
  }
  if (!Number.isInteger(border) || border < 0) {
    throw new RangeError(`border: expected a non-negative integer, got ${JSON.stringify(border)}`);
  }
  const width = a.width - 2 * border;
  const height = a.height - 2 * border;
  if (width < minSide || height < minSide) {
    throw new RangeError(
      `border: cropping ${border} px from each side of a ${a.width}×${a.height} image leaves ${Math.max(width, 0)}×${Math.max(height, 0)}, ` +
        `${fn} needs at least ${minSide}×${minSide}`,
    );
  }
  const crop = (full: Float64Array): Plane => {
    const data = new Float64Array(width * height);
    for (let y = 0; y < height; y++) {
      const src = (y + border) * a.width + border;
      data.set(full.subarray(src, src + width), y * width);
    }
    return { width, height, data };
  };
  return [crop(toY(a)), crop(toY(b))];
}

/**
 * PSNR in dB between the Y channels of two same-size 8-bit RGB images after cropping `border` pixels
 * from each side (default 0): 10·log10(255² / MSE). +Infinity when the cropped Y planes are equal.
 * Throws RangeError when the sizes differ or the crop leaves nothing.
 */
export function psnrY(a: RgbImage, b: RgbImage, border = 0): number {
  const [ya, yb] = croppedY('psnrY', a, b, border, 1);
  let sse = 0;
  for (let i = 0; i < ya.data.length; i++) {
    const d = ya.data[i] - yb.data[i];
    sse += d * d;
  }
  const mse = sse / ya.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/**
 * SSIM between the Y channels of two same-size 8-bit RGB images after cropping `border` pixels from
 * each side (default 0), BasicSR's calculate_ssim (see the header). 1 for identical images. Throws
 * RangeError when the sizes differ or the cropped image is smaller than 11×11.
 */
export function ssimY(a: RgbImage, b: RgbImage, border = 0): number {
  const [ya, yb] = croppedY('ssimY', a, b, border, SSIM_WINDOW);
  const n = ya.data.length;
  const aa = new Float64Array(n);
  const bb = new Float64Array(n);
  const ab = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = ya.data[i];
    const q = yb.data[i];
    aa[i] = p * p;
    bb[i] = q * q;
    ab[i] = p * q;
  }
  const { width, height } = ya;
  const mu1 = gaussValid(ya.data, width, height);
  const mu2 = gaussValid(yb.data, width, height);
  const e11 = gaussValid(aa, width, height);
  const e22 = gaussValid(bb, width, height);
  const e12 = gaussValid(ab, width, height);
  let sum = 0;
  for (let i = 0; i < mu1.length; i++) {
    const m1 = mu1[i];
    const m2 = mu2[i];
    const s11 = e11[i] - m1 * m1;
    const s22 = e22[i] - m2 * m2;
    const s12 = e12[i] - m1 * m2;
    sum += ((2 * m1 * m2 + C1) * (2 * s12 + C2)) / ((m1 * m1 + m2 * m2 + C1) * (s11 + s22 + C2));
  }
  return sum / mu1.length;
}

/** 'valid' correlation of a w×h plane with the 11×11 Gaussian: (w − 10)×(h − 10) outputs, row-major. */
function gaussValid(src: Float64Array, w: number, h: number): Float64Array {
  const K = SSIM_WINDOW;
  const ow = w - K + 1;
  const oh = h - K + 1;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      const base = y * w + x;
      for (let k = 0; k < K; k++) s += GAUSS[k] * src[base + k];
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += GAUSS[k] * rows[(y + k) * ow + x];
      out[y * ow + x] = s;
    }
  }
  return out;
}
