// What the daemon does with what the trainer reports, apart from its lifecycle (state changes and
// 'stopped' stay with the Daemon): metrics and previews go to SQLite and to monitor clients, the live
// status follows the trainer's counters, checkpoints are recorded and old ones pruned, and callers
// waiting for a checkpoint are answered.

import fs from 'node:fs';

import type { ControlServer } from '../actors/control-server.js';
import type { MetricsStore } from '../actors/metrics-store.js';
import type { CheckpointWritten, DaemonStatus, FromTrainer, MetricsPoint, ServerMessage } from '../protocol/messages.js';
import { checkpointRetention } from '../models/train/checkpoint.js';
import { encodePng, PREVIEW_PANELS } from '../data/image/patches.js';
import { SrganError } from '../util/errors.js';
import type { TrainingData } from './training-data.js';
import { withValidation } from './validation-status.js';

/** Metrics points kept in memory for monitor clients that connect late (the database has them all). */
const HISTORY_LIMIT = 20_000;

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
    this.#history = this.#history.filter((p) => p.step <= step);
    for (const p of points) if (!this.#history.some((h) => h.step === p.step)) this.#history.push(p);
    this.#history.sort((a, b) => a.step - b.step);
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
          this.#o.server()?.send({ type: 'broadcast', topic: 'metrics', message: { type: 'metrics', ...p } });
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
        void encodePng({ width: m.width, height: m.height, data: m.rgb }).then((png) => {
          const panels = [...PREVIEW_PANELS];
          this.#o.store()?.send({ type: 'preview', runId, step: m.step, width: m.width, height: m.height, panels, png });
          this.#latestPreview = { type: 'preview', step: m.step, width: m.width, height: m.height, panels, png: png.toString('base64') };
          this.#o.server()?.send({ type: 'broadcast', topic: 'previews', message: this.#latestPreview });
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
   * Keeps the newest `checkpointKeep` checkpoints and the best by validation gain over bicubic (by PSNR
   * for checkpoints from before gains were measured); removes the rest.
   */
  #prune(): void {
    const { remove } = checkpointRetention(this.#o.checkpointDir, this.#o.checkpointKeep);
    for (const dir of remove) fs.rmSync(dir, { recursive: true, force: true });
    if (remove.length) this.#o.store()?.send({ type: 'checkpointsDeleted', runId: this.#o.runId, paths: remove });
  }
}
