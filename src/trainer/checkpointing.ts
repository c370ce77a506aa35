// When and what the trainer writes as checkpoints (docs/checkpoints.md): periodic ones by step count or
// wall time, one at each new best validation gain, one on request and one at the stop; each with the
// metrics logged since the previous one, so a kill -9 loses no curve.

import path from 'node:path';
import type { CheckpointWritten, FromTrainer, MetricsPoint } from '../protocol/messages.js';
import type { RunConfig } from '../config/presets.js';
import type { Gan } from '../models/train/gan.js';
import type { Scheduler } from '../models/train/scheduler.js';
import { writeCheckpoint, type CheckpointState } from '../models/train/checkpoint.js';
import { saveGeneratorLayersModel } from '../models/io/export-layers.js';
import type { Rng } from '../util/prng.js';

/** Metrics older than this are in the database already (it gets them within a second). */
const RECENT_MS = 60_000;

/** What a checkpoint captures besides the Gan, read when it is written. */
export interface CheckpointSources {
  gan: Gan;
  scheduler: () => Scheduler;
  jpegRand: Rng;
  /** The perceptual loss's generator, or null when the run has none. */
  perceptualRand: Rng | null;
  /** The data position of the first patch not yet trained on. */
  dataSeq: () => number;
  /** The learning-rate factor and rollback count of non-finite steps (docs/reliability.md). */
  nonFinite: { lrScale: number; rollbacks: number };
}

export class Checkpoints {
  readonly #config: RunConfig;
  readonly #runId: string;
  readonly #dir: string;
  readonly #data: { patchesPerImage: number; images: number };
  readonly #post: (m: FromTrainer) => void;
  readonly #src: CheckpointSources;
  /** The step of the newest checkpoint on disk (-1: none). */
  lastStep = -1;
  #lastAt = performance.now();
  /** The best validation gain so far: a 'best' checkpoint is written on a new one. */
  #bestGain: number | null = null;
  /**
   * The validation of the step the trainer stands at, if it validated there: a checkpoint written at
   * that step later (`srgan checkpoint` while paused, a stop) replaces the one written with it, and must
   * keep its scores, or retention and --best would no longer see it as the best.
   */
  #valHere: { step: number; val: Record<string, number> } | null = null;
  /** Recent metrics: the ones since the previous checkpoint, and any from the last minute. */
  #recent: MetricsPoint[] = [];

  constructor(
    o: { config: RunConfig; runId: string; dir: string; data: { patchesPerImage: number; images: number }; post: (m: FromTrainer) => void },
    sources: CheckpointSources,
  ) {
    this.#config = o.config;
    this.#runId = o.runId;
    this.#dir = o.dir;
    this.#data = o.data;
    this.#post = o.post;
    this.#src = sources;
  }

  /** Continues from the checkpoint a run resumed at. */
  resumeFrom(state: CheckpointState): void {
    this.lastStep = state.step;
    this.#bestGain = state.bestValGain ?? state.valGain ?? null;
    const { valPsnr, valGain } = state;
    if (typeof valPsnr === 'number' && typeof valGain === 'number')
      this.#valHere = { step: state.step, val: { val_psnr: valPsnr, val_gain: valGain } };
  }

  /** Records a validation at `step`; true when its gain is a new best (a 'best' checkpoint is due). */
  validated(step: number, val: Record<string, number>): boolean {
    this.#valHere = { step, val };
    const gain = val.val_gain;
    const best = this.#bestGain === null || gain > this.#bestGain;
    if (best) this.#bestGain = gain;
    return best;
  }

  /** Keeps a logged point for the next checkpoint. */
  logged(point: MetricsPoint): void {
    this.#recent.push(point);
    // With rare (or no) checkpoints keep it bounded: points older than a minute are on disk already.
    if (this.#recent.length > 20_000) this.#recent = this.#recent.filter((p) => p.wallTime >= Date.now() - RECENT_MS);
  }

  /** Whether a periodic checkpoint is due after `step` (by checkpointEvery or checkpointMinutes). */
  periodicDue(step: number): boolean {
    const every = this.#config.checkpointEvery;
    const minutes = this.#config.checkpointMinutes;
    return (every > 0 && step % every === 0) || (minutes > 0 && performance.now() - this.#lastAt >= minutes * 60_000);
  }

  /**
   * Writes a checkpoint at the scheduler's step. Called only between steps: nothing is half-updated,
   * and the patches of an unfinished batch are not counted as used (a resumed run reads them again, in
   * the same order). A failure is reported as a warning; training goes on.
   */
  async write(kind: CheckpointWritten['kind'], val: Record<string, number> | null = null): Promise<void> {
    const scheduler = this.#src.scheduler();
    const step = scheduler.step;
    if (val === null && this.#valHere?.step === step) val = this.#valHere.val;
    const valPsnr = val?.val_psnr ?? null;
    const valGain = val?.val_gain ?? null;
    const t0 = performance.now();
    const { gan } = this.#src;
    try {
      const { tensors, scalars } = await gan.exportState();
      const written = await writeCheckpoint(
        this.#dir,
        {
          runId: this.#runId,
          step,
          time: Date.now() / 1000,
          kind,
          config: this.#config,
          scheduler: scheduler.snapshot(),
          gan: scalars,
          rng: { jpeg: this.#src.jpegRand.state, perceptual: this.#src.perceptualRand?.state ?? null },
          data: { seq: this.#src.dataSeq(), patchesPerImage: this.#data.patchesPerImage, images: this.#data.images },
          valPsnr,
          valGain,
          bestValGain: this.#bestGain,
          metrics: this.#recent,
          lrScale: this.#src.nonFinite.lrScale,
          rollbacks: this.#src.nonFinite.rollbacks,
        },
        tensors,
        // The generator users take away: the EMA weights when there are any, as a plain LayersModel.
        (dir) => gan.withAverageWeights(() => saveGeneratorLayersModel(gan.G, this.#config.generator, path.join(dir, 'generator'))),
      );
      this.lastStep = step;
      const cutoff = Date.now() - RECENT_MS;
      this.#recent = this.#recent.filter((p) => p.wallTime >= cutoff);
      this.#post({
        type: 'checkpoint',
        step,
        dir: written.dir,
        checksum: written.checksum,
        bytes: written.bytes,
        kind,
        valPsnr,
        valGain,
        ms: performance.now() - t0,
      });
    } catch (err) {
      this.#post({
        type: 'warning',
        code: 'SRGAN_ERR_CHECKPOINT',
        message: `checkpoint at step ${step} failed: ${(err as Error).message}`,
      });
    } finally {
      this.#lastAt = performance.now();
    }
  }
}
