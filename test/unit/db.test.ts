import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bestMetric,
  getParams,
  insertParams,
  latestMetrics,
  listCheckpoints,
  listEvals,
  listRuns,
  markCheckpointDeleted,
  metricCurves,
  MIGRATIONS,
  openDb,
  recordCheckpoint,
  recordEval,
  resolveRun,
  SCHEMA_VERSION,
  validationSummary,
} from '../../src/store/db.js';
import { SrganError } from '../../src/util/errors.js';
import { tempDir } from '../support/tmp.js';

const CONFIG = {
  preset: 'espcn-x2-fast',
  batchSize: 8,
  pixelWeight: 1,
  emaDecay: 0.999,
  jpeg: false,
  resetOptimizers: true,
  dataDir: null,
  pixelLoss: 'l1',
  generator: { kind: 'espcn', channels: 32, skip: false },
  perceptual: { kind: 'off', path: null, weight: 0 },
  phases: [
    { steps: 100, lrG: 0.001 },
    { steps: 200, lrG: 0.0001 },
  ],
  tags: [],
  extra: {},
};

function insertRun(
  db: Database.Database,
  id: string,
  config: object,
  extra: { name?: string; status?: string; created_at?: number } = {},
): void {
  db.prepare(
    `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir)
     VALUES (?, ?, ?, ?, 'espcn-x2-fast', ?, 'host', 1, '/data')`,
  ).run(id, extra.name ?? id, extra.status ?? 'stopped', extra.created_at ?? 1_700_000_000, JSON.stringify(config));
}

function insertMetrics(db: Database.Database, runId: string, points: [step: number, key: string, value: number][]): void {
  const ins = db.prepare('INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)');
  for (const [step, key, value] of points) ins.run(runId, step, key, value, 1_700_000_000 + step);
}

/** A database as the v1 code left it: only the v1 SQL, user_version 1, with a run, metrics and more. */
function makeV1(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(MIGRATIONS[0]);
  db.pragma('user_version = 1');
  insertRun(db, 'old-run', CONFIG, { name: 'old run' });
  insertRun(db, 'bad-config', { batchSize: 4 });
  db.prepare("UPDATE runs SET config = 'not json' WHERE id = 'bad-config'").run();
  insertMetrics(db, 'old-run', [
    [1, 'g_loss', 0.5],
    [2, 'g_loss', 0.25],
    [1, 'psnr_train', 20],
    [2, 'psnr_train', 22],
  ]);
  db.prepare("INSERT INTO events (run_id, time, kind, message) VALUES ('old-run', 1, 'start', 'hi')").run();
  db.prepare(
    "INSERT INTO previews (run_id, step, time, width, height, panels, png) VALUES ('old-run', 2, 1, 4, 2, '[]', x'89504e47')",
  ).run();
  db.close();
}

/** A database as the v2 code left it: the v1 and v2 SQL, user_version 2, with checkpoint rows (no gain column). */
function makeV2(file: string): void {
  makeV1(file);
  const db = new Database(file);
  db.exec(MIGRATIONS[1]);
  db.pragma('user_version = 2');
  const ins = db.prepare(
    "INSERT INTO checkpoints (run_id, step, time, path, checksum, psnr, kind) VALUES ('old-run', ?, ?, ?, 'sha256:x', ?, ?)",
  );
  ins.run(1, 10, '/c/step-1', 21.5, 'best');
  ins.run(2, 20, '/c/step-2', null, 'stop');
  db.close();
}

/**
 * A database as the v3 code left it, with what v3 allowed and v4 does not: a step logged twice for a
 * key (the first value of a step a resumed run trained again, left beside the new one).
 */
function makeV3(file: string): void {
  makeV2(file);
  const db = new Database(file);
  db.exec(MIGRATIONS[2]);
  db.pragma('user_version = 3');
  insertMetrics(db, 'old-run', [
    [2, 'g_loss', 0.2],
    [3, 'g_loss', 0.125],
    [2, 'g_loss', 0.3],
  ]);
  db.close();
}

const names = (db: Database.Database, type: string) =>
  db.prepare('SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE ? ORDER BY name').pluck().all(type, 'sqlite_%');

describe('runs database schema', () => {
  let tmp: ReturnType<typeof tempDir>;
  let file: string;
  beforeEach(() => {
    tmp = tempDir();
    file = path.join(tmp.dir, 'runs.db');
  });
  afterEach(() => tmp.cleanup());

  it('creates v7 from an empty file (v0 → v1 → … → v7)', () => {
    const db = openDb(file);
    expect(SCHEMA_VERSION).toBe(7);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(names(db, 'table')).toEqual([
      'checkpoints',
      'evals',
      'events',
      'metric_rollups',
      'metrics',
      'params',
      'previews',
      'runs',
      'thin_marks',
      'thinning',
    ]);
    expect(names(db, 'view')).toEqual(['latest_metrics']);
    expect(names(db, 'index')).toEqual([
      'checkpoints_run_step',
      'evals_run_time',
      'events_run_time',
      'metric_rollups_stale',
      'metrics_run_key_step',
      'params_key_value',
      'previews_run_step',
      'previews_run_time',
    ]);
    expect(
      db.prepare("SELECT name, type FROM pragma_table_info('runs') WHERE name IN ('worker', 'job', 'continued_from') ORDER BY cid").all(),
    ).toEqual([
      { name: 'worker', type: 'TEXT' },
      { name: 'job', type: 'TEXT' },
      { name: 'continued_from', type: 'INTEGER' },
    ]);
    expect(db.prepare("SELECT name, type FROM pragma_table_info('checkpoints') WHERE name IN ('psnr', 'gain') ORDER BY cid").all()).toEqual(
      [
        { name: 'psnr', type: 'REAL' },
        { name: 'gain', type: 'REAL' },
      ],
    );
    // One row per (run, key, step): the index is unique, and the store's upsert relies on it.
    expect(db.prepare("SELECT \"unique\" FROM pragma_index_list('metrics') WHERE name = 'metrics_run_key_step'").pluck().get()).toBe(1);
    expect(db.prepare("SELECT name FROM pragma_index_info('metrics_run_key_step') ORDER BY seqno").pluck().all()).toEqual([
      'run_id',
      'key',
      'step',
    ]);
    insertRun(db, 'r', CONFIG);
    insertMetrics(db, 'r', [
      [1, 'g_loss', 0.5],
      [1, 'd_loss', 0.5],
      [2, 'g_loss', 0.25],
    ]);
    expect(() => insertMetrics(db, 'r', [[1, 'g_loss', 0.4]])).toThrow(
      /UNIQUE constraint failed: metrics.run_id, metrics.key, metrics.step/,
    );
    db.close();
    // Opening again is a no-op.
    openDb(file).close();
  });

  it('upgrades a v1 file in place, keeping its data and backfilling params from runs.config', () => {
    makeV1(file);
    const db = openDb(file);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare('SELECT count(*) FROM metrics').pluck().get()).toBe(4);
    expect(db.prepare('SELECT count(*) FROM events').pluck().get()).toBe(1);
    expect([...(db.prepare('SELECT png FROM previews').pluck().get() as Buffer)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(
      listRuns(db)
        .map((r) => r.id)
        .sort(),
    ).toEqual(['bad-config', 'old-run']);

    const backfilled = db.prepare("SELECT key, value, typeof(value) AS t FROM params WHERE run_id = 'old-run' ORDER BY key").all();
    expect(backfilled.length).toBeGreaterThan(10);
    // The backfill and insertParams derive the same rows from the same config.
    insertRun(db, 'new-run', CONFIG);
    insertParams(db, 'new-run', CONFIG);
    expect(db.prepare("SELECT key, value, typeof(value) AS t FROM params WHERE run_id = 'new-run' ORDER BY key").all()).toEqual(backfilled);
    // A run whose stored config is not JSON gets no params rather than failing the migration.
    expect(db.prepare("SELECT count(*) FROM params WHERE run_id = 'bad-config'").pluck().get()).toBe(0);
    expect(latestMetrics(db, 'old-run')).toEqual([
      { key: 'g_loss', step: 2, value: 0.25, wall_time: 1_700_000_002 },
      { key: 'psnr_train', step: 2, value: 22, wall_time: 1_700_000_002 },
    ]);
    db.close();
  });

  it('upgrades a v2 file in place to v3: checkpoints keep their rows and get a NULL gain; new rows take one', () => {
    makeV2(file);
    const before = new Database(file, { readonly: true });
    const rowsBefore = before.prepare('SELECT * FROM checkpoints ORDER BY id').all();
    before.close();
    const db = openDb(file);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    // Same file, same rows, two more columns (gain in v3, pinned in v5).
    expect(fs.readdirSync(tmp.dir).filter((n) => n.endsWith('.db'))).toEqual(['runs.db']);
    expect(db.prepare('SELECT * FROM checkpoints ORDER BY id').all()).toEqual(
      rowsBefore.map((r) => ({ ...(r as object), gain: null, pinned: 0 })),
    );
    expect(listCheckpoints(db, 'old-run').map((c) => [c.step, c.kind, c.psnr, c.gain])).toEqual([
      [1, 'best', 21.5, null],
      [2, 'stop', null, null],
    ]);
    expect(db.prepare('SELECT count(*) FROM metrics').pluck().get()).toBe(4);
    expect(latestMetrics(db, 'old-run').map((m) => [m.key, m.step])).toEqual([
      ['g_loss', 2],
      ['psnr_train', 2],
    ]);
    recordCheckpoint(db, {
      run_id: 'old-run',
      step: 3,
      time: 30,
      path: '/c/step-3',
      checksum: 'sha256:y',
      kind: 'best',
      psnr: 24,
      gain: -0.75,
    });
    expect(listCheckpoints(db, 'old-run').map((c) => [c.step, c.gain])).toEqual([
      [1, null],
      [2, null],
      [3, -0.75],
    ]);
    db.close();
    // Opening the upgraded file again changes nothing.
    const again = openDb(file);
    expect(again.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(listCheckpoints(again, 'old-run')).toHaveLength(3);
    again.close();
  });

  it('upgrades a v3 file in place to v4: a step logged twice for a key keeps its later row, every other row stays', () => {
    makeV3(file);
    const before = new Database(file, { readonly: true });
    const latestBefore = latestMetrics(before, 'old-run');
    const keptBefore = before.prepare('SELECT rowid, * FROM metrics WHERE NOT (key = ? AND step = 2) ORDER BY rowid').all('g_loss');
    expect(before.prepare("SELECT count(*) FROM metrics WHERE key = 'g_loss' AND step = 2").pluck().get()).toBe(3);
    before.close();
    const db = openDb(file);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare("SELECT value FROM metrics WHERE key = 'g_loss' AND step = 2").pluck().all()).toEqual([0.3]);
    expect(db.prepare('SELECT rowid, * FROM metrics WHERE NOT (key = ? AND step = 2) ORDER BY rowid').all('g_loss')).toEqual(keptBefore);
    expect(db.prepare('SELECT count(*) FROM (SELECT 1 FROM metrics GROUP BY run_id, key, step HAVING count(*) > 1)').pluck().get()).toBe(0);
    // What readers saw as the latest values is unchanged.
    expect(latestMetrics(db, 'old-run')).toEqual(latestBefore);
    expect(listCheckpoints(db, 'old-run').map((c) => c.step)).toEqual([1, 2]);
    db.close();
  });

  it('runs each migration in one transaction: a failing one leaves the file at the version before', () => {
    makeV1(file);
    const raw = new Database(file);
    raw.exec('CREATE TABLE checkpoints (x)'); // collides with a table v2 creates, after params
    raw.close();
    expect(() => openDb(file)).toThrow(/cannot migrate runs database .* from schema version 1 to 2: .*checkpoints/);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(names(db, 'table')).not.toContain('params');
    expect(names(db, 'view')).toEqual([]);
    expect(db.prepare('SELECT count(*) FROM metrics').pluck().get()).toBe(4);
    db.close();
  });

  it('refuses a newer database, naming both versions, without modifying the file', () => {
    const raw = new Database(file);
    raw.exec('CREATE TABLE future (x); INSERT INTO future VALUES (1)');
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = fs.readFileSync(file);
    for (const opts of [{}, { readonly: true }]) {
      let err: unknown;
      try {
        openDb(file, opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SrganError);
      expect((err as SrganError).code).toBe('SRGAN_ERR_CONFIG');
      expect((err as Error).message).toContain(`schema version ${SCHEMA_VERSION + 1}, newer than this srgan (${SCHEMA_VERSION})`);
    }
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(tmp.dir)).toEqual(['runs.db']);
  });
});

describe('params', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Database.Database;
  beforeEach(() => {
    tmp = tempDir();
    db = openDb(path.join(tmp.dir, 'runs.db'));
    insertRun(db, 'a', CONFIG);
    insertRun(db, 'b', { ...CONFIG, generator: { ...CONFIG.generator, channels: 64 }, pixelLoss: 'mse' });
    insertParams(db, 'a', CONFIG);
    insertParams(db, 'b', db.prepare("SELECT config FROM runs WHERE id = 'b'").pluck().get() as string);
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });

  it('stores one row per leaf with dotted keys and SQL types', () => {
    const rows = db.prepare("SELECT key, value, typeof(value) AS type FROM params WHERE run_id = 'a' ORDER BY key").all();
    expect(rows).toEqual([
      { key: 'batchSize', value: 8, type: 'integer' },
      { key: 'dataDir', value: null, type: 'null' },
      { key: 'emaDecay', value: 0.999, type: 'real' },
      { key: 'extra', value: '{}', type: 'text' },
      { key: 'generator.channels', value: 32, type: 'integer' },
      { key: 'generator.kind', value: 'espcn', type: 'text' },
      { key: 'generator.skip', value: 0, type: 'integer' },
      { key: 'jpeg', value: 0, type: 'integer' },
      { key: 'perceptual.kind', value: 'off', type: 'text' },
      { key: 'perceptual.path', value: null, type: 'null' },
      { key: 'perceptual.weight', value: 0, type: 'integer' },
      { key: 'phases.0.lrG', value: 0.001, type: 'real' },
      { key: 'phases.0.steps', value: 100, type: 'integer' },
      { key: 'phases.1.lrG', value: 0.0001, type: 'real' },
      { key: 'phases.1.steps', value: 200, type: 'integer' },
      { key: 'pixelLoss', value: 'l1', type: 'text' },
      { key: 'pixelWeight', value: 1, type: 'integer' },
      { key: 'preset', value: 'espcn-x2-fast', type: 'text' },
      { key: 'resetOptimizers', value: 1, type: 'integer' },
      { key: 'tags', value: '[]', type: 'text' },
    ]);
    expect(getParams(db, 'a').get('generator.channels')).toBe(32);
  });

  it('answers filters by config value', () => {
    const byParam = (sql: string, ...args: unknown[]) =>
      db
        .prepare(`SELECT run_id FROM params WHERE ${sql} ORDER BY run_id`)
        .pluck()
        .all(...args);
    expect(byParam("key = 'generator.channels' AND value = 32")).toEqual(['a']);
    expect(byParam("key = 'generator.channels' AND value >= 32")).toEqual(['a', 'b']);
    expect(byParam("key = 'pixelLoss' AND value = 'mse'")).toEqual(['b']);
    expect(byParam("key = 'batchSize' AND value = 8.0")).toEqual(['a', 'b']);
    expect(byParam("key = 'resetOptimizers' AND value = 1")).toEqual(['a', 'b']);
    expect(byParam("key = 'emaDecay' AND value = ?", 0.999)).toEqual(['a', 'b']);
    const plan = db.prepare("EXPLAIN QUERY PLAN SELECT run_id FROM params WHERE key = 'generator.channels' AND value = 32").all() as {
      detail: string;
    }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/params_key_value/);
  });

  it("replaces a run's params when written again, and rejects configs that are not JSON objects", () => {
    insertParams(db, 'a', { batchSize: 16 });
    expect([...getParams(db, 'a')]).toEqual([['batchSize', 16]]);
    expect(() => insertParams(db, 'a', 'not json')).toThrow(TypeError);
    expect(() => insertParams(db, 'a', '[1, 2]')).toThrow(/"config" must be a JSON object, got an array/);
    expect([...getParams(db, 'a')]).toEqual([['batchSize', 16]]);
  });
});

describe('metrics, checkpoints, evals and run lookup', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Database.Database;
  beforeEach(() => {
    tmp = tempDir();
    db = openDb(path.join(tmp.dir, 'runs.db'));
    insertRun(db, '20261129-112959-aaaa', CONFIG, { name: 'alpha', created_at: 1 });
    insertRun(db, '20261129-113500-bbbb', CONFIG, { name: 'beta', status: 'failed', created_at: 2 });
    insertRun(db, '20261130-090000-cccc', CONFIG, { name: 'alpha', status: 'training', created_at: 3 });
    insertRun(db, 'empty', CONFIG, { created_at: 0 });
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });

  it('latest_metrics holds the latest step of each key of each run, whatever the insert order', () => {
    insertMetrics(db, '20261129-112959-aaaa', [
      [3, 'g_loss', 0.3],
      [1, 'g_loss', 0.9],
      [5, 'g_loss', 0.1],
      [4, 'g_loss', 0.2],
      [2, 'd_loss', 0.7],
    ]);
    insertMetrics(db, '20261129-113500-bbbb', [
      [6, 'g_loss', 0.05],
      [7, 'g_loss', 0.04],
    ]);
    const all = db.prepare('SELECT run_id, key, step, value FROM latest_metrics ORDER BY run_id, key').all();
    expect(all).toEqual([
      { run_id: '20261129-112959-aaaa', key: 'd_loss', step: 2, value: 0.7 },
      { run_id: '20261129-112959-aaaa', key: 'g_loss', step: 5, value: 0.1 },
      { run_id: '20261129-113500-bbbb', key: 'g_loss', step: 7, value: 0.04 },
    ]);
    expect(latestMetrics(db, 'empty')).toEqual([]);
    expect(bestMetric(db, '20261129-112959-aaaa', 'g_loss', 'min')).toEqual({ step: 5, value: 0.1 });
    expect(bestMetric(db, '20261129-112959-aaaa', 'g_loss', 'max')).toEqual({ step: 1, value: 0.9 });
    expect(bestMetric(db, '20261129-112959-aaaa', 'psnr', 'max')).toBeNull();
  });

  it('thins curves with `every`, always keeping the last point', () => {
    insertMetrics(
      db,
      'empty',
      Array.from({ length: 10 }, (_, i) => [i + 1, 'g_loss', i] as [number, string, number]),
    );
    insertMetrics(db, 'empty', [
      [1, 'd_loss', 1],
      [2, 'd_loss', 2],
    ]);
    expect(metricCurves(db, 'empty', ['g_loss'], 4).map((p) => p.step)).toEqual([1, 5, 9, 10]);
    expect(metricCurves(db, 'empty', ['g_loss', 'd_loss'], 3).map((p) => `${p.step}:${p.key}`)).toEqual([
      '1:d_loss',
      '1:g_loss',
      '2:d_loss',
      '4:g_loss',
      '7:g_loss',
      '10:g_loss',
    ]);
    expect(() => metricCurves(db, 'empty', ['g_loss'], 0)).toThrow(RangeError);
  });

  it('records and lists checkpoints and evals', () => {
    const run = '20261129-112959-aaaa';
    const first = recordCheckpoint(db, { run_id: run, step: 100, time: 10, path: '/c/100.bin', checksum: 'sha256:aa', kind: 'periodic' });
    recordCheckpoint(db, {
      run_id: run,
      step: 200,
      time: 20,
      path: '/c/200.bin',
      checksum: 'sha256:bb',
      kind: 'best',
      psnr: 28.5,
      gain: 0.625,
    });
    markCheckpointDeleted(db, first);
    expect(listCheckpoints(db, run).map((c) => [c.step, c.kind, c.psnr, c.gain, c.deleted])).toEqual([[200, 'best', 28.5, 0.625, 0]]);
    expect(listCheckpoints(db, run, { includeDeleted: true }).map((c) => [c.step, c.deleted])).toEqual([
      [100, 1],
      [200, 0],
    ]);
    expect(() => recordCheckpoint(db, { run_id: run, step: 1, time: 1, path: 'x', checksum: 'y', kind: 'nightly' as 'best' })).toThrow(
      /"kind" must be one of periodic, best/,
    );
    expect(() =>
      db.prepare("INSERT INTO checkpoints (run_id, step, time, path, checksum, kind) VALUES (?, 1, 1, 'x', 'y', 'nightly')").run(run),
    ).toThrow(/CHECK/);
    expect(() => recordCheckpoint(db, { run_id: 'no-such-run', step: 1, time: 1, path: 'x', checksum: 'y', kind: 'manual' })).toThrow(
      /FOREIGN KEY/,
    );

    recordEval(db, {
      run_id: run,
      time: 30,
      data_dir: '/eval',
      model: 'model',
      psnr: 29.1,
      ssim: 0.85,
      images: 5,
      json: { perImage: [1, 2] },
    });
    recordEval(db, { run_id: null, time: 31, data_dir: '/eval', model: 'bicubic', psnr: 27, ssim: null, images: 5 });
    expect(listEvals(db, run).map((e) => [e.model, e.psnr, e.json])).toEqual([['model', 29.1, '{"perImage":[1,2]}']]);
    expect(db.prepare('SELECT model FROM evals ORDER BY psnr DESC').pluck().all()).toEqual(['model', 'bicubic']);
  });

  it('summarises validation: the latest gain with its PSNRs, and the first step of the best gain, up to a step', () => {
    const run = '20261129-112959-aaaa';
    insertMetrics(db, run, [
      [5, 'g_loss', 0.5],
      [10, 'val_psnr', 30],
      [10, 'val_bicubic', 31],
      [10, 'val_gain', -1],
      [20, 'val_psnr', 31.5],
      [20, 'val_bicubic', 31],
      [20, 'val_gain', 0.5],
      [30, 'val_psnr', 31.5],
      [30, 'val_bicubic', 31],
      [30, 'val_gain', 0.5],
      [40, 'val_psnr', 30.75],
      [40, 'val_bicubic', 31],
      [40, 'val_gain', -0.25],
      [41, 'g_loss', 0.4],
    ]);
    expect(validationSummary(db, run)).toEqual({
      latest: { step: 40, psnr: 30.75, bicubic: 31, gain: -0.25 },
      best: { step: 20, gain: 0.5 },
    });
    expect(validationSummary(db, run, 15)).toEqual({ latest: { step: 10, psnr: 30, bicubic: 31, gain: -1 }, best: { step: 10, gain: -1 } });
    expect(validationSummary(db, run, 9)).toEqual({ latest: null, best: null });
    expect(validationSummary(db, 'empty')).toEqual({ latest: null, best: null });
  });

  it('resolves a run by id, unique id prefix or name, and names the candidates otherwise', () => {
    expect(resolveRun(db, '20261129-113500-bbbb').name).toBe('beta');
    expect(resolveRun(db, '20261130').id).toBe('20261130-090000-cccc');
    expect(resolveRun(db, 'beta').id).toBe('20261129-113500-bbbb');
    expect(() => resolveRun(db, '20261129')).toThrow(
      /"20261129" matches 2 runs.*\n.*20261129-113500-bbbb.*failed.*beta\n.*20261129-112959-aaaa/,
    );
    expect(() => resolveRun(db, 'alpha')).toThrow(/matches 2 runs/);
    expect(() => resolveRun(db, 'zzz')).toThrow(/no run matches "zzz".*latest runs are:\n.*20261130-090000-cccc/s);
    expect(listRuns(db, { status: ['failed', 'training'] }).map((r) => r.id)).toEqual(['20261130-090000-cccc', '20261129-113500-bbbb']);
  });
});

describe('reading an older database read-only', () => {
  it('derives params and latest metrics from a v1 file without migrating it', () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'runs.db');
      makeV1(file);
      const db = openDb(file, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBe(1);
      expect(getParams(db, 'old-run').get('generator.channels')).toBe(32);
      expect(latestMetrics(db, 'old-run').map((m) => [m.key, m.step, m.value])).toEqual([
        ['g_loss', 2, 0.25],
        ['psnr_train', 2, 22],
      ]);
      expect(listCheckpoints(db, 'old-run')).toEqual([]);
      expect(listEvals(db, 'old-run')).toEqual([]);
      db.close();
    } finally {
      tmp.cleanup();
    }
  });

  it("lists a v2 file's checkpoints with a null gain without migrating it", () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'runs.db');
      makeV2(file);
      const db = openDb(file, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBe(2);
      expect(listCheckpoints(db, 'old-run').map((c) => [c.step, c.psnr, c.gain])).toEqual([
        [1, 21.5, null],
        [2, null, null],
      ]);
      expect(validationSummary(db, 'old-run')).toEqual({ latest: null, best: null });
      db.close();
      const raw = new Database(file, { readonly: true });
      expect(raw.pragma('user_version', { simple: true })).toBe(2);
      raw.close();
    } finally {
      tmp.cleanup();
    }
  });
});
