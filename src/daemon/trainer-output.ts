// What the daemon does with what the trainer reports, apart from its lifecycle (state changes and
// 'stopped' stay with the Daemon): metrics and previews go to SQLite and to monitor clients, the live
// status follows the trainer's counters, checkpoints are recorded and old ones pruned, and callers
// waiting for a checkpoint are answered.

import fs from 'node:fs';

import type { ControlServer } from '../actors/control-server.js';
import type { MetricsStore, StoredPreview } from '../actors/metrics-store.js';
import type { CheckpointWritten, DaemonStatus, FromTrainer, MetricsPoint, ServerMessage } from '../protocol/messages.js';
import { checkpointRetention } from '../models/train/checkpoint.js';
import { encodePng, PREVIEW_PANELS } from '../data/image/patches.js';
import { SrganError } from '../util/errors.js';
import type { TrainingData } from './training-data.js';
import { withValidation } from './validation-status.js';

/** Metrics points kept in memory for monitor clients that connect late (the database has them all). */
const HISTORY_LIMIT = 20_000;

/**
 * The series the daemon logs of the machine (not of the model): measurements, so a resumed run does
 * not repeat them value for value as it repeats the trainer's.
 */
export const DAEMON_SERIES_KEYS = Object.freeze(['steps_per_sec', 'patches_per_sec', 'data_wait', 'tensors', 'rss_mib'] as const);

/** The trainer messages TrainerOutput handles. */
export type TrainerReport = Exclude<FromTrainer, { type: 'state' } | { type: 'stopped' }>;

export interface TrainerOutputOptions {
  runId: string;
  /** This run's checkpoint folders, pruned to the newest `checkpointKeep` and the best. */
  checkpointDir: string;
  checkpointKeep: number;
  /** The daemon's live status, updated in place. */
  status: DaemonStatus;
  /** The daemon's status as clients get it (a copy). */
  snapshot: () => DaemonStatus;
  /** The actors, once started (null before and after). */
  store: () => MetricsStore | null;
  server: () => ControlServer | null;
  /** The run's training data; set before any trainer starts. */
  data: () => TrainingData;
  event: (kind: string, message: string, data?: unknown) => void;
  log: (line: string) => void;
}

export class TrainerOutput {
  readonly #o: TrainerOutputOptions;
  #history: MetricsPoint[] = [];
  #latestPreview: ServerMessage | null = null;
  /** The step of the last daemon-series point (a resumed run starts again from its checkpoint). */
  #lastSeriesStep = -1;
  /** Callers of waitForCheckpoint(), answered by the next manual or error checkpoint (or its failure). */
  #waiters: { resolve: (c: CheckpointWritten) => void; reject: (e: Error) => void }[] = [];

  constructor(options: TrainerOutputOptions) {
    this.#o = options;
  }

  /** The newest `limit` metrics points. */
  history(limit: number): MetricsPoint[] {
    return this.#history.slice(-limit);
  }

  latestPreview(): ServerMessage | null {
    return this.#latestPreview;
  }

  /** The run continues from a checkpoint at `step`: history drops what came after it and takes the checkpoint's own points. */
  rewind(step: number, points: readonly MetricsPoint[]): void {
    this.#lastSeriesStep = Math.min(this.#lastSeriesStep, step);
    this.#history = this.#history.filter((p) => p.step <= step);
    for (const p of points) if (!this.#history.some((h) => h.step === p.step)) this.#history.push(p);
    this.#history.sort((a, b) => a.step - b.step);
  }

  /** A preview strip is in the database: monitor clients may fetch it now. */
  previewStored(p: StoredPreview): void {
    this.#latestPreview = { type: 'preview', ...p };
    this.#o.server()?.send({ type: 'broadcast', topic: 'previews', message: this.#latestPreview });
  }

  /** Resolves with the next manual or error checkpoint; rejects if the trainer reports that writing one failed. */
  waitForCheckpoint(): Promise<CheckpointWritten> {
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  handle(m: TrainerReport): void {
    const { status, runId } = this.#o;
    const store = this.#o.store();
    switch (m.type) {
      case 'ready':
        status.backend = m.backend;
        status.backendReason = m.backendReason;
        store?.send({ type: 'updateRun', id: runId, backend: m.backend, backendReason: m.backendReason });
        this.#o.event('backend', `${m.backend}: ${m.backendReason}`, m.params);
        this.#o.log(`trainer ready on ${m.backend} (${m.backendReason}); G ${m.params.generator} params, D ${m.params.discriminator}`);
        break;
      case 'metrics': {
        if (m.points.length === 0) break;
        store?.send({ type: 'metrics', runId, points: m.points });
        for (const p of m.points) {
          this.#history.push(p);
          this.#o.server()?.send({ type: 'broadcast', topic: 'metrics', message: { type: 'metrics', runId, ...p } });
        }
        if (this.#history.length > HISTORY_LIMIT) this.#history.splice(0, this.#history.length - HISTORY_LIMIT);
        const last = m.points[m.points.length - 1];
        // Validation points are rare and the next point's losses replace them: status keeps them apart.
        for (const p of m.points) status.validation = withValidation(status.validation, p);
        status.losses = last.values;
        status.step = Math.max(status.step, last.step);
        store?.send({ type: 'updateRun', id: runId, lastStep: last.step });
        break;
      }
      case 'preview':
        // Clients hear of it once it is stored (previewStored), with the id they fetch it by.
        void encodePng({ width: m.width, height: m.height, data: m.rgb }).then((png) => {
          this.#o
            .store()
            ?.send({ type: 'preview', runId, step: m.step, width: m.width, height: m.height, panels: [...PREVIEW_PANELS], png });
        });
        break;
      case 'stats': {
        Object.assign(status, {
          step: Math.max(status.step, m.step),
          dSteps: m.dSteps,
          stepsPerSec: m.stepsPerSec,
          patchesPerSec: m.patchesPerSec,
          dataWaitFraction: m.dataWaitFraction,
          ringFrames: m.ringFrames,
          tensors: m.tensors,
        });
        // Epochs as the trainer consumes them (the loader runs ahead by a ring's worth).
        const data = this.#o.data();
        const epoch = Math.floor(m.dataSeq / data.patchesPerImage / data.files.length);
        if (epoch > status.epoch) this.#o.event('epoch', `epoch ${epoch} started at step ${m.step}`, { epoch, step: m.step });
        status.epoch = Math.max(status.epoch, epoch);
        this.#o.server()?.send({ type: 'broadcast', topic: 'status', message: { type: 'status', status: this.#o.snapshot() } });
        this.#daemonSeries(m);
        break;
      }
      case 'nonfinite': {
        const shown = Object.entries(m.values)
          .filter(([k, v]) => !Number.isFinite(v) && !k.startsWith('lr_'))
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
        const message = `step ${m.step} not applied: its losses or gradients are not finite (${shown || 'a gradient'}); ${m.inARow} in a row`;
        this.#o.event('nonfinite', message, { step: m.step, inARow: m.inARow });
        this.#o.log(message);
        break;
      }
      case 'error':
        this.#o.event('error', `${m.code}: ${m.message}`, m.stack ? { stack: m.stack } : undefined);
        this.#o.log(`trainer error ${m.code}: ${m.message}`);
        break;
      case 'warning':
        this.#o.event('warning', `${m.code}: ${m.message}`);
        this.#o.log(`trainer warning ${m.code}: ${m.message}`);
        if (m.code === 'SRGAN_ERR_CHECKPOINT') {
          for (const w of this.#waiters.splice(0)) w.reject(new SrganError('SRGAN_ERR_CHECKPOINT', m.message));
        }
        break;
      case 'checkpoint': {
        const { type: _type, ...written } = m;
        store?.send({
          type: 'checkpoint',
          row: {
            run_id: runId,
            step: m.step,
            time: Date.now() / 1000,
            path: m.dir,
            checksum: m.checksum,
            kind: m.kind,
            psnr: m.valPsnr,
            gain: m.valGain,
          },
        });
        this.#o.event(
          'checkpoint',
          `${m.kind} checkpoint at step ${m.step}: ${m.dir} (${(m.bytes / 2 ** 20).toFixed(1)} MiB, ${Math.round(m.ms)} ms)`,
          { dir: m.dir, step: m.step, kind: m.kind },
        );
        this.#o.log(`checkpoint ${m.dir}`);
        status.lastCheckpoint = { step: m.step, dir: m.dir };
        this.#prune();
        // Waiters asked for a checkpoint of their own; a periodic one written meanwhile is not it.
        if (m.kind === 'manual' || m.kind === 'error') for (const w of this.#waiters.splice(0)) w.resolve(written);
        break;
      }
    }
  }

  /**
   * The daemon's own series, logged like the trainer's metrics so the monitor can chart them: rates,
   * data wait, live tensors and the process's resident memory. One point per status report, at the
   * step the trainer had reached; none while the step stands still (paused), so a step has one value.
   */
  #daemonSeries(m: Extract<TrainerReport, { type: 'stats' }>): void {
    if (m.step <= this.#lastSeriesStep) return;
    this.#lastSeriesStep = m.step;
    const point: MetricsPoint = {
      step: m.step,
      wallTime: Date.now(),
      values: {
        steps_per_sec: m.stepsPerSec,
        patches_per_sec: m.patchesPerSec,
        data_wait: m.dataWaitFraction,
        tensors: m.tensors,
        rss_mib: process.memoryUsage.rss() / 2 ** 20,
      },
    };
    this.#o.store()?.send({ type: 'metrics', runId: this.#o.runId, points: [point] });
    this.#o.server()?.send({ type: 'broadcast', topic: 'metrics', message: { type: 'metrics', runId: this.#o.runId, ...point } });
  }

  /**
   * Keeps the newest `checkpointKeep` checkpoints, the best by validation gain over bicubic (by PSNR
   * for checkpoints from before gains were measured) and the pinned ones; removes the rest.
   */
  #prune(): void {
    const store = this.#o.store();
    const pinned = store?.pinnedSteps(this.#o.runId) ?? new Set<number>();
    const { remove } = checkpointRetention(this.#o.checkpointDir, this.#o.checkpointKeep, pinned);
    for (const dir of remove) fs.rmSync(dir, { recursive: true, force: true });
    if (remove.length) store?.send({ type: 'checkpointsDeleted', runId: this.#o.runId, paths: remove });
  }
}
