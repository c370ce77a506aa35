// Plain-JS references shared by the kernel, gradient and model tests.

import { expect } from 'vitest';
import type { RgbImage } from '../../src/data/image/rgb-image.js';

/** max |a − b| / max |b|: the error relative to the reference's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/**
 * Space-to-depth of y [n, h·r, w·r, c] (NHWC, block-major channels, tf.depthToSpace's inverse):
 * x[n, h, w, (i·r + j)·c + ch] = y[n, h·r + i, w·r + j, ch]. `shape` is x's [n, h, w, c].
 */
export function spaceToDepthRef(y: ArrayLike<number>, [n, h, w, c]: number[], r: number): Float32Array {
  const out = new Float32Array(y.length);
  const H = h * r;
  const W = w * r;
  for (let b = 0; b < n; b++)
    for (let yy = 0; yy < H; yy++)
      for (let xx = 0; xx < W; xx++)
        for (let ch = 0; ch < c; ch++) {
          const src = ((b * H + yy) * W + xx) * c + ch;
          const dst = ((b * h + Math.floor(yy / r)) * w + Math.floor(xx / r)) * (c * r * r) + ((yy % r) * r + (xx % r)) * c + ch;
          out[dst] = y[src]!;
        }
  return out;
}

/** Independent reference: 2-D conv(zero-padded x, taps ⊗ taps) / conv(zero-padded ones), stride f. */
export function normalisedConv(img: RgbImage, f: number, taps: readonly number[]): RgbImage {
  const lead = (taps.length - f) / 2;
  const ow = img.width / f;
  const oh = img.height / f;
  const data = new Uint8Array(ow * oh * 3);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let c = 0; c < 3; c++) {
        let num = 0;
        let den = 0;
        for (let ky = 0; ky < taps.length; ky++) {
          for (let kx = 0; kx < taps.length; kx++) {
            const x = f * ox - lead + kx;
            const y = f * oy - lead + ky;
            if (x < 0 || y < 0 || x >= img.width || y >= img.height) continue;
            const wgt = taps[kx] * taps[ky];
            num += wgt * img.data[(y * img.width + x) * 3 + c];
            den += wgt;
          }
        }
        data[(oy * ow + ox) * 3 + c] = Math.round(num / den + 1e-9);
      }
    }
  }
  return { width: ow, height: oh, data };
}

/** An image from a per-pixel function returning [r, g, b]. */
export function make(width: number, height: number, f: (x: number, y: number) => readonly number[]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  }
  return { width, height, data };
}

/** One colour channel of an RGB image, as a plain array. */
export function channel(img: RgbImage, c: number): number[] {
  const out: number[] = [];
  for (let i = c; i < img.data.length; i += 3) out.push(img.data[i]);
  return out;
}
