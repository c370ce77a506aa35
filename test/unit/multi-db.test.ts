// Several runs databases read as one (store/multi-db.ts): real SQLite files in a temp folder, read through
// db.ts's own queries.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  eventCounts,
  getParams,
  insertParams,
  lastEvent,
  latestMetrics,
  listCheckpoints,
  listRuns,
  metricCurves,
  metricKeys,
  MIGRATIONS,
  openDb,
  recordCheckpoint,
  resolveRun,
  runStorage,
  SCHEMA_VERSION,
} from '../../src/store/db.js';
import { MAX_DATABASES, openRunsDbs } from '../../src/store/multi-db.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-multi-db-');
afterEach(() => {
  for (const f of fs.readdirSync(tmp.dir)) fs.rmSync(path.join(tmp.dir, f), { recursive: true, force: true });
});

interface RunSpec {
  id: string;
  lr?: number;
  lastStep: number;
  continuedFrom?: number | null;
  worker?: string;
  status?: string;
  /** step → g_loss */
  points: [number, number][];
}

function makeDb(name: string, runs: RunSpec[]): string {
  const file = path.join(tmp.dir, name);
  const db = openDb(file);
  for (const r of runs) {
    const config = { preset: 'espcn-x2-fast', lrG: r.lr ?? 0.001 };
    db.prepare(
      `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir, last_step, worker, job, continued_from)
       VALUES (@id, @id, @status, 1700000000, 'espcn-x2-fast', @config, 'h', 1, '/d', @last, @worker, '7', @from)`,
    ).run({
      id: r.id,
      status: r.status ?? 'stopped',
      config: JSON.stringify(config),
      last: r.lastStep,
      worker: r.worker ?? null,
      from: r.continuedFrom ?? null,
    });
    insertParams(db, r.id, config);
    const ins = db.prepare('INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)');
    for (const [step, v] of r.points) ins.run(r.id, step, 'g_loss', v, 1_700_000_000 + step);
    db.prepare("INSERT INTO events (run_id, time, kind, message) VALUES (?, ?, 'start', ?)").run(r.id, 1_700_000_000 + r.lastStep, name);
    recordCheckpoint(db, { run_id: r.id, step: r.lastStep, time: 1, path: `/ck/${r.id}/${r.lastStep}`, checksum: 'x', kind: 'stop' });
  }
  db.close();
  return file;
}

const range = (from: number, to: number, f: (s: number) => number): [number, number][] =>
  Array.from({ length: to - from + 1 }, (_, i) => [from + i, f(from + i)]);

describe('openRunsDbs', () => {
  it('reads one file as openDb does, and several as one: runs, curves, params, events and checkpoints of each', () => {
    const a = makeDb('a.db', [{ id: 'r1', lastStep: 3, points: range(1, 3, (s) => s) }]);
    const b = makeDb('b.db', [{ id: 'r2', lr: 0.5, lastStep: 2, points: range(1, 2, (s) => 10 * s) }]);
    const one = openRunsDbs([a]);
    expect(listRuns(one).map((r) => r.id)).toEqual(['r1']);
    one.close();

    const db = openRunsDbs([a, b]);
    try {
      expect(
        listRuns(db)
          .map((r) => r.id)
          .sort(),
      ).toEqual(['r1', 'r2']);
      expect(resolveRun(db, 'r2').id).toBe('r2');
      expect(metricCurves(db, 'r2', ['g_loss']).map((p) => [p.step, p.value])).toEqual([
        [1, 10],
        [2, 20],
      ]);
      expect(latestMetrics(db, 'r1')).toMatchObject([{ key: 'g_loss', step: 3, value: 3 }]);
      expect(getParams(db, 'r2').get('lrG')).toBe(0.5);
      expect(eventCounts(db, 'r1')).toEqual([{ kind: 'start', count: 1 }]);
      expect(listCheckpoints(db, 'r2').map((c) => c.step)).toEqual([2]);
      expect(runStorage(db, 'r1').fileBytes).toBe(fs.statSync(a).size + fs.statSync(b).size);
      expect(() => db.exec("DELETE FROM db0.runs WHERE id = 'r1'")).toThrow(/readonly/);
    } finally {
      db.close();
    }
  });

  it('a run in two files is one run: the row of its latest stretch, and where both hold a step, that file wins', () => {
    // Worker A trained steps 1..27 and died; worker B continued from A's checkpoint at step 20 to 40.
    const a = makeDb('a.db', [{ id: 'r', lastStep: 27, status: 'training', worker: 'a:1', points: range(1, 27, (s) => s) }]);
    const b = makeDb('b.db', [
      { id: 'r', lastStep: 40, continuedFrom: 20, worker: 'b:2', points: range(18, 40, (s) => s + 0.5) },
      { id: 'other', lastStep: 1, points: [[1, 1]] },
    ]);
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const db = openRunsDbs(order);
      try {
        const runs = listRuns(db);
        expect(runs.map((r) => r.id).sort()).toEqual(['other', 'r']);
        expect(resolveRun(db, 'r')).toMatchObject({ status: 'stopped', last_step: 40, worker: 'b:2', continued_from: 20 });
        const curve = metricCurves(db, 'r', ['g_loss']).map((p) => [p.step, p.value]);
        expect(curve).toEqual([...range(1, 17, (s) => s), ...range(18, 40, (s) => s + 0.5)]);
        expect(metricKeys(db, 'r')).toEqual(['g_loss']);
        expect(latestMetrics(db, 'r')).toMatchObject([{ step: 40, value: 40.5 }]);
        expect([...getParams(db, 'r').keys()]).toEqual(['lrG', 'preset']); // one copy
        expect(eventCounts(db, 'r')).toEqual([{ kind: 'start', count: 2 }]); // both files' events
        expect(lastEvent(db, 'r', 'start')?.message).toBe('b.db');
      } finally {
        db.close();
      }
    }
  });

  it('merges a file of an old schema with a new one, filling the columns it lacks', () => {
    const oldFile = path.join(tmp.dir, 'v1.db');
    const raw = new Database(oldFile);
    raw.exec(MIGRATIONS[0]);
    raw.pragma('user_version = 1');
    raw
      .prepare(
        `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir, last_step)
         VALUES ('old', 'old', 'stopped', 1600000000, 'espcn-x2-fast', '{"lrG":0.1}', 'h', 1, '/d', 5)`,
      )
      .run();
    raw.prepare("INSERT INTO metrics VALUES ('old', 5, 'g_loss', 0.25, 1600000005)").run();
    raw.close();
    const b = makeDb('b.db', [{ id: 'new', lastStep: 1, points: [[1, 1]] }]);
    const db = openRunsDbs([oldFile, b]);
    try {
      expect(resolveRun(db, 'old')).toMatchObject({ last_step: 5, worker: null, continued_from: null });
      expect(latestMetrics(db, 'old')).toMatchObject([{ step: 5, value: 0.25 }]);
      expect(listCheckpoints(db, 'old')).toEqual([]);
      expect(getParams(db, 'old').size).toBe(0); // v1 kept no params table
    } finally {
      db.close();
    }
    expect(new Database(oldFile, { readonly: true }).pragma('user_version', { simple: true })).toBe(1); // not migrated
  });

  it('names the file that is missing, not a database, or newer; and refuses too many', () => {
    const a = makeDb('a.db', []);
    expect(() => openRunsDbs([a, path.join(tmp.dir, 'nope.db')])).toThrow(/--db .*nope\.db: no such file/);
    const junk = path.join(tmp.dir, 'junk.db');
    fs.writeFileSync(junk, 'this is not sqlite at all, just some text that is long enough'.repeat(20));
    expect(() => openRunsDbs([a, junk])).toThrow(/--db .*junk\.db: not a runs database/);
    const newer = path.join(tmp.dir, 'newer.db');
    const n = new Database(newer);
    n.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    n.close();
    expect(() => openRunsDbs([a, newer])).toThrow(new RegExp(`newer\\.db has schema version ${SCHEMA_VERSION + 1}, newer than this srgan`));
    const many = Array.from({ length: MAX_DATABASES + 1 }, (_, i) => makeDb(`m${i}.db`, []));
    expect(() => openRunsDbs(many)).toThrow(`at most ${MAX_DATABASES} databases`);
  });
});
