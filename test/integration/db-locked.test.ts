// Another process holding a write transaction on runs.db for 15 s, as a user's sqlite3 shell in the
// middle of a BEGIN IMMEDIATE does (docs/reliability.md, "A locked or full database"): training goes on,
// the daemon's writes wait in memory and are retried, and once the lock is gone every step's metrics
// are there, once each; the wait is recorded as an event.
import fs from 'node:fs';
import path from 'node:path';
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { hasExited } from '../../src/util/lock-file.js';

const tmp = tempDir('srgan-dblock-');
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

// 15 s: past the retry back-off's longest wait (5 s, src/actors/metrics-store.ts), several times over.
const HOLD_MS = 15_000;
const require = createRequire(import.meta.url);

// Holds a write transaction on the database for HOLD_MS in a process of its own, as a shell would.
const HOLDER = `
const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
const db = new Database(process.argv[2]);
db.exec('BEGIN IMMEDIATE');
db.prepare("INSERT INTO events (run_id, time, kind, message) VALUES (NULL, 0, 'shell', 'a user holding the write lock')").run();
process.send('locked');
setTimeout(() => { db.exec('COMMIT'); db.close(); process.send('released'); process.exit(0); }, Number(process.argv[3]));
`;

describe('a locked runs.db', () => {
  it('loses no metric and does not stop training while another process holds its write lock for 15 s', async () => {
    const photos = path.join(tmp.dir, 'photos');
    await writePhotos(photos, 6, 80, 72);
    const home = path.join(tmp.dir, 'home');
    fs.mkdirSync(home);
    const cfg = path.join(home, 'run.json');
    fs.writeFileSync(cfg, JSON.stringify(tinyRun(photos, { previewEvery: 10, checkpointEvery: 50, seed: 4 })));
    const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', cfg]);
    pids.push(info.pid);
    const status = () => srganJson<{ state: string; step: number }>(home, ['status']);
    await waitFor('training', () => status().step >= 5, 120_000);

    const script = path.join(tmp.dir, 'holder.cjs');
    fs.writeFileSync(script, HOLDER);
    const holder = fork(script, [path.join(home, 'runs.db'), String(HOLD_MS)], { stdio: 'inherit' });
    await new Promise<void>((resolve) => holder.once('message', () => resolve()));
    const lockedAt = status().step;
    const released = new Promise<void>((resolve) => holder.on('message', (m) => m === 'released' && resolve()));
    // Meanwhile it trains, and answers.
    await waitFor('steps while the database is locked', () => status().step >= lockedAt + 20, 25_000, 250);
    await released;
    const releasedAt = status().step;
    expect(status().state).toBe('training');
    expect(releasedAt).toBeGreaterThan(lockedAt + 20);
    await waitFor('steps after the lock is gone', () => status().step >= releasedAt + 5, 60_000);
    // The writes kept meanwhile reach the file within the retry delay (at most 5 s), while training goes on.
    const written = () => {
      const db = new Database(path.join(home, 'runs.db'), { readonly: true });
      try {
        return db.prepare("SELECT count(*) FROM events WHERE kind = 'storage'").pluck().get() as number;
      } finally {
        db.close();
      }
    };
    await waitFor('the kept writes in runs.db', () => written() > 0, 15_000, 250);
    expect(status().state).toBe('training');
    expect(srganJson<{ state: string }>(home, ['stop']).state).toBe('stopped');

    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    try {
      const last = db.prepare('SELECT last_step FROM runs WHERE id = ?').pluck().get(info.runId) as number;
      const steps = db
        .prepare("SELECT step FROM metrics WHERE run_id = ? AND key = 'g_loss' ORDER BY step")
        .pluck()
        .all(info.runId) as number[];
      expect(steps).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      const previews = db.prepare('SELECT step FROM previews WHERE run_id = ? ORDER BY step').pluck().all(info.runId) as number[];
      expect(previews).toEqual([1, ...Array.from({ length: Math.floor(last / 10) }, (_, i) => 10 * (i + 1))]); // the first step's, then every 10
      const waits = db.prepare("SELECT message FROM events WHERE run_id = ? AND kind = 'storage'").pluck().all(info.runId) as string[];
      expect(waits.join('\n')).toMatch(
        /runs\.db could not be written for \d+(\.\d)? s \(SQLITE_BUSY: database is locked\); \d+ writes kept in memory meanwhile are in/,
      );
      expect(db.prepare("SELECT count(*) FROM events WHERE kind = 'shell'").pluck().get()).toBe(1);
    } finally {
      db.close();
    }
  }, 240_000);
});
