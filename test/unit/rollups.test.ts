// metric_rollups (schema v5, src/store/db.ts): the per-bucket summaries the monitor draws long curves
// from must always equal what the points say. Checked against a GROUP BY over the points after a v4 →
// v5 migration, after inserts (the trigger), and after replaced and removed points (stale buckets
// recomputed by refreshRollups, as the metrics store does in the same transaction).

import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MIGRATIONS, openDb, refreshRollups, ROLLUP_SHIFTS, SCHEMA_VERSION } from '../../src/store/db.js';
import { mulberry32 } from '../../src/util/prng.js';
import { tempDir } from '../support/tmp.js';

type Row = [
  runId: string,
  key: string,
  shift: number,
  bucket: number,
  n: number,
  lo: number,
  hi: number,
  sum: number,
  lastStep: number,
  lastValue: number,
  lastTime: number,
];

/** The rollups as the points say they should be. */
function expected(db: Database.Database): Row[] {
  return db
    .prepare(
      `WITH g AS (
         SELECT m.run_id, m.key, s.shift, m.step >> s.shift AS bucket, count(*) AS n, min(m.value) AS lo, max(m.value) AS hi,
                total(m.value) AS sum, max(m.step) AS last_step
         FROM metrics m, (SELECT 6 AS shift UNION ALL SELECT 10 UNION ALL SELECT 14) s
         GROUP BY m.run_id, m.key, s.shift, bucket)
       SELECT g.run_id, g.key, g.shift, g.bucket, g.n, g.lo, g.hi, g.sum, g.last_step, l.value, l.wall_time
       FROM g JOIN metrics l ON l.run_id = g.run_id AND l.key = g.key AND l.step = g.last_step
       ORDER BY 1, 2, 3, 4`,
    )
    .raw()
    .all() as Row[];
}

function actual(db: Database.Database): Row[] {
  return db
    .prepare('SELECT run_id, key, shift, bucket, n, lo, hi, sum, last_step, last_value, last_time FROM metric_rollups ORDER BY 1, 2, 3, 4')
    .raw()
    .all() as Row[];
}

/** Sums may differ in the last bits (another order of additions); everything else is exact. */
function expectSame(db: Database.Database): void {
  const a = actual(db);
  const e = expected(db);
  expect(a.length).toBe(e.length);
  for (let i = 0; i < a.length; i++) {
    expect(a[i][7]).toBeCloseTo(e[i][7], 6);
    expect([...a[i].slice(0, 7), ...a[i].slice(8)]).toEqual([...e[i].slice(0, 7), ...e[i].slice(8)]);
  }
}

const insert = (db: Database.Database) =>
  db.prepare(
    `INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time`,
  );

function addRun(db: Database.Database, id: string): void {
  db.prepare(
    `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir) VALUES (?, ?, 'stopped', 1, 'p', '{}', 'h', 1, '/d')`,
  ).run(id, id);
}

describe('metric_rollups', () => {
  let tmp: ReturnType<typeof tempDir>;
  let file: string;
  beforeEach(() => {
    tmp = tempDir();
    file = path.join(tmp.dir, 'runs.db');
  });
  afterEach(() => tmp.cleanup());

  it('are built from the points of a v4 file when it is migrated to v5', () => {
    const raw = new Database(file);
    for (let v = 0; v < 4; v++) raw.exec(MIGRATIONS[v]);
    raw.pragma('user_version = 4');
    addRun(raw, 'a');
    addRun(raw, 'b');
    const ins = insert(raw);
    const rand = mulberry32(1);
    raw.transaction(() => {
      for (let step = 0; step < 40_000; step += 1 + Math.floor(rand() * 3)) {
        ins.run('a', step, 'g_loss', rand(), 1000 + step / 10);
        if (step % 7 === 0) ins.run('a', step, 'val_gain', rand() - 0.5, 1000 + step / 10);
      }
      for (let step = 17; step < 300; step++) ins.run('b', step, 'g_loss', -rand(), 5000 + step);
    })();
    raw.close();
    const db = openDb(file);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(actual(db).length).toBeGreaterThan(600);
    expectSame(db);
    db.close();
  });

  it('follow every insert, replacement and removal (stale buckets recomputed by refreshRollups)', () => {
    const db = openDb(file);
    addRun(db, 'r');
    const ins = insert(db);
    const rand = mulberry32(2);
    db.transaction(() => {
      for (let step = 0; step < 20_000; step++) ins.run('r', step, 'k', Math.sin(step / 50) + rand(), 100 + step);
    })();
    expectSame(db);
    expect(db.prepare('SELECT count(*) FROM metric_rollups WHERE stale = 1').pluck().get()).toBe(0);

    // A resume: the steps after 12 345 are trained again. Their old values go, including a spike that
    // would otherwise stay in the max of its buckets forever; the checkpoint's own points are written again.
    ins.run('r', 15_000, 'k', 99, 115_100);
    db.transaction(() => {
      db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?').run('r', 12_345);
      ins.run('r', 12_345, 'k', 0.5, 200_000); // a replaced value
      expect(db.prepare('SELECT count(*) FROM metric_rollups WHERE stale = 1').pluck().get()).toBeGreaterThan(0);
      expect(refreshRollups(db)).toBeGreaterThan(0);
    })();
    expectSame(db);
    expect(db.prepare('SELECT max(hi) FROM metric_rollups').pluck().get()).toBeLessThan(99);
    // Buckets left without points are gone, not kept empty.
    expect(db.prepare('SELECT max(bucket) FROM metric_rollups WHERE shift = 6').pluck().get()).toBe(12_345 >> 6);
    for (const shift of ROLLUP_SHIFTS) {
      expect(db.prepare('SELECT sum(n) FROM metric_rollups WHERE shift = ?').pluck().get(shift)).toBe(12_346);
    }
    // Training goes on: new points land in the recomputed buckets.
    db.transaction(() => {
      for (let step = 12_346; step < 13_000; step++) ins.run('r', step, 'k', rand(), 300_000 + step);
    })();
    expectSame(db);
    db.close();
  });
});
