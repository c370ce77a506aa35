// Plain-JS references shared by the kernel, gradient and model tests.

import { expect } from 'vitest';

/** max |a − b| / max |b|: the error relative to the reference's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

/**
 * Space-to-depth of y [n, h·r, w·r, c] (NHWC, block-major channels, tf.depthToSpace's inverse):
 * x[n, h, w, (i·r + j)·c + ch] = y[n, h·r + i, w·r + j, ch]. `shape` is x's [n, h, w, c].
 */
export function spaceToDepthRef(y: ArrayLike<number>, [n, h, w, c]: number[], r: number): Float32Array {
  const out = new Float32Array(y.length);
  const H = h! * r;
  const W = w! * r;
  for (let b = 0; b < n!; b++)
    for (let yy = 0; yy < H; yy++)
      for (let xx = 0; xx < W; xx++)
        for (let ch = 0; ch < c!; ch++) {
          const src = ((b * H + yy) * W + xx) * c! + ch;
          const dst = ((b * h! + Math.floor(yy / r)) * w! + Math.floor(xx / r)) * (c! * r * r) + ((yy % r) * r + (xx % r)) * c! + ch;
          out[dst] = y[src]!;
        }
  return out;
}
