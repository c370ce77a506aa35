// What the daemon does with bad input and signals: clear errors, nothing left half-running, the run's
// row tells the truth.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { hasExited } from '../../src/util/lock-file.js';

interface RunsJson {
  db: string;
  runs: { id: string; status: string; last_step: number }[];
}

async function writeImages(dir: string, n: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const w = 96;
    const data = Buffer.alloc(w * w * 3);
    for (let p = 0; p < data.length; p++) data[p] = (p * (i + 3) + ((p / 288) | 0) * 11) & 255;
    await sharp(data, { raw: { width: w, height: w, channels: 3 } })
      .png()
      .toFile(path.join(dir, `p${i}.png`));
  }
}

describe('daemon failure handling', () => {
  let tmp: ReturnType<typeof tempDir>;
  let home: string;
  const pids: number[] = [];
  beforeEach(() => {
    tmp = tempDir('srgan-fail-');
    home = path.join(tmp.dir, 'home');
  });
  afterEach(async () => {
    for (const pid of pids.splice(0)) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
    tmp.cleanup();
  });

  it('refuses a bad config before starting anything, naming the field', () => {
    const config = path.join(tmp.dir, 'bad.json');
    fs.writeFileSync(config, JSON.stringify({ batchsize: 4 }));
    const r = srgan(home, ['start', '--config', config]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('SRGAN_ERR_CONFIG: unknown config field "batchsize" (did you mean "batchSize"?)');
    expect(fs.existsSync(path.join(home, 'daemon.lock'))).toBe(false);

    fs.writeFileSync(config, '{ not json');
    expect(srgan(home, ['start', '--config', config]).stderr).toMatch(/config file .*bad\.json is not valid JSON/);
    expect(srgan(home, ['start', '--data', path.join(tmp.dir, 'missing')]).stderr).toMatch(/dataDir.*is not a directory/);
    expect(srgan(home, ['start', '--port', 'eighty']).stderr).toMatch(/--port must be an integer, got "eighty"/);
    expect(srgan(home, ['start', '--bogus']).status).toBe(2);
  });

  it('commands without a daemon say so; --help works for every command', () => {
    for (const cmd of ['pause', 'resume', 'stop']) {
      const r = srgan(home, [cmd]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/SRGAN_ERR_NOT_RUNNING: no daemon is running in/);
    }
    expect(srganJson(home, ['status'])).toMatchObject({ state: 'stopped', pid: null });
    expect(srganJson<RunsJson>(home, ['runs']).runs).toEqual([]);
    for (const cmd of ['start', 'status', 'pause', 'resume', 'stop', 'runs']) {
      const r = srgan(home, [cmd, '--help']);
      expect(r.status, cmd).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: srgan ${cmd}`));
    }
    expect(srgan(home, ['frobnicate']).stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('a forced backend that cannot load fails the start with the reason, and the run is marked failed', async () => {
    const data = path.join(tmp.dir, 'photos');
    await writeImages(data, 2);
    const r = srgan(home, ['start', '--data', data, '--backend', 'tfjs-node']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/backend "tfjs-node" cannot be used: @tensorflow\/tfjs-node is not installed/);
    expect(srganJson<RunsJson>(home, ['runs']).runs[0]).toMatchObject({ status: 'failed' });
    expect(fs.existsSync(path.join(home, 'daemon.lock'))).toBe(false);
  });

  it('SIGTERM stops training cleanly, writes a checkpoint at the last step and marks the run stopped', async () => {
    const data = path.join(tmp.dir, 'photos');
    await writeImages(data, 3);
    const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--data', data]);
    pids.push(info.pid);
    const db = path.join(home, 'runs.db');
    await waitFor(
      'first steps',
      () => {
        const d = new Database(db, { readonly: true });
        try {
          return (d.prepare('SELECT count(*) FROM metrics').pluck().get() as number) > 0;
        } finally {
          d.close();
        }
      },
      120_000,
    );
    process.kill(info.pid, 'SIGTERM');
    await waitFor('exit', () => hasExited(info.pid), 60_000);
    const run = srganJson<RunsJson>(home, ['runs']).runs[0];
    expect(run).toMatchObject({ id: info.runId, status: 'stopped' });
    expect(run.last_step).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(home, 'daemon.lock'))).toBe(false);
    const d = new Database(db, { readonly: true });
    expect(d.pragma('integrity_check', { simple: true })).toBe('ok');
    // Nothing learned is lost: the stop checkpoint is at the last step, recorded in the database.
    const ckpt = d.prepare('SELECT step, kind, path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1').get(info.runId) as {
      step: number;
      kind: string;
      path: string;
    };
    d.close();
    expect(ckpt).toMatchObject({ step: run.last_step, kind: 'stop' });
    expect(fs.existsSync(path.join(ckpt.path, 'generator', 'model.json'))).toBe(true);
  });

  it('a data set where no image loads ends the run as failed, with the reasons as events', async () => {
    const data = path.join(tmp.dir, 'broken');
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(data, 'a.jpg'), 'not a jpeg');
    fs.writeFileSync(path.join(data, 'b.png'), Buffer.alloc(0));
    const r = srgan(home, ['start', '--data', data, '--json']);
    if (r.status === 0) pids.push((JSON.parse(r.stdout) as { pid: number }).pid);
    else expect(r.stderr).toMatch(/SRGAN_ERR_DAEMON_START/);
    const run = await waitFor(
      'the run to fail',
      () => {
        const runs = srganJson<RunsJson>(home, ['runs']).runs;
        return runs[0]?.status === 'failed' ? runs[0] : null;
      },
      60_000,
    );
    await waitFor('the daemon to exit', () => srganJson<{ state: string }>(home, ['status']).state === 'stopped', 30_000);
    const d = new Database(path.join(home, 'runs.db'), { readonly: true });
    const events = d.prepare('SELECT kind, message FROM events WHERE run_id = ? ORDER BY id').all(run.id) as {
      kind: string;
      message: string;
    }[];
    d.close();
    expect(
      events
        .filter((e) => e.kind === 'data_error')
        .map((e) => e.message)
        .join('\n'),
    ).toMatch(/a\.jpg[\s\S]*b\.png|b\.png[\s\S]*a\.jpg/);
    expect(events.some((e) => e.kind === 'error' && /every training image failed to load/.test(e.message))).toBe(true);
  });
});
