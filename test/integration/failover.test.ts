// The run queue across workers (docs/scale.md), on a real redis-server: two `srgan worker`s with homes
// of their own share a checkpoint root. They complete four queued runs between them; a worker killed with
// kill -9 mid-run has its run continued by the other, whose curve then equals an uninterrupted run's step
// for step (read across both runs.db files with --db); a Redis restart during a run loses no job; a
// worker stopped with SIGTERM hands its job back, and a third worker continues it.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueJson, srganJson, waitFor } from '../support/cli.js';
import { DIST, tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { Queue } from 'bullmq';
import { QUEUE_NAME, type RunJobData, type RunJobSummary } from '../../src/daemon/queue.js';
import { DAEMON_SERIES_KEYS } from '../../src/daemon/trainer-output.js';

const tmp = tempDir('srgan-failover-');
const photos = path.join(tmp.dir, 'photos');
const root = path.join(tmp.dir, 'shared-checkpoints');
const homeA = path.join(tmp.dir, 'home-a');
const homeB = path.join(tmp.dir, 'home-b');
const dbs = ['--db', path.join(homeA, 'runs.db'), '--db', path.join(homeB, 'runs.db')];
let redis: TestRedis;

interface TestWorker {
  proc: ChildProcess;
  name: string;
  home: string;
  log: () => string;
  exited: Promise<number | null>;
}
const workers: TestWorker[] = [];

async function startWorker(home: string): Promise<TestWorker> {
  fs.mkdirSync(home, { recursive: true });
  const proc = spawn(process.execPath, [path.join(DIST, '../bin/srgan.js'), 'worker', '--redis', redis.url, '--stall-seconds', '3'], {
    env: { ...process.env, SRGAN_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const w: TestWorker = { proc, name: '', home, log: () => log, exited };
  workers.push(w);
  const m = await waitFor('the worker to connect', () => /worker (\S+) takes runs from/.exec(log), 30_000, 100);
  w.name = m[1];
  return w;
}

beforeAll(async () => {
  redis = await startRedis();
  await writePhotos(photos, 6, 80, 72);
}, 30_000);
afterAll(async () => {
  for (const w of workers) {
    if (process.env.SRGAN_DEBUG_WORKER) console.log(w.log());
    w.proc.kill('SIGKILL');
  }
  await redis?.stop();
  tmp.cleanup();
});

const queue = <T>(args: string[]) => queueJson<T>(path.join(tmp.dir, 'cli-home'), redis.url, args);
const job = (id: string) => queue<RunJobSummary>(['status', id]);
const logs = () => workers.map((w) => `--- ${w.name} (${w.home})\n${w.log()}`).join('\n');

function add(name: string, extra: Record<string, unknown>, priority = 1000): RunJobSummary {
  const file = path.join(tmp.dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(tinyRun(photos, { checkpointRoot: root, ...extra })));
  return queue<RunJobSummary>(['add', '--name', name, '--priority', String(priority), '--config', file]);
}

async function completed(ids: string[], timeoutMs: number): Promise<RunJobSummary[]> {
  return waitFor(
    `jobs ${ids.join(', ')} to complete`,
    () => {
      const jobs = ids.map(job);
      const failed = jobs.find((j) => j.state === 'failed');
      if (failed) throw new Error(`job ${failed.id} failed: ${failed.failedReason}`);
      return jobs.every((j) => j.state === 'completed') ? jobs : null;
    },
    timeoutMs,
    500,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs()}`);
  });
}

function runRow(home: string, runId: string): Record<string, unknown> | undefined {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, status, last_step, worker, job, continued_from FROM runs WHERE id = ?').get(runId) as
      Record<string, unknown> | undefined;
  } finally {
    db.close();
  }
}

/** A run's training curves (not the daemon's timings), read across both workers' databases. */
function curves(runId: string): [number, string, number][] {
  const out = srganJson<{ points: { step: number; key: string; value: number }[] }>(homeA, ['metrics', runId, ...dbs]);
  return out.points.filter((p) => !(DAEMON_SERIES_KEYS as readonly string[]).includes(p.key)).map((p) => [p.step, p.key, p.value]);
}

const step = (n: number) => `step-${String(n).padStart(8, '0')}`;

describe('workers sharing a checkpoint root', () => {
  let a: TestWorker;
  let b: TestWorker;
  /** The worker killed in the second test: its home never sees the runs queued after. */
  let dead: TestWorker;

  it('complete four queued runs between them, each recording its worker and job', async () => {
    [a, b] = await Promise.all([startWorker(homeA), startWorker(homeB)]);
    const queued = [1, 2, 3, 4].map((i) => add(`four-${i}`, { maxSteps: 20, checkpointEvery: 10, seed: i }));
    const done = await completed(
      queued.map((j) => j.id),
      240_000,
    );
    const byWorker = new Map<string, number>();
    for (const j of done) {
      expect(j.progress).toMatchObject({ runId: j.runId, step: 20 });
      expect([a.name, b.name]).toContain(j.progress!.worker);
      byWorker.set(j.progress!.worker!, (byWorker.get(j.progress!.worker!) ?? 0) + 1);
      expect(fs.existsSync(path.join(root, j.runId, step(20)))).toBe(true);
      const home = j.progress!.worker === a.name ? homeA : homeB;
      expect(runRow(home, j.runId)).toMatchObject({
        status: 'stopped',
        last_step: 20,
        worker: j.progress!.worker,
        job: j.id,
        continued_from: null,
      });
      expect(fs.existsSync(path.join(home, 'checkpoints', j.runId))).toBe(false); // they went to the shared root
    }
    expect(byWorker.size).toBe(2); // both took work

    // A job whose run already has its last checkpoint (its worker died before telling Redis) just completes.
    const first = queue<RunJobSummary>(['status', done[0].id]);
    const q = new Queue<RunJobData>(QUEUE_NAME, { connection: { url: redis.url } });
    const again = await q.add('again', { runId: first.runId, config: first.config!, name: 'again', addedBy: 'test' });
    await q.close();
    const [ja] = await completed([String(again.id)], 60_000);
    expect(ja.progress).toBeNull();
    const said = new RegExp(`job ${again.id}: run ${first.runId} has a checkpoint at step 20, its last; nothing to train`);
    await waitFor('the worker to say why', () => said.test(logs()), 10_000, 100);
    const listed = srganJson<{ dbs: string[]; runs: { id: string; worker: string }[] }>(homeA, ['runs', ...dbs]);
    expect(listed.dbs).toHaveLength(2);
    expect(listed.runs.map((r) => r.id).sort()).toEqual(queued.map((j) => j.runId).sort());
  }, 300_000);

  it('a worker killed with kill -9 mid-run: the other continues its run, and the curve equals an uninterrupted run step for step', async () => {
    const cfg = { maxSteps: 600, checkpointEvery: 50, seed: 9 };
    const f = add('failover', cfg, 1);
    const ref = add('reference', cfg, 2);
    const active = await waitFor(
      'the run to pass its first checkpoints',
      () => {
        const j = job(f.id);
        return j.state === 'active' && (j.progress?.step ?? 0) >= 120 ? j : null;
      },
      180_000,
      200,
    );
    const victim = active.progress!.worker === a.name ? a : b;
    const survivor = victim === a ? b : a;
    victim.proc.kill('SIGKILL');
    expect(await victim.exited).toBe(null);

    const [jf, jr] = await completed([f.id, ref.id], 300_000);
    expect(jf.progress!.worker).toBe(survivor.name);
    expect(jr.progress!.step).toBe(600);
    expect(survivor.log()).toMatch(new RegExp(`job ${f.id}: its worker stopped renewing its lock`));
    // The survivor's database took the run over from the newest checkpoint the victim wrote.
    const took = runRow(survivor.home, f.runId)!;
    expect(took).toMatchObject({ status: 'stopped', last_step: 600, worker: survivor.name, job: f.id });
    expect(took.continued_from as number).toBeGreaterThanOrEqual(100);
    expect((took.continued_from as number) % 50).toBe(0);
    expect(runRow(victim.home, f.runId)).toMatchObject({ worker: victim.name, continued_from: null });

    const resumed = curves(f.runId);
    const uninterrupted = curves(ref.runId);
    expect(new Set(resumed.map((p) => p[0])).size).toBe(600);
    expect([...new Set(resumed.map((p) => p[1]))]).toEqual(expect.arrayContaining(['g_loss', 'g_pix', 'd_steps']));
    expect(resumed.length).toBe(uninterrupted.length);
    expect(resumed).toEqual(uninterrupted);
    const shown = srganJson<{ run: { status: string; last_step: number; continued_from: number } }>(homeA, ['show', f.runId, ...dbs]);
    expect(shown.run).toMatchObject({ status: 'stopped', last_step: 600, continued_from: took.continued_from });
    b = survivor;
    dead = victim;
  }, 600_000);

  it('a Redis restart during a run loses no job; SIGTERM hands the job back and another worker continues it', async () => {
    const long = add('through-restart', { maxSteps: 1000, checkpointEvery: 50, seed: 11 }, 1);
    const waiting = add('waiting', { maxSteps: 10, checkpointEvery: 10, seed: 12 }, 2);
    await waitFor('the run to train', () => ((job(long.id).progress?.step ?? 0) >= 30 ? true : null), 120_000, 200);
    await redis.restart();
    const restarted = Date.now();
    const [jl, jw] = await completed([long.id, waiting.id], 300_000);
    expect(jl.progress!.step).toBe(1000);
    expect(jl.finishedAt!).toBeGreaterThan(restarted); // the run went on through the restart
    expect(jw.progress!.step).toBe(10);

    const handed = add('handed-back', { maxSteps: 400, checkpointEvery: 1000, seed: 13 });
    await waitFor('the run to train', () => ((job(handed.id).progress?.step ?? 0) >= 30 ? true : null), 120_000, 200);
    b.proc.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    const back = job(handed.id);
    expect(back.state).toMatch(/^(waiting|prioritized)$/);
    const stoppedAt = Number(new RegExp(`job ${handed.id}: back on the queue; run \\S+ stopped at step (\\d+)`).exec(b.log())![1]);
    expect(fs.existsSync(path.join(root, handed.runId, step(stoppedAt)))).toBe(true);

    const c = await startWorker(dead.home); // the home of the killed worker, which never saw this run
    const [jh] = await completed([handed.id], 180_000);
    expect(jh.progress).toMatchObject({ worker: c.name, step: 400 });
    expect(runRow(dead.home, handed.runId)).toMatchObject({ status: 'stopped', last_step: 400, worker: c.name, continued_from: stoppedAt });
    c.proc.kill('SIGTERM');
    expect(await c.exited).toBe(0);
  }, 600_000);
});
