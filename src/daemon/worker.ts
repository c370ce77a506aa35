// `srgan worker` (docs/scale.md): takes queued runs from the BullMQ queue one at a time and trains each
// in a Daemon of its own home, as `srgan start` would (same monitor, control commands and runs.db). While
// a run trains, the worker reports its step, latest losses and newest checkpoint on the job, and answers
// a cancel request by stopping the run (which writes a checkpoint). A run that ends at maxSteps or by a
// stop completes its job; one that fails fails it with the reason.
//
// Failover: a job's run id is fixed when it is queued, and its checkpoints go to config.checkpointRoot,
// which workers share. A worker that dies stops renewing its lock on the job; after `stallSeconds`
// BullMQ's stalled-job check (in every worker) puts the job back on the queue, and the worker that takes
// it continues the run from the newest valid checkpoint there (Daemon's `queued`). A worker that is
// stopped (SIGTERM) stops its run with a checkpoint and hands the job back at once.

import os from 'node:os';
import { Worker, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { Daemon } from './daemon.js';
import { newRunId } from './run-id.js';
import { CANCEL_KEY_PREFIX, connectRedis, QUEUE_NAME, type RunJobData, type RunProgress } from './queue.js';
import { checkpointFolders, latestValidCheckpoint } from '../models/train/checkpoint.js';
import { homePaths, runCheckpointDir } from '../store/home.js';
import { resolveConfig } from '../config/resolve.js';

/** How often a training run's progress goes to its job, and the cancel request and lock are looked at. */
const REPORT_MS = 2000;
/** Default seconds without a lock renewal after which a worker's job goes to another worker. */
export const DEFAULT_STALL_SECONDS = 30;
/**
 * Times a job may be taken back from a worker that stopped renewing its lock before it fails instead: a
 * run that kills every worker it lands on must not go round for ever.
 */
const MAX_STALLS = 5;

export interface WorkerOptions {
  redisUrl: string;
  /** $SRGAN_HOME of this worker (default: the environment's). */
  home?: string;
  /** A job whose worker has not renewed its lock for this long goes back on the queue (default 30). */
  stallSeconds?: number;
  log?: (line: string) => void;
}

export interface RunJobResult {
  runId: string;
  lastStep: number;
  worker: string;
}

export class RunWorker {
  readonly name = `${os.hostname()}:${process.pid}`;
  readonly #o: WorkerOptions;
  readonly #log: (line: string) => void;
  #worker: Worker<RunJobData, RunJobResult> | null = null;
  /** BullMQ's connection (a worker's blocks on the queue), and one for cancel requests and locks. */
  #connection: Redis | null = null;
  #redis: Redis | null = null;
  #current: Daemon | null = null;
  #closing = false;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#log = options.log ?? ((line) => console.log(`${new Date().toISOString()} ${line}`));
  }

  /** Connects and starts taking jobs. */
  async start(): Promise<void> {
    const stallMs = Math.round((this.#o.stallSeconds ?? DEFAULT_STALL_SECONDS) * 1000);
    const connection = await connectRedis(this.#o.redisUrl, { forWorker: true });
    this.#connection = connection;
    this.#redis = await connectRedis(this.#o.redisUrl, { forWorker: true });
    this.#worker = new Worker<RunJobData, RunJobResult>(QUEUE_NAME, (job, token) => this.#run(job, token), {
      connection,
      concurrency: 1,
      lockDuration: stallMs,
      stalledInterval: Math.max(500, Math.round(stallMs / 2)),
      maxStalledCount: MAX_STALLS,
    });
    this.#worker.on('failed', (job, err) => this.#log(`job ${job?.id ?? '?'} failed: ${err.message}`));
    this.#worker.on('completed', (job, r) => this.#log(`job ${job.id} completed: run ${r.runId} at step ${r.lastStep}`));
    this.#worker.on('stalled', (id) => this.#log(`job ${id}: its worker stopped renewing its lock; back on the queue`));
    this.#worker.on('error', (err) => this.#log(`queue: ${err.message}`));
    this.#log(`worker ${this.name} takes runs from ${this.#o.redisUrl} (queue ${QUEUE_NAME})`);
  }

  /**
   * Stops taking jobs, and stops the run in progress with a checkpoint; its job goes back on the queue,
   * for any worker (this one too, later) to continue from that checkpoint.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const run = this.#current;
    if (run) await run.requestStop();
    await this.#worker?.close();
    this.#connection?.disconnect(); // given to BullMQ, which leaves it open
    this.#redis?.disconnect();
  }

  async #run(job: Job<RunJobData, RunJobResult>, token: string | undefined): Promise<RunJobResult> {
    const id = String(job.id);
    let runId = job.data.runId;
    if (!runId) {
      // Queued by an srgan from before run ids were fixed at queueing: fix it now, for any later worker.
      runId = newRunId();
      await job.updateData({ ...job.data, runId });
    }
    const paths = homePaths(this.#o.home);
    const dir = runCheckpointDir(paths, runId, job.data.config);
    this.#log(`job ${id}: run ${runId} (${job.data.name ?? job.data.config.preset}); checkpoints in ${dir}`);
    // An earlier worker may have trained it to the end and died before completing the job (verified only
    // then: otherwise the daemon finds the checkpoint to resume from).
    const maxSteps = resolveConfig(job.data.config).maxSteps;
    const newest = checkpointFolders(dir).at(-1);
    const last = newest && maxSteps !== null && newest.step >= maxSteps ? latestValidCheckpoint(dir) : null;
    if (last && maxSteps !== null && last.step >= maxSteps) {
      this.#log(`job ${id}: run ${runId} has a checkpoint at step ${last.step}, its last; nothing to train`);
      return { runId, lastStep: last.step, worker: this.name };
    }
    const daemon = new Daemon({
      overrides: job.data.config,
      queued: { runId, worker: this.name, job: id, name: job.data.name },
      ...(this.#o.home ? { home: this.#o.home } : {}),
      log: this.#log,
    });
    this.#current = daemon;
    const redis = this.#redis!;
    const lockKey = this.#worker!.toKey(`${id}:lock`);
    let cancelled = false;
    let lost = false;
    const report = async () => {
      const s = daemon.status();
      const progress: RunProgress = { worker: this.name, runId, step: s.step, losses: s.losses, checkpoint: s.lastCheckpoint };
      // Another worker holds the job now (this one was cut off from Redis past its lock): two workers must
      // not train one run, so this one stops.
      const holder = await redis.get(lockKey);
      if (!lost && !cancelled && token !== undefined && holder !== token) {
        lost = true;
        this.#log(
          `job ${id}: this worker no longer holds the job (${holder === null ? 'its lock expired' : 'another worker took it'}); stopping run ${runId}`,
        );
        void daemon.requestStop();
        return;
      }
      await job.updateProgress(progress);
      if (!cancelled && (await redis.exists(`${CANCEL_KEY_PREFIX}${id}`)) === 1) {
        cancelled = true;
        this.#log(`job ${id}: cancel requested; stopping run ${runId}`);
        void daemon.requestStop();
      }
    };
    let timer: NodeJS.Timeout | null = null;
    try {
      await daemon.start();
      timer = setInterval(
        () => void report().catch((err: Error) => this.#log(`job ${id}: progress not reported: ${err.message}`)),
        REPORT_MS,
      );
      const code = await daemon.finished;
      clearInterval(timer);
      timer = null;
      const step = daemon.status().step;
      if (lost) throw new Error(`the worker lost the job: run ${runId} stopped at step ${step} with a checkpoint`);
      await report().catch(() => {});
      if (cancelled) throw new Error(`cancelled: run ${runId} stopped at step ${step} with a checkpoint`);
      if (this.#closing && code === 0 && token !== undefined && (maxSteps === null || step < maxSteps)) {
        // Handed back: the next worker to take it continues from the checkpoint the stop wrote.
        await job.moveToWait(token);
        this.#log(`job ${id}: back on the queue; run ${runId} stopped at step ${step} with a checkpoint`);
        throw new WaitingError();
      }
      if (code !== 0) throw new Error(`run ${runId} failed at step ${step} (its events say why: srgan show ${runId})`);
      return { runId, lastStep: step, worker: this.name };
    } finally {
      if (timer) clearInterval(timer);
      await redis.del(`${CANCEL_KEY_PREFIX}${id}`).catch(() => 0);
      this.#current = null;
    }
  }
}
