// Separable resampling of 8-bit RGB images by per-axis tap tables, and the tap tables the data
// pipeline needs (antialiased box-aligned downscales, Keys-cubic enlargement and antialiased cubic
// downscale). Pure functions; no input is modified.

import type { RgbImage } from './rgb-image.js';

/**
 * Taps of a separable resampler along one axis: output sample j reads source samples
 * idx[j*taps + k] with weights wt[j*taps + k], k = 0..taps-1. Every index is inside the source axis
 * (out-of-range taps are either clamped with weight 0 or reflected), so the resampler never bounds-checks.
 */
export interface AxisTaps {
  taps: number;
  idx: Int32Array;
  wt: Float64Array;
}

/**
 * Applies the x taps to every row, then the y taps to every column. The intermediate stays in float64
 * so the result is rounded (and clamped to 0..255) only once, by toByte.
 */
export function resampleSeparable(img: RgbImage, xt: AxisTaps, yt: AxisTaps): RgbImage {
  const { width: w, height: h, data } = img;
  const XT = xt.taps;
  const YT = yt.taps;
  const ow = xt.wt.length / XT;
  const oh = yt.wt.length / YT;

  // Horizontal pass: h rows × ow columns.
  const tmp = new Float64Array(h * ow * 3);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let j = 0; j < ow; j++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < XT; k++) {
        const c = xt.wt[j * XT + k];
        const s = (row + xt.idx[j * XT + k]) * 3;
        r += c * data[s];
        g += c * data[s + 1];
        b += c * data[s + 2];
      }
      const t = (y * ow + j) * 3;
      tmp[t] = r;
      tmp[t + 1] = g;
      tmp[t + 2] = b;
    }
  }

  // Vertical pass.
  const out = new Uint8Array(ow * oh * 3);
  for (let i = 0; i < oh; i++) {
    for (let x = 0; x < ow; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < YT; k++) {
        const c = yt.wt[i * YT + k];
        const s = (yt.idx[i * YT + k] * ow + x) * 3;
        r += c * tmp[s];
        g += c * tmp[s + 1];
        b += c * tmp[s + 2];
      }
      const t = (i * ow + x) * 3;
      out[t] = toByte(r);
      out[t + 1] = toByte(g);
      out[t + 2] = toByte(b);
    }
  }
  return { width: ow, height: oh, data: out };
}

/** Rounds half up to an integer in 0..255. */
export function toByte(v: number): number {
  // The epsilon absorbs float error on exact halves (e.g. 12.499999999 that should be 12.5).
  const r = Math.round(v + 1e-9);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/**
 * Tap table of an integer-factor downscale of a length-n axis (n a multiple of `factor`) by a fixed
 * symmetric kernel whose centre is the centre of the factor-wide source block: output o reads source
 * factor·o − (kernel.length − factor)/2 onwards. Taps outside 0..n−1 get weight 0 (and a clamped index)
 * and the rest are renormalised to sum to 1, which is conv(zero-padded x) / conv(zero-padded ones).
 * Because kernel and mask are both separable, renormalising each 1-D pass gives exactly the 2-D
 * normalised convolution.
 */
export function renormalisedTaps(n: number, factor: number, kernel: readonly number[]): AxisTaps {
  const taps = kernel.length;
  const on = n / factor;
  const lead = (taps - factor) / 2;
  const idx = new Int32Array(on * taps);
  const wt = new Float64Array(on * taps);
  for (let o = 0; o < on; o++) {
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const i = factor * o - lead + k;
      const inside = i >= 0 && i < n;
      idx[o * taps + k] = i < 0 ? 0 : i >= n ? n - 1 : i;
      wt[o * taps + k] = inside ? kernel[k] : 0;
      if (inside) sum += kernel[k];
    }
    for (let k = 0; k < taps; k++) wt[o * taps + k] = wt[o * taps + k] / sum;
  }
  return { taps, idx, wt };
}

/** Keys cubic convolution kernel with a = −0.5 (Catmull-Rom; MATLAB imresize's 'bicubic'). Support (−2, 2). */
export function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Tap table of the ×scale centre-aligned bicubic enlargement of a length-n axis: clamped indices, Keys weights. */
export function cubicUpTaps(n: number, scale: number): AxisTaps {
  const taps = 4;
  const on = n * scale;
  const idx = new Int32Array(on * taps);
  const wt = new Float64Array(on * taps);
  for (let j = 0; j < on; j++) {
    // Centre-aligned: the centre of output pixel j maps to the same point as in the input.
    const x = (j + 0.5) / scale - 0.5;
    const x0 = Math.floor(x);
    const f = x - x0;
    for (let k = 0; k < taps; k++) {
      const i = x0 - 1 + k;
      idx[j * taps + k] = i < 0 ? 0 : i >= n ? n - 1 : i;
      wt[j * taps + k] = cubic(f - (k - 1));
    }
  }
  return { taps, idx, wt };
}

/** Half-sample symmetric reflection into 0..n−1 (…, 1, 0 | 0, 1, …, n−1 | n−1, n−2, …), period 2n. */
function reflect(i: number, n: number): number {
  const p = 2 * n;
  const m = ((i % p) + p) % p;
  return m < n ? m : p - 1 - m;
}

/**
 * Tap table of an antialiased ÷factor downscale of a length-n axis (n a multiple of factor) by a
 * symmetric kernel of support (−radius, radius), MATLAB imresize's convention: output o is centred on
 * source coordinate u = (o + 0.5)·factor − 0.5, the kernel is stretched by the factor (weight of source
 * j ∝ kernel((u − j)/factor)), the 2·radius·factor weights are normalised to sum to 1, and taps beyond
 * the border read the mirror image (half-sample symmetric), which is imresize's padding; unlike the
 * renormalised taps, border outputs therefore keep the kernel's full shape.
 */
export function kernelDownTaps(n: number, factor: number, kernel: (x: number) => number, radius: number): AxisTaps {
  const taps = 2 * radius * factor;
  const on = n / factor;
  const idx = new Int32Array(on * taps);
  const wt = new Float64Array(on * taps);
  for (let o = 0; o < on; o++) {
    const u = (o + 0.5) * factor - 0.5;
    // The kernel is non-zero for |u − j| < radius·factor; u sits on a half-integer for even factors, so
    // the 2·radius·factor integers j in (u − radius·f, u + radius·f) are floor(u − radius·f) + 1 onwards.
    const first = Math.floor(u - radius * factor) + 1;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const j = first + k;
      const c = kernel((u - j) / factor);
      idx[o * taps + k] = reflect(j, n);
      wt[o * taps + k] = c;
      sum += c;
    }
    for (let k = 0; k < taps; k++) wt[o * taps + k] = wt[o * taps + k] / sum;
  }
  return { taps, idx, wt };
}

/** MATLAB imresize's antialiased bicubic ÷factor (Keys a = −0.5 stretched by the factor); see kernelDownTaps. */
export function cubicDownTaps(n: number, factor: number): AxisTaps {
  return kernelDownTaps(n, factor, cubic, 2);
}

/** Lanczos kernel with a = 3 (sinc(x)·sinc(x/3) for |x| < 3), MATLAB imresize's 'lanczos3'. */
export function lanczos3(x: number): number {
  if (x === 0) return 1;
  const t = Math.abs(x);
  if (t >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** MATLAB imresize's antialiased lanczos3 ÷factor; see kernelDownTaps. */
export function lanczos3DownTaps(n: number, factor: number): AxisTaps {
  return kernelDownTaps(n, factor, lanczos3, 3);
}

/**
 * Tap table of a Gaussian blur (standard deviation sigma > 0, truncated at ⌈3σ⌉, weights normalised to
 * sum to 1) of a length-n axis, at the same size, with half-sample symmetric borders.
 */
export function gaussianTaps(n: number, sigma: number): AxisTaps {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const taps = 2 * r + 1;
  const kernel = Array.from({ length: taps }, (_, k) => Math.exp(-((k - r) ** 2) / (2 * sigma * sigma)));
  const total = kernel.reduce((a, b) => a + b, 0);
  const idx = new Int32Array(n * taps);
  const wt = new Float64Array(n * taps);
  for (let o = 0; o < n; o++) {
    for (let k = 0; k < taps; k++) {
      idx[o * taps + k] = reflect(o - r + k, n);
      wt[o * taps + k] = kernel[k] / total;
    }
  }
  return { taps, idx, wt };
}

/**
 * The tap table of `outer` applied after `inner` (both along one axis; outer reads inner's outputs):
 * one table, so a blur followed by a downscale is computed, and rounded, once.
 */
export function composeTaps(outer: AxisTaps, inner: AxisTaps): AxisTaps {
  const on = outer.wt.length / outer.taps;
  const rows: Map<number, number>[] = [];
  let taps = 0;
  for (let o = 0; o < on; o++) {
    const acc = new Map<number, number>();
    for (let k = 0; k < outer.taps; k++) {
      const c = outer.wt[o * outer.taps + k];
      if (c === 0) continue;
      const m = outer.idx[o * outer.taps + k];
      for (let q = 0; q < inner.taps; q++) {
        const i = inner.idx[m * inner.taps + q];
        acc.set(i, (acc.get(i) ?? 0) + c * inner.wt[m * inner.taps + q]);
      }
    }
    rows.push(acc);
    taps = Math.max(taps, acc.size);
  }
  const idx = new Int32Array(on * taps);
  const wt = new Float64Array(on * taps);
  rows.forEach((acc, o) => {
    let k = 0;
    for (const [i, c] of acc) {
      idx[o * taps + k] = i;
      wt[o * taps + k] = c;
      k++;
    }
    // Unused slots keep weight 0 at index 0.
  });
  return { taps, idx, wt };
}
