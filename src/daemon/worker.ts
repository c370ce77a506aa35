// `srgan worker` (docs/scale.md): takes queued runs from the BullMQ queue one at a time and trains each
// in a Daemon of its own home, as `srgan start` would (same monitor, control commands and runs.db). While
// a run trains, the worker reports its step, latest losses and newest checkpoint on the job, and answers
// a cancel request by stopping the run (which writes a checkpoint). A run that ends at maxSteps or by a
// stop completes its job; one that fails fails it with the reason.

import os from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { Daemon } from './daemon.js';
import { CANCEL_KEY_PREFIX, connectRedis, QUEUE_NAME, type RunJobData, type RunProgress } from './queue.js';

/** How often a training run's progress goes to its job, and the cancel request is looked for. */
const REPORT_MS = 2000;

export interface WorkerOptions {
  redisUrl: string;
  /** $SRGAN_HOME of this worker (default: the environment's). */
  home?: string;
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
  /** BullMQ's connection (a worker's blocks on the queue), and one for the cancel requests. */
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
    const connection = await connectRedis(this.#o.redisUrl, { forWorker: true });
    this.#connection = connection;
    this.#redis = await connectRedis(this.#o.redisUrl, { forWorker: true });
    this.#worker = new Worker<RunJobData, RunJobResult>(QUEUE_NAME, (job) => this.#run(job), { connection, concurrency: 1 });
    this.#worker.on('failed', (job, err) => this.#log(`job ${job?.id ?? '?'} failed: ${err.message}`));
    this.#worker.on('completed', (job, r) => this.#log(`job ${job.id} completed: run ${r.runId} at step ${r.lastStep}`));
    this.#worker.on('error', (err) => this.#log(`queue: ${err.message}`));
    this.#log(`worker ${this.name} takes runs from ${this.#o.redisUrl} (queue ${QUEUE_NAME})`);
  }

  /**
   * Stops taking jobs, and stops the run in progress with a checkpoint; its job fails with that reason
   * (handing it to another worker needs the shared checkpoint root, not written yet: docs/scale.md).
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

  async #run(job: Job<RunJobData, RunJobResult>): Promise<RunJobResult> {
    const id = String(job.id);
    this.#log(`job ${id}: ${job.data.name ?? job.data.config.preset}`);
    const daemon = new Daemon({ overrides: job.data.config, ...(this.#o.home ? { home: this.#o.home } : {}), log: this.#log });
    this.#current = daemon;
    const redis = this.#redis!;
    let cancelled = false;
    const report = async () => {
      const s = daemon.status();
      const progress: RunProgress = {
        worker: this.name,
        runId: daemon.runId,
        step: s.step,
        losses: s.losses,
        checkpoint: s.lastCheckpoint,
      };
      await job.updateProgress(progress);
      if (!cancelled && (await redis.exists(`${CANCEL_KEY_PREFIX}${id}`)) === 1) {
        cancelled = true;
        this.#log(`job ${id}: cancel requested; stopping run ${daemon.runId}`);
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
      await report().catch(() => {});
      const step = daemon.status().step;
      if (cancelled) throw new Error(`cancelled: run ${daemon.runId} stopped at step ${step} with a checkpoint`);
      if (this.#closing) throw new Error(`the worker stopped: run ${daemon.runId} stopped at step ${step} with a checkpoint`);
      if (code !== 0) throw new Error(`run ${daemon.runId} failed at step ${step} (its events say why: srgan show ${daemon.runId})`);
      return { runId: daemon.runId, lastStep: step, worker: this.name };
    } finally {
      if (timer) clearInterval(timer);
      await redis.del(`${CANCEL_KEY_PREFIX}${id}`).catch(() => 0);
      this.#current = null;
    }
  }
}
