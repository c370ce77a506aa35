// The daemon: builds the actor tree (metrics store, loader pool, trainer, control server) under one
// supervisor, starts or resumes the run, restarts a failed trainer from its newest checkpoint
// (restart-budget.ts), hands the trainer's reports to trainer-output.ts, and shuts down in order.

import fs from 'node:fs';
import path from 'node:path';
import { Supervisor } from '../actors/supervisor.js';
import { MetricsStore, type MetricsStoreMessage, type WriteState } from '../actors/metrics-store.js';
import { LoaderPool } from '../actors/loader-pool.js';
import { Trainer } from '../actors/trainer.js';
import { ControlServer, type DaemonControl } from '../actors/control-server.js';
import { SharedRing } from '../protocol/ring.js';
import type { CheckpointWritten, DaemonState, DaemonStatus, FromTrainer, MetricsPoint, ServerMessage } from '../protocol/messages.js';
import {
  latestValidCheckpoint,
  readCheckpointState,
  removeTemporaryCheckpoints,
  type CheckpointState,
} from '../models/train/checkpoint.js';
import { previewPair, trainingData, type TrainingData } from './training-data.js';
import type { RgbImage } from '../data/image/rgb-image.js';
import { resolveConfig } from '../config/resolve.js';
import type { RunConfig } from '../config/presets.js';
import {
  acquireLock,
  ensureToken,
  homePaths,
  releaseLock,
  runCheckpointDir,
  writeDaemonInfo,
  type DaemonInfo,
  type HomePaths,
} from '../store/home.js';
import { hasCode, SrganError } from '../util/errors.js';
import { openDb } from '../store/db.js';
import { MonitorData } from '../store/monitor-data.js';
import type Database from 'better-sqlite3';
import { runToResume } from './resume.js';
import { newRunId } from './run-id.js';
import { validationUpTo } from './validation-status.js';
import { TrainerOutput } from './trainer-output.js';
import { RestartBudget } from './restart-budget.js';
import { withInitWeights } from './init-weights.js';

/** Trainer thread failures within an hour that are answered by continuing from the newest checkpoint. */
const TRAINER_RESTARTS = 3;
/** How often the free space of $SRGAN_HOME is checked against minFreeMiB. */
const STORAGE_CHECK_MS = 2000;

/** Where a run continues: a checkpoint folder and the parts of its state.json the daemon needs. */
interface Resume {
  dir: string;
  state: Pick<CheckpointState, 'step' | 'data' | 'metrics' | 'lrScale' | 'rollbacks'>;
}

export interface DaemonOptions {
  /** Config overrides (validated by resolveConfig). With `resume`, only RESUME_OVERRIDABLE fields. */
  overrides: unknown;
  /** Continue this run (id, unique id prefix or name) from its newest valid checkpoint. */
  resume?: string;
  /**
   * A run from the queue (`srgan worker`, docs/scale.md): its id was fixed when it was queued, and it
   * continues from the newest valid checkpoint in its folder when there is one, whichever worker wrote it.
   */
  queued?: QueuedRun;
  home?: string;
  log?: (line: string) => void;
}

export interface QueuedRun {
  runId: string;
  /** The worker (host:pid) and job, recorded on the run. */
  worker: string;
  job: string;
  /** The run's name (the job's), when it was given one. */
  name: string | null;
}

export class Daemon implements DaemonControl {
  readonly paths: HomePaths;
  readonly config: RunConfig;
  readonly runId: string;
  /** This run's checkpoint folders. */
  readonly checkpointDir: string;
  /** What `srgan start` and the other commands read to find this daemon; set once it serves its monitor. */
  info: DaemonInfo | null = null;
  #resuming = false;
  readonly #queued: QueuedRun | null;
  /** A resumed run has taken over its run (dropped what came after its checkpoint). */
  #continued = false;
  readonly #log: (line: string) => void;
  #supervisor: Supervisor;
  #store: MetricsStore | null = null;
  #server: ControlServer | null = null;
  /** The monitor's read-only connection to runs.db. */
  #reader: Database.Database | null = null;
  #trainer: Trainer | null = null;
  #ring: SharedRing | null = null;
  #status: DaemonStatus;
  /** Where the trainer's reports go (metrics, previews, stats, checkpoints). */
  #output: TrainerOutput;
  #shutdown: Promise<number> | null = null;
  #failing = false;
  #restarting = false;
  /** Set once start() has succeeded. */
  #started = false;
  #restarts = new RestartBudget(TRAINER_RESTARTS, 3_600_000);
  /** The factor on every learning rate after non-finite rollbacks, and their count (docs/reliability.md). */
  #lrScale = 1;
  #rollbacks = 0;
  #data: TrainingData | null = null;
  #preview: { hr: RgbImage; lr: RgbImage } | null = null;
  #loader: LoaderPool | null = null;
  #exitCode = 0;
  #done!: (code: number) => void;
  /** Resolves with the process exit code once the daemon has shut down. */
  readonly finished: Promise<number>;

  constructor(options: DaemonOptions) {
    this.paths = homePaths(options.home);
    this.#log = options.log ?? ((line) => console.log(`${new Date().toISOString()} ${line}`));
    if (options.resume !== undefined) {
      const run = runToResume(this.paths.db, options.resume, (options.overrides ?? {}) as Record<string, unknown>);
      this.runId = run.id;
      this.#resuming = true;
      this.config = run.config;
    } else {
      this.config = resolveConfig(withInitWeights((options.overrides ?? {}) as Record<string, unknown>));
      this.runId = options.queued?.runId ?? newRunId();
    }
    this.#queued = options.queued ?? null;
    this.checkpointDir = runCheckpointDir(this.paths, this.runId, this.config);
    this.finished = new Promise((resolve) => (this.#done = resolve));
    this.#supervisor = new Supervisor({
      onEscalate: (err) => this.#fatal(err),
      onEvent: (e) => {
        this.#event(e.kind, `${e.child}${e.error ? `: ${(e.error as Error).message ?? e.error}` : ''}`);
        if (e.kind === 'child_failed' && e.child === 'trainer') this.#trainerFailed(e.error);
      },
    });
    this.#status = {
      state: 'starting',
      runId: this.runId,
      pid: process.pid,
      url: '',
      backend: 'pending',
      backendReason: '',
      step: 0,
      dSteps: 0,
      startedAt: Date.now(),
      stepsPerSec: 0,
      patchesPerSec: 0,
      dataWaitFraction: 0,
      ringFrames: 0,
      epoch: 0,
      tensors: 0,
      losses: {},
      lastCheckpoint: null,
      pauseReason: null,
      validation: null,
      preset: this.config.preset,
      config: this.config as unknown as Record<string, unknown>,
    };
    this.#output = new TrainerOutput({
      runId: this.runId,
      checkpointDir: this.checkpointDir,
      checkpointKeep: this.config.checkpointKeep,
      status: this.#status,
      snapshot: () => this.status(),
      store: () => this.#store,
      server: () => this.#server,
      data: () => this.#data!, // set before any trainer starts
      event: (kind, message, data) => this.#event(kind, message, data),
      log: this.#log,
    });
  }

  /** Starts every actor; resolves once the monitor URL is live and written to daemon.json. */
  async start(): Promise<string> {
    acquireLock(this.paths); // outside the try: a lock held by another daemon is not ours to release
    try {
      return await this.#start();
    } catch (err) {
      // Record the failure on the run (if it exists yet), stop whatever started, release the lock.
      this.#fatal(err);
      await this.#shutdown;
      throw err;
    }
  }

  async #start(): Promise<string> {
    const token = ensureToken(this.paths);
    const cfg = this.config;
    this.#store = new MetricsStore({
      file: this.paths.db,
      onPreviewStored: (p) => this.#output.previewStored(p),
      onWriteState: (s) => this.#writeState(s),
      retention: this.config.retention,
    });
    await this.#supervisor.startChild({ actor: this.#store, restart: 'permanent' });

    const data = await trainingData(this.config, this.paths.demoData, this.#log);
    this.#data = data;
    const files = data.files;
    // A resumed run continues from its newest checkpoint that verifies; damaged ones are passed over.
    let resume: Resume | null = null;
    // A queued run looks for a checkpoint too: it decides whether the run resumes (#takeQueuedRun).
    const leftovers = this.#resuming || this.#queued ? removeTemporaryCheckpoints(this.checkpointDir) : null;
    const found = leftovers ? latestValidCheckpoint(this.checkpointDir) : null;
    const known = this.#queued ? this.#takeQueuedRun(found) : false;
    if (this.#resuming) {
      // Recorded now that the run has its row.
      for (const t of leftovers?.removed ?? []) this.#event('checkpoint_skipped', `removed ${t}: a checkpoint write that never finished`);
      for (const t of leftovers?.restored ?? [])
        this.#event('checkpoint_skipped', `restored ${t} as ${t.replace(/\.old-\d+$/, '')}: its replacement never finished`);
      for (const sk of found?.skipped ?? []) this.#event('checkpoint_skipped', sk.reason, { dir: sk.dir });
      if (!found) {
        throw new SrganError('SRGAN_ERR_CHECKPOINT', `run ${this.runId} has no usable checkpoint in ${this.checkpointDir}`);
      }
      for (const sk of found.skipped) this.#log(`skipped checkpoint: ${sk.reason}`);
      // The scheduler stops after a step once it reaches maxSteps, so it would train one step too many.
      if (cfg.maxSteps !== null && found.step >= cfg.maxSteps) {
        throw new SrganError(
          'SRGAN_ERR_CONFIG',
          `run ${this.runId} continues from step ${found.step} (${path.basename(found.dir)}), so --max-steps ${cfg.maxSteps} leaves nothing to train; give a larger --max-steps`,
        );
      }
      resume = this.#continueFrom(found.dir);
      this.#event('resume_run', `resuming run ${this.runId} from ${path.basename(found.dir)} (step ${resume.state.step})`, {
        dir: found.dir,
        step: resume.state.step,
      });
      this.#log(`resuming from ${found.dir}`);
    } else if (known) {
      // A queued run this database has seen, with no checkpoint to continue from: it starts over.
      this.#store.send({ type: 'resumeRun', id: this.runId, fromStep: 0, pid: process.pid, points: [], queued: this.#queuedBy() });
      this.#output.rewind(0, []);
    } else {
      this.#createRun(null);
    }
    this.#event(
      'start',
      `run ${this.runId} on ${files.length} ${data.kind === 'prepared' ? 'prepared patches' : 'images'}` +
        (data.val.length ? ` (+${data.val.length} held out for validation)` : ''),
      { images: files.length, validation: data.val.length },
    );
    this.#preview = await previewPair(data.val.length ? data.val : files, cfg);
    await this.#startTraining(resume);
    // `srgan start` returns only once training can begin: a backend that cannot load fails the start.
    await this.#trainer!.ready;

    // The monitor reads runs.db on its own connection (WAL: a snapshot, never blocked by the writer).
    this.#reader = openDb(this.paths.db, { readonly: true });
    this.#server = new ControlServer({
      port: cfg.port,
      token,
      control: this,
      monitor: {
        data: new MonitorData(this.#reader),
        liveRunId: () => this.runId,
        pin: (runId, step, pinned) => this.#store!.pinCheckpoint(runId, step, pinned),
      },
    });
    await this.#supervisor.startChild({ actor: this.#server, restart: 'permanent' });
    this.#status.url = this.#server.url;
    this.info = {
      pid: process.pid,
      port: this.#server.port,
      url: this.#server.url,
      runId: this.runId,
      startedAt: this.#status.startedAt,
      logFile: process.env.SRGAN_LOG_FILE ?? '',
    };
    writeDaemonInfo(this.paths, this.info);
    this.#log(`monitor: ${this.#server.url}`);
    this.#started = true;
    this.#checkStorage();
    this.#storage.timer = setInterval(() => this.#checkStorage(), STORAGE_CHECK_MS).unref();
    return this.#server.url;
  }

  #createRun(continuedFrom: number | null): void {
    const cfg = this.config;
    this.#store!.send({
      type: 'createRun',
      run: {
        id: this.runId,
        name: this.#queued?.name ?? `${cfg.preset} ${new Date().toISOString().slice(0, 16).replace('T', ' ')}`,
        status: 'starting',
        created_at: Date.now() / 1000,
        preset: cfg.preset,
        backend: null,
        backend_reason: null,
        config: JSON.stringify(cfg),
        pid: process.pid,
        data_dir: cfg.dataDir ?? this.paths.demoData,
        ...(this.#queued ? { ...this.#queuedBy(), continued_from: continuedFrom } : {}),
      },
    });
  }

  #queuedBy(): { worker: string; job: string } | undefined {
    return this.#queued ? { worker: this.#queued.worker, job: this.#queued.job } : undefined;
  }

  /**
   * A run from the queue (docs/scale.md) continues from the newest valid checkpoint in its folder, which
   * an earlier worker may have written on another machine: then it is resumed, and a database that has
   * not seen the run gets its row, marked as continued from that step (its earlier steps are in the
   * other worker's runs.db). Without one it starts from step 0. `found`: that checkpoint, or null.
   * Returns whether this database knew the run.
   */
  #takeQueuedRun(found: { step: number } | null): boolean {
    const known = this.#store!.db.prepare('SELECT 1 FROM runs WHERE id = ?').get(this.runId) !== undefined;
    if (found) {
      this.#resuming = true;
      if (!known) this.#createRun(found.step);
    }
    return known;
  }

  /**
   * Takes checkpoint `dir` as where the run continues: the database drops what was logged after it
   * and gets the checkpoint's own copy of its last metrics; status and history follow.
   */
  #continueFrom(dir: string): Resume {
    const state = readCheckpointState(dir, { verified: true }); // latestValidCheckpoint verified it
    const data = this.#data!;
    this.#continued = true;
    this.#status.step = state.step;
    this.#store!.send({
      type: 'resumeRun',
      id: this.runId,
      fromStep: state.step,
      pid: process.pid,
      points: state.metrics ?? [],
      queued: this.#queuedBy(),
    });
    this.#output.rewind(state.step, state.metrics ?? []);
    this.#status.lastCheckpoint = { step: state.step, dir };
    // A rollback has set them already (and a checkpoint from before it holds the old ones).
    if (!this.#restarting) {
      this.#lrScale = state.lrScale ?? 1;
      this.#rollbacks = state.rollbacks ?? 0;
    }
    this.#status.validation = validationUpTo(this.#store!.db, this.runId, state.step, state.metrics ?? []);
    const d = state.data;
    if (d.images !== data.files.length || d.patchesPerImage !== data.patchesPerImage) {
      this.#event(
        'data_changed',
        `the data changed since the checkpoint (${d.images} images, ${d.patchesPerImage} patches per visit; now ${data.files.length}, ${data.patchesPerImage}): the data order will differ from an uninterrupted run`,
      );
    }
    return { dir, state };
  }

  /** A fresh ring, a loader at the data position and a trainer (restoring `resume` if given). */
  async #startTraining(resume: Resume | null): Promise<void> {
    const cfg = this.config;
    const data = this.#data!;
    const files = data.files;
    const startSeq = resume ? resume.state.data.seq : 0;
    this.#status.epoch = Math.floor(startSeq / data.patchesPerImage / files.length);
    this.#ring = SharedRing.create(cfg.ringMiB * 1024 * 1024);
    this.#loader = new LoaderPool({
      ring: this.#ring.buffer,
      files,
      workers: cfg.loaderWorkers,
      seed: cfg.seed,
      patchSize: cfg.patchSize,
      scale: cfg.scale,
      lrFilter: cfg.lrFilter,
      lrBlur: cfg.lrBlur,
      patchesPerImage: data.patchesPerImage,
      startPosition: Math.floor(startSeq / data.patchesPerImage),
      onEvent: (kind, message, data) => this.#event(kind, message, data),
    });
    await this.#supervisor.startChild({ actor: this.#loader, restart: 'permanent' });
    this.#trainer = new Trainer({
      workerData: {
        ring: this.#ring.buffer,
        config: cfg,
        preview: this.#preview,
        runId: this.runId,
        checkpointDir: this.checkpointDir,
        resume: resume?.dir ?? null,
        data: { patchesPerImage: data.patchesPerImage, images: files.length },
        valFiles: data.val,
        lrScale: this.#lrScale,
        rollbacks: this.#rollbacks,
      },
      onMessage: (m) => this.#fromTrainer(m),
    });
    // Not restarted by the supervisor: #trainerFailed continues from the newest checkpoint instead.
    await this.#supervisor.startChild({ actor: this.#trainer, restart: 'temporary' });
  }

  /**
   * The trainer thread died (a bug, out of memory). With a checkpoint to go back to, and fewer than
   * TRAINER_RESTARTS restarts in the last hour, training continues from it (ring and loader start over
   * at its data position, so the batches are the ones an uninterrupted run would see); else the run fails.
   */
  #trainerFailed(error: unknown): void {
    if (this.#shutdown || this.#failing || this.#status.state === 'stopping' || this.#restarting) return;
    if (this.#trainer?.status === 'Running') return; // an earlier trainer's last words
    if (!this.#started) {
      this.#fatal(error); // failing to start is the start's error, not something to retry
      return;
    }
    const found = this.#data ? latestValidCheckpoint(this.checkpointDir) : null;
    const message = error instanceof Error ? error.message : String(error);
    if (hasCode(error, 'SRGAN_ERR_NONFINITE')) {
      // Training went non-finite and stayed so: back to the newest checkpoint with lower learning rates,
      // a limited number of times (docs/reliability.md, "NaN and Inf").
      const { lrFactor, maxRollbacks } = this.config.nonFinite;
      const why = message.replace(/^trainer failed: /, '');
      if (this.#rollbacks >= maxRollbacks || !found) {
        const reason = !found
          ? `training diverged before the first checkpoint, so there is nothing to roll back to: ${why}`
          : `training diverged again after ${this.#rollbacks} rollback${this.#rollbacks === 1 ? '' : 's'} (nonFinite.maxRollbacks ${maxRollbacks}, learning rates × ${this.#lrScale}): ${why}`;
        this.#fatal(new SrganError('SRGAN_ERR_NONFINITE', reason));
        return;
      }
      this.#rollbacks++;
      this.#lrScale *= lrFactor;
      this.#event(
        'rollback',
        `${why}; rolling back to ${path.basename(found.dir)} (step ${found.step}) with learning rates × ${this.#lrScale} (rollback ${this.#rollbacks} of at most ${maxRollbacks})`,
        { dir: found.dir, step: found.step, lrScale: this.#lrScale, rollbacks: this.#rollbacks },
      );
      this.#log(`rolling back to ${found.dir}, learning rates × ${this.#lrScale}`);
    } else {
      if (!found || !this.#restarts.take()) {
        this.#fatal(error);
        return;
      }
      this.#event('trainer_restart', `trainer failed (${message}); continuing from ${path.basename(found.dir)} (step ${found.step})`, {
        dir: found.dir,
        step: found.step,
      });
      this.#log(`trainer failed (${message}); restarting from ${found.dir}`);
    }
    this.#restarting = true;
    void (async () => {
      try {
        if (this.#loader) await this.#supervisor.stopChild(this.#loader);
        if (this.#trainer) await this.#supervisor.stopChild(this.#trainer);
        this.#ring?.close();
        await this.#startTraining(this.#continueFrom(found.dir));
        await this.#trainer!.ready;
      } catch (err) {
        this.#restarting = false;
        this.#fatal(err);
        return;
      }
      this.#restarting = false;
    })();
  }

  #fromTrainer(m: FromTrainer): void {
    switch (m.type) {
      case 'state':
        this.#setState(m.state === 'stopped' ? this.#status.state : m.state, m.step);
        break;
      case 'stopped':
        this.#status.step = Math.max(this.#status.step, m.step);
        void this.#shutdownNow();
        break;
      default:
        this.#output.handle(m);
    }
  }

  #setState(state: DaemonState, step = this.#status.step): void {
    const before = this.#status.state;
    if (before === state || before === 'stopping' || before === 'stopped') return;
    this.#status.state = state;
    this.#status.step = Math.max(this.#status.step, step);
    this.#store?.send({ type: 'updateRun', id: this.runId, status: state, lastStep: this.#status.step });
    if (state === 'paused') {
      this.#event('pause', `paused at step ${this.#status.step}`);
      this.#store?.send({ type: 'flush' }); // a paused run's metrics are all on disk
    }
    if (state === 'training' && before === 'paused') this.#event('resume', `resumed at step ${this.#status.step}`);
    this.#log(`state ${before} -> ${state} at step ${this.#status.step}`);
    this.#server?.send({ type: 'broadcast', topic: 'status', message: { type: 'state', state, step: this.#status.step } });
  }

  #event(kind: string, message: string, data?: unknown): void {
    this.#store?.send(this.#announce(kind, message, data));
  }

  /** Tells monitor clients of an event; returns the store message that records it. */
  #announce(kind: string, message: string, data?: unknown): MetricsStoreMessage {
    const at = (data as { step?: unknown } | undefined)?.step;
    const step = typeof at === 'number' ? at : this.#status.step;
    this.#server?.send({
      type: 'broadcast',
      topic: 'events',
      message: { type: 'event', runId: this.runId, time: Date.now() / 1000, step, kind, message },
    });
    return { type: 'event', runId: this.runId, kind, message, data };
  }

  // ---- DaemonControl -------------------------------------------------------------------------------

  status(): DaemonStatus {
    const v = this.#status.validation;
    return { ...this.#status, losses: { ...this.#status.losses }, validation: v && { ...v, best: { ...v.best } } };
  }

  /**
   * runs.db could not be written, or can again (actors/metrics-store.ts keeps the writes and retries):
   * a lock held elsewhere is waited out while training goes on; a full disk or an I/O error pauses
   * training until writing works again.
   */
  #writeState(s: WriteState): MetricsStoreMessage | undefined {
    if (s.state === 'stalled') {
      this.#log(`runs.db cannot be written now (${s.code}: ${s.message}); keeping its writes in memory and retrying`);
      if (!/^SQLITE_(BUSY|LOCKED)/.test(s.code)) this.#storage.dbFull = `runs.db cannot be written (${s.code}: ${s.message})`;
      this.#checkStorage();
      return undefined;
    }
    const secs = Math.round(s.ms / 100) / 10;
    const message = `runs.db could not be written for ${secs} s (${s.code}: ${s.message}); ${s.writes} writes kept in memory meanwhile are in`;
    this.#log(`runs.db is written again after ${secs} s`);
    this.#storage.dbFull = null;
    this.#checkStorage();
    // Written by the store itself, at once: this may be its last flush, at stop.
    return this.#announce('storage', message, { code: s.code, ms: s.ms, writes: s.writes });
  }

  /** What keeps training paused by the daemon itself: the disk nearly full, runs.db not writable. */
  #storage: { dbFull: string | null; timer: NodeJS.Timeout | null } = { dbFull: null, timer: null };

  /**
   * Pauses training while the disk of $SRGAN_HOME has less than minFreeMiB free or runs.db cannot be
   * written, and resumes it once neither holds (only a pause it made itself). Run every few seconds.
   */
  #checkStorage(): void {
    if (!this.#started || this.#shutdown || this.#status.state === 'stopping') return;
    let reason = this.#storage.dbFull;
    const min = this.config.minFreeMiB;
    if (reason === null && min > 0) {
      try {
        const st = fs.statfsSync(this.paths.root);
        const freeMiB = (st.bavail * st.bsize) / 2 ** 20;
        if (freeMiB < min) reason = `the disk is nearly full: ${freeMiB.toFixed(1)} MiB free for ${this.paths.root} (minFreeMiB ${min})`;
      } catch {
        /* no statfs here: only write failures pause */
      }
    }
    const before = this.#status.pauseReason;
    if (reason !== null) {
      this.#status.pauseReason = reason; // with the latest figure
      if (before === null) {
        this.#event('storage_pause', `training paused: ${reason}`);
        this.#log(`pausing: ${reason}`);
      }
      // Paused again if someone resumed it meanwhile, or a restarted trainer came up training.
      if (before === null || this.#status.state === 'training') this.#trainer?.send({ type: 'pause' });
    } else if (before !== null) {
      this.#status.pauseReason = null;
      this.#event(
        'storage_resume',
        `training resumes: ${before.replace(/^the disk is nearly full: .*/, 'the disk was nearly full')}; that has passed`,
      );
      this.#log('resuming: storage is fine again');
      this.#trainer?.send({ type: 'resume' });
    }
  }

  pause(): DaemonState {
    this.#requireRunning('pause');
    this.#trainer?.send({ type: 'pause' });
    return this.#status.state;
  }

  resume(): DaemonState {
    this.#requireRunning('resume');
    this.#trainer?.send({ type: 'resume' });
    return this.#status.state;
  }

  stop(): DaemonState {
    void this.requestStop();
    return 'stopping';
  }

  checkpoint(): Promise<CheckpointWritten> {
    this.#requireRunning('checkpoint');
    if (!this.#trainer || this.#trainer.status !== 'Running') {
      return Promise.reject(new SrganError('SRGAN_ERR_BAD_STATE', 'cannot checkpoint: the trainer is not running'));
    }
    const done = this.#output.waitForCheckpoint();
    this.#trainer.send({ type: 'checkpoint', kind: 'manual' });
    return done;
  }

  history(limit: number): MetricsPoint[] {
    return this.#output.history(limit);
  }

  latestPreview(): ServerMessage | null {
    return this.#output.latestPreview();
  }

  #requireRunning(command: string): void {
    const s = this.#status.state;
    if (s === 'stopping' || s === 'stopped') throw new SrganError('SRGAN_ERR_BAD_STATE', `cannot ${command}: the daemon is ${s}`);
  }

  /** Stops training at the next step boundary, then shuts everything down. */
  requestStop(): Promise<number> {
    if (this.#status.state !== 'stopping' && this.#status.state !== 'stopped') {
      this.#status.state = 'stopping';
      this.#log('stopping');
      this.#server?.send({ type: 'broadcast', topic: 'status', message: { type: 'state', state: 'stopping', step: this.#status.step } });
      if (this.#trainer && this.#trainer.status === 'Running') {
        this.#trainer.send({ type: 'stop' });
        // If the trainer never answers (stuck in a long step), shut down anyway.
        setTimeout(() => void this.#shutdownNow(), 60_000).unref();
      } else {
        void this.#shutdownNow();
      }
    }
    return this.finished;
  }

  #fatal(error: unknown): void {
    if (this.#shutdown || this.#failing) return;
    this.#failing = true;
    const message = error instanceof Error ? error.message : String(error);
    this.#log(`fatal: ${message}`);
    this.#event('error', message);
    this.#exitCode = 1;
    // Something other than the trainer failed: save what it has learned before going down.
    if (this.#trainer && this.#trainer.status === 'Running' && this.#status.step > 0) {
      const saved = new Promise<void>((resolve) => {
        this.#output.waitForCheckpoint().then(
          () => resolve(),
          () => resolve(),
        );
        setTimeout(resolve, 60_000).unref();
      });
      this.#trainer.send({ type: 'checkpoint', kind: 'error' });
      void saved.then(() => this.#shutdownNow('failed'));
      return;
    }
    void this.#shutdownNow('failed');
  }

  #shutdownNow(finalStatus: 'stopped' | 'failed' = this.#exitCode ? 'failed' : 'stopped'): Promise<number> {
    this.#shutdown ??= (async () => {
      this.#status.state = 'stopping';
      if (this.#storage.timer) clearInterval(this.#storage.timer);
      this.#ring?.close();
      const store = this.#store;
      // Everyone but the store first (reverse start order puts it last), so their final words land.
      this.#event('stop', `${finalStatus} at step ${this.#status.step}`);
      // A resume that failed before taking over the run leaves the run as it was (stopped, say): it
      // did not train, and its error is in the run's events.
      if (!this.#resuming || this.#continued) {
        store?.send({ type: 'updateRun', id: this.runId, status: finalStatus, lastStep: this.#status.step, ended: true });
      }
      await this.#supervisor.stopAll();
      this.#reader?.close();
      this.#reader = null;
      this.#status.state = 'stopped';
      try {
        fs.rmSync(this.paths.daemonInfo, { force: true });
      } finally {
        releaseLock(this.paths);
      }
      this.#log(
        !this.#resuming || this.#continued
          ? `${finalStatus}; run ${this.runId} at step ${this.#status.step}`
          : `could not resume run ${this.runId}; it is left as it was`,
      );
      this.#done(this.#exitCode);
      return this.#exitCode;
    })();
    return this.#shutdown;
  }
}
