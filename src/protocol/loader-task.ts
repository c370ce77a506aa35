// The contract between the loader pool (actors/loader-pool.ts, main thread) and its piscina workers
// (actors/loader-worker.ts): what a worker is started with, the task it runs and what it answers.
// Kept apart from both, as piscina keeps its message types apart from pool and worker.

import type { LrBlurSetting, LrFilterSetting } from '../config/lr-synthesis.js';

/** A worker's workerData. */
export interface LoaderWorkerData {
  ring: SharedArrayBuffer;
}

/** One image visit: `pos` is its place in the data sequence (epoch × files + place in the epoch). */
export interface LoaderItem {
  file: string;
  /** Index into the file list (crops are seeded by it and the epoch). */
  index: number;
  pos: number;
  epoch: number;
  /** The image failed before: the worker writes a skip frame instead of loading it. */
  skip?: boolean;
}

export interface LoaderTask {
  /** Images to visit, in sequence order. Patch p of an item gets seq = pos × patchesPerImage + p. */
  items: LoaderItem[];
  seed: number;
  patchSize: number;
  scale: 2 | 4;
  /** How the LR input is made from the HR patch: one filter or a mix drawn per patch (docs/degradations.md). */
  lrFilter: LrFilterSetting;
  /** Gaussian blur before the downscale, drawn per patch; null = never. */
  lrBlur: LrBlurSetting | null;
  patchesPerImage: number;
  /** Give up writing a frame after this long (the ring stays full while training is paused). */
  writeTimeoutMs: number;
}

export interface LoaderResult {
  written: number;
  /** Items not (completely) written because the ring stayed full; the pool hands them out again. */
  unwritten: LoaderItem[];
  failed: { file: string; message: string }[];
  closed: boolean;
}
