// `srgan queue add|list|status|cancel` (docs/scale.md) against a real Redis (Debian's redis-server,
// started here on a free 127.0.0.1 port): the job holds the resolved config, a bad config is refused
// before anything is queued, the list is in the order workers will take the jobs, a waiting job is
// cancelled, the queue survives a Redis restart, and an unreachable Redis or a missing URL is a clear error.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { srgan } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { startRedis, type TestRedis, REDIS_SERVER } from '../support/redis.js';
import type { RunJobSummary } from '../../src/daemon/queue.js';

const tmp = tempDir('srgan-queue-');
let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
  tmp.cleanup();
});

const home = () => path.join(tmp.dir, 'home');
function queue(args: string[], env: Record<string, string> = {}) {
  Object.assign(process.env, env);
  try {
    return srgan(home(), ['queue', ...args]);
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
  }
}
function queueJson<T>(args: string[]): T {
  const r = queue([...args, '--redis', redis.url, '--json']);
  if (r.status !== 0) throw new Error(`srgan queue ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('srgan queue', () => {
  it('has a Redis server to test against', () => {
    expect(fs.existsSync(REDIS_SERVER)).toBe(true);
  });

  it('queues runs with their resolved config, lists them in the order they will be taken, shows and cancels one', async () => {
    const data = path.join(tmp.dir, 'photos');
    fs.mkdirSync(data);
    const cfg = path.join(tmp.dir, 'lr.json');
    fs.writeFileSync(cfg, JSON.stringify({ phases: [{ steps: null, lrG: 3e-4, lrD: 1e-4 }] }));
    const a = queueJson<RunJobSummary>(['add', '--name', 'first', '--data', path.relative(process.cwd(), data), '--max-steps', '100']);
    expect(a).toMatchObject({ name: 'first', state: 'prioritized', preset: 'espcn-x2-fast', dataDir: data, priority: 1000 });
    const b = queueJson<RunJobSummary>(['add', '--name', 'urgent', '--priority', '5', '--config', cfg, '--preset', 'compact-x2']);
    const c = queueJson<RunJobSummary>(['add', '--name', 'last', '--priority', '2000']);
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);

    const { jobs } = queueJson<{ jobs: RunJobSummary[] }>(['list']);
    expect(jobs.map((j) => j.name)).toEqual(['urgent', 'first', 'last']); // the order workers take them
    expect(jobs.map((j) => j.state)).toEqual(['prioritized', 'prioritized', 'prioritized']);

    const text = queue(['list', '--redis', redis.url]).stdout;
    expect(text).toMatch(/^JOB\s+RUN\s+STATE\s+PRIORITY\s+NAME\s+PRESET\s+ADDED\s+PROGRESS$/m);
    expect(text).toMatch(new RegExp(`^${b.id}\\s+${b.runId}\\s+prioritized\\s+5\\s+urgent\\s+compact-x2\\s`, 'm'));

    // The job carries the whole config, resolved now: a worker runs exactly this.
    const full = queueJson<RunJobSummary>(['status', b.id]);
    expect(b.runId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{4}$/); // fixed now, for every worker that takes the job
    expect(full).toMatchObject({
      id: b.id,
      runId: b.runId,
      name: 'urgent',
      preset: 'compact-x2',
      state: 'prioritized',
      cancelRequested: false,
    });
    expect(full.config).toMatchObject({ preset: 'compact-x2', phases: [{ steps: null, lrG: 3e-4, lrD: 1e-4 }], dataDir: null, seed: 1 });
    expect(queueJson<RunJobSummary>(['status', a.id]).config).toMatchObject({ dataDir: data, maxSteps: 100 });

    const cancelled = queueJson<RunJobSummary>(['cancel', a.id]);
    expect(cancelled).toMatchObject({ id: a.id, state: 'cancelled' });
    expect(queueJson<RunJobSummary>(['status', a.id]).state).toBe('cancelled');
    const after = queueJson<{ jobs: RunJobSummary[] }>(['list']).jobs;
    expect(after.map((j) => [j.name, j.state])).toEqual([
      ['urgent', 'prioritized'],
      ['last', 'prioritized'],
      ['first', 'cancelled'],
    ]);
    expect(queue(['status', a.id, '--redis', redis.url]).stdout).toMatch(/^state: {5}cancelled$/m);
  });

  it('refuses a bad config before queueing anything, naming the field', () => {
    const before = queueJson<{ jobs: RunJobSummary[] }>(['list']).jobs.length;
    const bad = path.join(tmp.dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ batchSize: 'eight' }));
    const r = queue(['add', '--config', bad, '--redis', redis.url]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/SRGAN_ERR_CONFIG: config field "batchSize" must be/);
    expect(queue(['add', '--preset', 'no-such', '--redis', redis.url]).stderr).toMatch(/SRGAN_ERR_CONFIG: config field "preset"/);
    expect(queue(['add', '--priority', '0', '--redis', redis.url]).stderr).toMatch(/--priority/);
    expect(queueJson<{ jobs: RunJobSummary[] }>(['list']).jobs.length).toBe(before);
  });

  it('keeps its jobs through a Redis restart', async () => {
    const ids = queueJson<{ jobs: RunJobSummary[] }>(['list']).jobs.map((j) => [j.id, j.state]);
    await redis.restart();
    expect(queueJson<{ jobs: RunJobSummary[] }>(['list']).jobs.map((j) => [j.id, j.state])).toEqual(ids);
  }, 60_000);

  it('says what is wrong: no Redis URL, an unreachable Redis, an unknown job or action', () => {
    const env = { ...process.env };
    delete env.SRGAN_REDIS_URL;
    const none = queue(['list']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/SRGAN_ERR_CONFIG: no Redis to queue runs on: give --redis URL or set SRGAN_REDIS_URL/);
    const fromEnv = queue(['list', '--json'], { SRGAN_REDIS_URL: redis.url });
    expect(fromEnv.status, fromEnv.stderr).toBe(0);
    const down = queue(['list', '--redis', 'redis://127.0.0.1:1']);
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/SRGAN_ERR_QUEUE: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect(queue(['status', '999999', '--redis', redis.url]).stderr).toMatch(/SRGAN_ERR_QUEUE: no job 999999 on the run queue/);
    expect(queue(['launch', '--redis', redis.url]).stderr).toMatch(/unknown action "launch"; one of add, list, status, cancel/);
    expect(queue(['status', '--redis', redis.url]).stderr).toMatch(/srgan queue status needs a JOB id/);
    expect(queue(['list', '--preset', 'x', '--redis', redis.url]).stderr).toMatch(/--preset belongs to srgan queue add/);
    expect(queue([]).stderr).toMatch(/srgan queue needs an action/);
    expect(queue(['--help']).stdout).toMatch(/^usage: srgan queue add/);
    const worker = (args: string[]) => srgan(path.join(tmp.dir, 'cli-home'), ['worker', ...args]);
    expect(worker(['--concurrency', '2', '--redis', redis.url]).stderr).toMatch(
      /SRGAN_ERR_CONFIG: --concurrency 2: a worker trains one run at a time .*one worker per GPU, each with its own SRGAN_HOME/,
    );
    expect(worker(['--stall-seconds', '0', '--redis', redis.url]).stderr).toMatch(/--stall-seconds must be an integer >= 1, got "0"/);
    expect(worker(['--help']).stdout).toMatch(/--stall-seconds N/);
  });
});
