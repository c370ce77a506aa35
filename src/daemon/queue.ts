// The run queue (docs/scale.md): runs waiting on a BullMQ queue in Redis, for `srgan worker`s on any
// number of machines to take one at a time. A job holds the run's whole resolved config, checked before it
// is queued, so a worker never meets a config it cannot run.
//
// Cancelling: a job not yet taken is removed, and remembered as cancelled (the hash CANCELLED_KEY, for
// `status`); a job a worker has taken gets a cancel request (CANCEL_KEY_PREFIX + id), which that worker
// answers by stopping the run with a checkpoint.

import os from 'node:os';
import { Job, Queue, type JobType } from 'bullmq';
import { Redis } from 'ioredis';
import type { RunConfig } from '../config/presets.js';
import { newRunId } from './run-id.js';
import { SrganError } from '../util/errors.js';

export const QUEUE_NAME = 'srgan-runs';
export const REDIS_URL_ENV = 'SRGAN_REDIS_URL';
const CANCELLED_KEY = 'srgan:cancelled';
export const CANCEL_KEY_PREFIX = 'srgan:cancel:';
/** Priorities as BullMQ has them: 1 is taken first; a job without --priority gets the default. */
export const DEFAULT_PRIORITY = 1000;
export const MAX_PRIORITY = 2_097_152;

/** What a queued job carries. */
export interface RunJobData {
  /**
   * The run's id, fixed when it is queued: every worker that takes the job trains this run, continuing
   * from its newest checkpoint under config.checkpointRoot when an earlier worker left one.
   */
  runId: string;
  config: RunConfig;
  name: string | null;
  /** Where `srgan queue add` ran: host and user. */
  addedBy: string;
}

/** What a worker reports on its job as it trains (BullMQ progress). */
export interface RunProgress {
  worker?: string;
  runId?: string;
  step?: number;
  losses?: Record<string, number>;
  checkpoint?: { step: number; dir: string } | null;
}

export type RunJobState =
  'waiting' | 'prioritized' | 'delayed' | 'active' | 'waiting-children' | 'completed' | 'failed' | 'cancelled' | 'unknown';

export interface RunJobSummary {
  id: string;
  runId: string;
  name: string | null;
  state: RunJobState;
  priority: number;
  preset: string;
  dataDir: string | null;
  addedBy: string;
  addedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  progress: RunProgress | null;
  failedReason: string | null;
  cancelRequested: boolean;
  /** The run's resolved config (`status` only). */
  config?: RunConfig;
}

/** The Redis URL: --redis, else $SRGAN_REDIS_URL; SRGAN_ERR_CONFIG when neither is given. */
export function redisUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? env[REDIS_URL_ENV];
  if (!url)
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `no Redis to queue runs on: give --redis URL or set ${REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379)`,
    );
  if (!/^rediss?:\/\//.test(url))
    throw new SrganError('SRGAN_ERR_CONFIG', `the Redis URL must start with redis:// or rediss://, got ${JSON.stringify(url)}`);
  return url;
}

/** A connection for one command: fails at once, with the URL, when Redis cannot be reached. */
export async function connectRedis(url: string, { forWorker = false } = {}): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 5000,
    // BullMQ's workers block on Redis and must retry for ever; a command gives up at once.
    maxRetriesPerRequest: forWorker ? null : 1,
    ...(forWorker ? {} : { retryStrategy: () => null }),
  });
  // Reported by the failing call (with the socket's reason, which ioredis gives only here), not as an
  // unhandled event.
  let reason: Error | null = null;
  redis.on('error', (err: Error) => (reason ??= err));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    const why = reason ?? (err as Error);
    throw new SrganError('SRGAN_ERR_QUEUE', `cannot reach Redis at ${url}: ${why.message}`, { cause: why });
  }
  return redis;
}

/** Runs `fn` with the run queue on a fresh connection, closed afterwards. */
export async function withQueue<T>(url: string, fn: (queue: Queue<RunJobData>, redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectRedis(url);
  const queue = new Queue<RunJobData>(QUEUE_NAME, { connection: redis });
  try {
    return await fn(queue, redis);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/** Queues a run of `config` (already resolved and checked); returns its job. */
export async function queueRun(url: string, config: RunConfig, opts: { name?: string; priority?: number } = {}): Promise<RunJobSummary> {
  const priority = opts.priority ?? DEFAULT_PRIORITY;
  if (!Number.isInteger(priority) || priority < 1 || priority > MAX_PRIORITY) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--priority must be an integer in 1..${MAX_PRIORITY} (1 is taken first), got ${priority}`);
  }
  return withQueue(url, async (queue, redis) => {
    const data: RunJobData = { runId: newRunId(), config, name: opts.name ?? null, addedBy: `${os.userInfo().username}@${os.hostname()}` };
    const job = await queue.add(opts.name ?? config.preset, data, { priority, removeOnComplete: false, removeOnFail: false });
    return summarize(job, await job.getState(), redis);
  });
}

const STATES: JobType[] = ['active', 'prioritized', 'waiting', 'delayed', 'completed', 'failed'];

/** Every job, active first, then waiting in the order they will be taken, then finished and cancelled ones. */
export async function listRunJobs(url: string): Promise<RunJobSummary[]> {
  return withQueue(url, async (queue, redis) => {
    const out: RunJobSummary[] = [];
    for (const state of STATES) {
      const jobs = await queue.getJobs([state], 0, -1, state !== 'completed' && state !== 'failed');
      for (const job of jobs) out.push(await summarize(job, state as RunJobState, redis));
    }
    for (const text of Object.values(await redis.hgetall(CANCELLED_KEY))) out.push(JSON.parse(text) as RunJobSummary);
    return out;
  });
}

/** One job, by id; SRGAN_ERR_QUEUE when there is none. */
export async function runJobStatus(url: string, id: string): Promise<RunJobSummary> {
  return withQueue(url, async (queue, redis) => {
    const job = await Job.fromId<RunJobData>(queue, id);
    if (job) return { ...(await summarize(job, await job.getState(), redis)), config: job.data.config };
    const cancelled = await redis.hget(CANCELLED_KEY, id);
    if (cancelled) return JSON.parse(cancelled) as RunJobSummary;
    throw new SrganError('SRGAN_ERR_QUEUE', `no job ${id} on the run queue (srgan queue list shows them)`);
  });
}

/**
 * Cancels a job: one not yet taken is removed (and remembered as cancelled); a taken one gets a cancel
 * request its worker answers by stopping the run with a checkpoint. A finished job cannot be cancelled.
 */
export async function cancelRunJob(url: string, id: string): Promise<RunJobSummary> {
  return withQueue(url, async (queue, redis) => {
    const job = await Job.fromId<RunJobData>(queue, id);
    if (!job) {
      if (await redis.hexists(CANCELLED_KEY, id)) return JSON.parse((await redis.hget(CANCELLED_KEY, id))!) as RunJobSummary;
      throw new SrganError('SRGAN_ERR_QUEUE', `no job ${id} on the run queue (srgan queue list shows them)`);
    }
    const state = (await job.getState()) as RunJobState;
    if (state === 'completed' || state === 'failed') {
      throw new SrganError(
        'SRGAN_ERR_QUEUE',
        `job ${id} has ${state === 'completed' ? 'completed' : 'failed'}: there is nothing to cancel`,
      );
    }
    if (state === 'active') {
      await redis.set(`${CANCEL_KEY_PREFIX}${id}`, String(Date.now()));
      return summarize(job, state, redis);
    }
    const summary = { ...(await summarize(job, state, redis)), state: 'cancelled' as const, finishedAt: Date.now() };
    await job.remove();
    await redis.hset(CANCELLED_KEY, id, JSON.stringify(summary));
    return summary;
  });
}

async function summarize(job: Job<RunJobData>, state: RunJobState, redis: Redis): Promise<RunJobSummary> {
  const progress = typeof job.progress === 'object' && job.progress !== null ? (job.progress as RunProgress) : null;
  return {
    id: String(job.id),
    runId: job.data.runId,
    name: job.data.name,
    state,
    priority: job.opts.priority ?? 0,
    preset: job.data.config.preset,
    dataDir: job.data.config.dataDir,
    addedBy: job.data.addedBy,
    addedAt: job.timestamp,
    startedAt: job.processedOn ?? null,
    finishedAt: job.finishedOn ?? null,
    progress,
    failedReason: job.failedReason || null,
    cancelRequested: state === 'active' && (await redis.exists(`${CANCEL_KEY_PREFIX}${String(job.id)}`)) === 1,
  };
}
