// A small seeded PRNG, so data order, crops and the demo set are reproducible (docs/style.md §5).

/** A seeded generator of floats in [0, 1) whose whole state is one 32-bit integer (for checkpoints). */
export interface Rng {
  (): number;
  /** The generator's state: read it to save, assign it to continue exactly from there. */
  state: number;
}

/**
 * mulberry32: a 32-bit-state generator returning floats in [0, 1). Fast and good enough for
 * crops, augmentation and synthetic images; not for anything cryptographic.
 */
export function mulberry32(seed: number): Rng {
  let a = seed | 0;
  const next = (() => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }) as Rng;
  Object.defineProperty(next, 'state', {
    get: () => a,
    set: (v: number) => {
      if (!Number.isInteger(v)) throw new RangeError(`rng state must be an integer, got ${v}`);
      a = v | 0;
    },
  });
  return next;
}

/** Mixes a base seed with an index into a well-spread 32-bit seed (for per-item streams). */
export function deriveSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
