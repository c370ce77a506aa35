// `srgan worker` (docs/scale.md) against a real Redis: queued runs are trained one at a time in the
// worker's home, in priority order, each job completed with its run and last step and its progress
// reported meanwhile; a cancelled active job stops its run with a checkpoint and fails with the reason;
// SIGTERM stops the worker.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueJson, waitFor } from '../support/cli.js';
import { DIST, tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import type { RunJobSummary } from '../../src/daemon/queue.js';

const tmp = tempDir('srgan-worker-');
const photos = path.join(tmp.dir, 'photos');
const home = path.join(tmp.dir, 'worker-home');
let redis: TestRedis;
let worker: ChildProcess | null = null;
let log = '';

beforeAll(async () => {
  redis = await startRedis();
  await writePhotos(photos, 6, 80, 72);
}, 30_000);
afterAll(async () => {
  if (process.env.SRGAN_DEBUG_WORKER) console.log(log);
  worker?.kill('SIGKILL');
  await redis?.stop();
  tmp.cleanup();
});

const queue = <T>(args: string[]) => queueJson<T>(path.join(tmp.dir, 'cli-home'), redis.url, args);
const job = (id: string) => queue<RunJobSummary>(['status', id]);

describe('srgan worker', () => {
  it('trains queued runs one at a time in priority order, reports progress, completes each job with its run', async () => {
    const cfg = (name: string, extra: Record<string, unknown>) => {
      const file = path.join(tmp.dir, `${name}.json`);
      fs.writeFileSync(file, JSON.stringify(tinyRun(photos, { checkpointEvery: 10, seed: 3, ...extra })));
      return file;
    };
    const a = queue<RunJobSummary>(['add', '--name', 'a', '--config', cfg('a', { maxSteps: 30 })]);
    const b = queue<RunJobSummary>(['add', '--name', 'b', '--priority', '1', '--config', cfg('b', { maxSteps: 20 })]);
    fs.mkdirSync(home);
    worker = spawn(process.execPath, [path.join(DIST, '../bin/srgan.js'), 'worker', '--redis', redis.url], {
      env: { ...process.env, SRGAN_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (log += d.toString()));

    const done = await waitFor(
      'both jobs completed',
      () => {
        const [ja, jb] = [job(a.id), job(b.id)];
        return ja.state === 'completed' && jb.state === 'completed' ? [ja, jb] : null;
      },
      180_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${log}`);
    });
    const [ja, jb] = done;
    expect(jb.startedAt!).toBeLessThan(ja.startedAt!); // priority 1 first
    expect(jb.finishedAt!).toBeLessThanOrEqual(ja.startedAt!); // one at a time
    for (const [j, steps] of [
      [ja, 30],
      [jb, 20],
    ] as const) {
      expect(j.progress).toMatchObject({ step: steps, worker: expect.stringMatching(/:\d+$/), checkpoint: { step: steps } });
      expect(j.progress!.losses!.g_loss).toBeGreaterThan(0);
    }
    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    try {
      const runs = db.prepare('SELECT id, status, last_step FROM runs ORDER BY created_at').all() as {
        id: string;
        status: string;
        last_step: number;
      }[];
      expect(runs.map((r) => [r.id, r.status, r.last_step])).toEqual([
        [jb.progress!.runId, 'stopped', 20],
        [ja.progress!.runId, 'stopped', 30],
      ]);
    } finally {
      db.close();
    }
  }, 240_000);

  it('a cancelled active job stops its run with a checkpoint and fails with the reason; SIGTERM stops the worker', async () => {
    const file = path.join(tmp.dir, 'long.json');
    fs.writeFileSync(file, JSON.stringify(tinyRun(photos, { checkpointEvery: 1000, seed: 4 })));
    const c = queue<RunJobSummary>(['add', '--name', 'long', '--config', file]);
    const active = await waitFor(
      'the job to train',
      () => {
        const j = job(c.id);
        return j.state === 'active' && (j.progress?.step ?? 0) > 5 ? j : null;
      },
      120_000,
      300,
    );
    expect(queue<RunJobSummary>(['cancel', c.id])).toMatchObject({ state: 'active', cancelRequested: true });
    const failed = await waitFor('the job to end', () => (job(c.id).state === 'failed' ? job(c.id) : null), 60_000, 300);
    expect(failed.failedReason).toMatch(new RegExp(`^cancelled: run ${active.progress!.runId} stopped at step \\d+ with a checkpoint$`));
    const step = Number(/at step (\d+)/.exec(failed.failedReason!)![1]);
    expect(fs.existsSync(path.join(home, 'checkpoints', active.progress!.runId!, `step-${String(step).padStart(8, '0')}`))).toBe(true);

    const exited = new Promise<number | null>((resolve) => worker!.once('exit', (code) => resolve(code)));
    worker!.kill('SIGTERM');
    expect(await exited).toBe(0);
    worker = null;
    expect(log).toMatch(/SIGTERM: stopping the worker/);
  }, 90_000);
});
