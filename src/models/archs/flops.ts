// A forward-pass FLOP count for any of our networks, for `srgan models --json` and the monitor.
// Convention: 2 × the multiply-adds of the convolutions (bias adds, activations, normalisation,
// resampling and the optimizer are left out; they are a few percent at most in these networks).
// Each network knows its own geometry and exposes flopsPerForward(h, w) for one h×w image.

/** Anything with a per-image FLOP count: every generator and discriminator in src/models. */
export interface FlopCounted {
  flopsPerForward(h: number, w: number): number;
}

/** FLOPs of one forward pass of `model` on an NHWC batch of `inputShape` ([n, h, w, c] or [h, w]). */
export function countFlops(model: FlopCounted, inputShape: readonly number[]): number {
  let n: number;
  let h: number;
  let w: number;
  if (inputShape.length === 4) [n, h, w] = inputShape as [number, number, number, number];
  else if (inputShape.length === 2) [h, w, n] = [inputShape[0], inputShape[1], 1];
  else throw new RangeError(`countFlops: inputShape must be [n, h, w, c] or [h, w], got [${inputShape.join(', ')}]`);
  for (const [field, v] of [
    ['n', n],
    ['h', h],
    ['w', w],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`countFlops: inputShape ${field} must be a positive integer, got ${v}`);
  }
  return n * model.flopsPerForward(h, w);
}
