// What the trainer worker (trainer/worker.ts) is started with, as its workerData; the trainer actor
// (actors/trainer.ts) builds it on the main thread. Messages in both directions are in messages.ts.

import type { RunConfig } from '../config/presets.js';
import type { RgbImage } from '../data/image/rgb-image.js';

export interface TrainerWorkerData {
  ring: SharedArrayBuffer;
  config: RunConfig;
  /** A fixed HR/LR pair (larger than a training patch) for the preview strip. */
  preview: { hr: RgbImage; lr: RgbImage } | null;
  runId: string;
  /** Where this run's checkpoint folders go. */
  checkpointDir: string;
  /** A checkpoint folder to continue from (verified by the daemon), or null. */
  resume: string | null;
  /** What the loader feeds: patches per image visit and the image count (recorded in checkpoints). */
  data: { patchesPerImage: number; images: number };
  /** Held-out images for validation (never trained on); empty = no validation. */
  valFiles: string[];
  /**
   * The factor on every learning rate after non-finite rollbacks, and their count (docs/reliability.md,
   * "NaN and Inf"); the daemon keeps them, the trainer applies them and writes them into checkpoints.
   */
  lrScale: number;
  rollbacks: number;
}
