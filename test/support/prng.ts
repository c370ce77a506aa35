// Seeded randomness for tests: same seed, same sequence, on every thread and every run.

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): a uniform float in [0, 1) per call.
 * test/fixtures/ring-producer.mjs carries a plain-JS copy for worker threads; ring.test.ts checks
 * that both produce the same stream.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
