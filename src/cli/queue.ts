// `srgan queue add|list|status|cancel`: runs waiting on a BullMQ queue in Redis for `srgan worker`s
// (docs/scale.md). The config is resolved and checked here, before anything is queued.

import path from 'node:path';
import { resolveConfig } from '../config/resolve.js';
import { withInitWeights } from '../daemon/init-weights.js';
import {
  cancelRunJob,
  listRunJobs,
  MAX_PRIORITY,
  queueRun,
  REDIS_URL_ENV,
  redisUrl,
  runJobStatus,
  type RunJobSummary,
} from '../daemon/queue.js';
import { SrganError } from '../util/errors.js';
import { intFlag, json, type Command, type Values } from './flags.js';
import { formatNumber, formatTime, printTable } from './format.js';
import { runOverrides } from './run-overrides.js';

const ACTIONS = ['add', 'list', 'status', 'cancel'] as const;

export const queueCommand: Command = {
  summary: 'put runs on a queue in Redis for srgan workers on any machine, and see or cancel them',
  usage:
    'srgan queue add [--preset NAME] [--data DIR] [--config FILE] [--name NAME] [--priority N] [--seed N] [--max-steps N] [--init FILE] [--checkpoint-root DIR] | ' +
    'srgan queue list | srgan queue status JOB | srgan queue cancel JOB   [--redis URL] [--json]',
  positionals: [0, 2],
  options: {
    redis: { type: 'string' },
    preset: { type: 'string' },
    data: { type: 'string' },
    config: { type: 'string' },
    name: { type: 'string' },
    priority: { type: 'string' },
    seed: { type: 'string' },
    'max-steps': { type: 'string' },
    init: { type: 'string' },
    backend: { type: 'string' },
    'checkpoint-root': { type: 'string' },
    precision: { type: 'string' },
    json,
  },
  help: {
    add: 'queue a run: its config (preset, --config file, flags) is resolved and checked now; prints the job id',
    list: 'the jobs: active (with the worker, step and latest losses), waiting in the order they will be taken, finished, cancelled',
    'status JOB': 'one job',
    'cancel JOB': 'remove a waiting job; ask the worker of an active one to stop its run with a checkpoint',
    '--redis URL': `the Redis the queue lives in (default $${REDIS_URL_ENV}), e.g. redis://127.0.0.1:6379`,
    '--preset NAME': 'training preset (default espcn-x2-fast)',
    '--data DIR': 'the data: a folder every worker can read at this path (made by srgan prepare, or photos)',
    '--config FILE': 'JSON file of config fields merged over the preset (docs/config.md)',
    '--name NAME': 'a name for the job and its run',
    '--priority N': `1..${MAX_PRIORITY}: lower is taken first (default 1000)`,
    '--seed N': 'as for srgan start; so are --max-steps N, --init FILE, --backend NAME and --precision P',
    '--checkpoint-root DIR':
      "where the run writes its checkpoints (DIR/RUN/): a folder every worker reaches at this path, so that when a worker dies another continues the run from its newest checkpoint (default: each worker's $SRGAN_HOME/checkpoints, no failover)",
    '--json': 'print the job(s) as JSON',
  },
  async run(v, args) {
    const [action, job] = args;
    if (action === undefined)
      throw new SrganError('SRGAN_ERR_CONFIG', `srgan queue needs an action: ${ACTIONS.join(', ')} (srgan queue --help)`);
    if (!(ACTIONS as readonly string[]).includes(action)) {
      throw new SrganError('SRGAN_ERR_CONFIG', `srgan queue: unknown action ${JSON.stringify(action)}; one of ${ACTIONS.join(', ')}`);
    }
    const needsJob = action === 'status' || action === 'cancel';
    if (needsJob !== (job !== undefined)) {
      throw new SrganError('SRGAN_ERR_CONFIG', needsJob ? `srgan queue ${action} needs a JOB id` : `srgan queue ${action} takes no JOB id`);
    }
    if (action !== 'add') {
      for (const flag of [
        'preset',
        'data',
        'config',
        'name',
        'priority',
        'seed',
        'max-steps',
        'init',
        'backend',
        'checkpoint-root',
        'precision',
      ]) {
        if (v[flag] !== undefined) throw new SrganError('SRGAN_ERR_CONFIG', `--${flag} belongs to srgan queue add`);
      }
    }
    const url = redisUrl(typeof v.redis === 'string' ? v.redis : undefined);
    switch (action) {
      case 'add':
        return add(v, url);
      case 'list': {
        const jobs = await listRunJobs(url);
        if (v.json) console.log(JSON.stringify({ jobs }));
        else printJobs(jobs);
        return 0;
      }
      case 'status': {
        const s = await runJobStatus(url, job);
        if (v.json) console.log(JSON.stringify(s));
        else printJob(s);
        return 0;
      }
      default: {
        const s = await cancelRunJob(url, job);
        if (v.json) console.log(JSON.stringify(s));
        else
          console.log(
            s.state === 'cancelled'
              ? `job ${s.id} cancelled (it had not started)`
              : `job ${s.id}: its worker was asked to stop the run with a checkpoint`,
          );
        return 0;
      }
    }
  },
};

async function add(v: Values, url: string): Promise<number> {
  // Checked here, as srgan start checks it: a worker must never meet a config it cannot run. A data
  // folder is queued as an absolute path, which every worker must be able to read.
  const overrides = withInitWeights(runOverrides(v));
  const config = resolveConfig(overrides);
  if (config.dataDir) config.dataDir = path.resolve(config.dataDir);
  if (config.init) config.init = path.resolve(config.init);
  if (config.checkpointRoot) config.checkpointRoot = path.resolve(config.checkpointRoot);
  const priority = v.priority === undefined ? undefined : intFlag('--priority', v.priority, 1);
  const s = await queueRun(url, config, { ...(typeof v.name === 'string' ? { name: v.name } : {}), ...(priority ? { priority } : {}) });
  if (v.json) console.log(JSON.stringify(s));
  else
    console.log(
      `queued job ${s.id}, run ${s.runId}: ${s.name ?? s.preset} (${s.preset}, data ${s.dataDir ?? 'the demo set'}, priority ${s.priority})`,
    );
  return 0;
}

function progressText(s: RunJobSummary): string {
  const p = s.progress;
  if (!p) return '-';
  const loss = p.losses?.g_loss;
  return [p.worker, p.step !== undefined && `step ${p.step}`, loss !== undefined && `g_loss ${formatNumber(loss)}`]
    .filter(Boolean)
    .join(', ');
}

function printJobs(jobs: RunJobSummary[]): void {
  if (jobs.length === 0) {
    console.log('the run queue is empty');
    return;
  }
  printTable(
    ['JOB', 'RUN', 'STATE', 'PRIORITY', 'NAME', 'PRESET', 'ADDED', 'PROGRESS'],
    jobs.map((j) => [
      j.id,
      j.runId,
      j.cancelRequested ? `${j.state} (cancel requested)` : j.state,
      String(j.priority),
      j.name ?? '-',
      j.preset,
      formatTime(j.addedAt / 1000),
      j.failedReason ? `failed: ${j.failedReason}` : progressText(j),
    ]),
  );
}

function printJob(s: RunJobSummary): void {
  console.log(`job:       ${s.id}${s.name ? `  (${s.name})` : ''}`);
  console.log(`run:       ${s.runId}`);
  console.log(`state:     ${s.state}${s.cancelRequested ? ' (cancel requested)' : ''}`);
  console.log(`preset:    ${s.preset}`);
  console.log(`data:      ${s.dataDir ?? 'the demo set'}`);
  console.log(`priority:  ${s.priority}`);
  console.log(`added:     ${formatTime(s.addedAt / 1000)} by ${s.addedBy}`);
  if (s.startedAt) console.log(`started:   ${formatTime(s.startedAt / 1000)}`);
  if (s.finishedAt) console.log(`finished:  ${formatTime(s.finishedAt / 1000)}`);
  console.log(`progress:  ${progressText(s)}`);
  if (s.failedReason) console.log(`failed:    ${s.failedReason}`);
}
