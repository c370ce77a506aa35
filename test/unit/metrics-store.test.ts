import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actors/actor.js';
import { MetricsStore } from '../../src/actors/metrics-store.js';
import { openDb, SCHEMA_VERSION } from '../../src/store/db.js';
import { tempDir } from '../support/tmp.js';

const run = {
  id: 'run-1',
  name: 'test run',
  status: 'starting',
  created_at: 1_700_000_000,
  preset: 'espcn-x2-fast',
  backend: null,
  backend_reason: null,
  config: JSON.stringify({ batchSize: 8 }),
  pid: 123,
  data_dir: '/data',
};

describe('MetricsStore', () => {
  let tmp: ReturnType<typeof tempDir>;
  let file: string;
  beforeEach(() => {
    tmp = tempDir();
    file = path.join(tmp.dir, 'runs.db');
  });
  afterEach(() => tmp.cleanup());

  it('creates the documented schema in WAL mode with the unique metrics index', async () => {
    const store = new MetricsStore({ file });
    await store.start();
    await store.stop();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").pluck().all();
    expect(tables).toEqual([
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
    const idx = db.prepare("SELECT sql FROM sqlite_master WHERE name='metrics_run_key_step'").pluck().get();
    expect(idx).toMatch(/^CREATE UNIQUE INDEX metrics_run_key_step ON metrics \(run_id, key, step\)$/);
    db.close();
  });

  it('batches metric writes until the flush interval, then commits them together', async () => {
    const clock = new SimulatedClock(1_700_000_000_000);
    const store = new MetricsStore({ file, clock, flushMs: 500 });
    await store.start();
    store.send({ type: 'createRun', run });
    for (let step = 1; step <= 50; step++) {
      store.send({ type: 'metrics', runId: 'run-1', points: [{ step, wallTime: clock.now(), values: { g_loss: 1 / step, d_loss: 0.5 } }] });
    }
    await store.whenIdle();
    const reader = new Database(file, { readonly: true });
    const count = () => reader.prepare('SELECT count(*) FROM metrics').pluck().get();
    expect(reader.prepare('SELECT status FROM runs WHERE id = ?').pluck().get('run-1')).toBe('starting'); // runs land at once
    expect(count()).toBe(0);
    clock.advance(500);
    await store.whenIdle();
    expect(count()).toBe(100);
    expect(store.rowsWritten).toBe(100);
    const curve = reader.prepare("SELECT step, value FROM metrics WHERE run_id = 'run-1' AND key = 'g_loss' ORDER BY step").all() as {
      step: number;
      value: number;
    }[];
    expect(curve).toHaveLength(50);
    expect(curve[9]).toEqual({ step: 10, value: 0.1 });
    reader.close();
    await store.stop();
  });

  it('flushes early when the queue is long, and everything on stop', async () => {
    const clock = new SimulatedClock();
    const store = new MetricsStore({ file, clock, flushMs: 60_000, maxQueued: 10 });
    await store.start();
    store.send({ type: 'createRun', run });
    for (let step = 1; step <= 25; step++)
      store.send({ type: 'metrics', runId: 'run-1', points: [{ step, wallTime: 0, values: { x: step } }] });
    await store.whenIdle();
    expect(store.rowsWritten).toBe(20);
    store.send({ type: 'event', runId: 'run-1', kind: 'pause', message: 'paused at step 25' });
    store.send({ type: 'updateRun', id: 'run-1', status: 'stopped', lastStep: 25, ended: true });
    await store.stop();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM metrics').pluck().get()).toBe(25);
    expect(db.prepare('SELECT kind, message FROM events').get()).toEqual({ kind: 'pause', message: 'paused at step 25' });
    expect(db.prepare('SELECT status, last_step, ended_at IS NOT NULL AS ended FROM runs').get()).toEqual({
      status: 'stopped',
      last_step: 25,
      ended: 1,
    });
    db.close();
  });

  it('skips non-finite values and stores previews as PNG blobs', async () => {
    const store = new MetricsStore({ file });
    await store.start();
    store.send({ type: 'createRun', run });
    store.send({ type: 'metrics', runId: 'run-1', points: [{ step: 1, wallTime: 0, values: { a: Number.NaN, b: Infinity, c: 2 } }] });
    store.send({
      type: 'preview',
      runId: 'run-1',
      step: 1,
      width: 4,
      height: 2,
      panels: ['a', 'b'],
      png: new Uint8Array([137, 80, 78, 71]),
    });
    await store.stop();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT key FROM metrics').pluck().all()).toEqual(['c']);
    const p = db.prepare('SELECT width, panels, png FROM previews').get() as { width: number; panels: string; png: Buffer };
    expect(p.width).toBe(4);
    expect(JSON.parse(p.panels)).toEqual(['a', 'b']);
    expect([...p.png]).toEqual([137, 80, 78, 71]);
    db.close();
  });

  it('keeps one row per step of a key: a point written again replaces the earlier one', async () => {
    const store = new MetricsStore({ file });
    await store.start();
    store.send({ type: 'createRun', run });
    store.send({
      type: 'metrics',
      runId: 'run-1',
      points: [1, 2, 3].map((step) => ({ step, wallTime: 1000 * step, values: { g_loss: step, d_loss: 1 } })),
    });
    store.send({ type: 'flush' });
    store.send({ type: 'metrics', runId: 'run-1', points: [{ step: 2, wallTime: 9000, values: { g_loss: 20 } }] });
    await store.stop();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT step, key, value, wall_time FROM metrics ORDER BY key, step').all()).toEqual([
      { step: 1, key: 'd_loss', value: 1, wall_time: 1 },
      { step: 2, key: 'd_loss', value: 1, wall_time: 2 },
      { step: 3, key: 'd_loss', value: 1, wall_time: 3 },
      { step: 1, key: 'g_loss', value: 1, wall_time: 1 },
      { step: 2, key: 'g_loss', value: 20, wall_time: 9 },
      { step: 3, key: 'g_loss', value: 3, wall_time: 3 },
    ]);
    db.close();
  });

  it("resumeRun drops what was logged after the checkpoint and writes back the checkpoint's own copy", async () => {
    const store = new MetricsStore({ file });
    await store.start();
    store.send({ type: 'createRun', run });
    // Steps 1..9 reached the file, except step 4; the checkpoint at step 5 holds steps 3..5.
    const point = (step: number, g: number) => ({ step, wallTime: 1000 * step, values: { g_loss: g } });
    store.send({ type: 'metrics', runId: 'run-1', points: [1, 2, 3, 5, 6, 7, 8, 9].map((s) => point(s, s)) });
    store.send({ type: 'preview', runId: 'run-1', step: 5, width: 1, height: 1, panels: [], png: new Uint8Array([1]) });
    store.send({ type: 'preview', runId: 'run-1', step: 8, width: 1, height: 1, panels: [], png: new Uint8Array([1]) });
    store.send({ type: 'updateRun', id: 'run-1', status: 'failed', lastStep: 9, ended: true });
    store.send({ type: 'resumeRun', id: 'run-1', fromStep: 5, pid: 456, points: [point(3, 3), point(4, 4), point(5, 5)] });
    await store.whenIdle();
    const db = new Database(file, { readonly: true });
    expect(db.prepare("SELECT step, value FROM metrics WHERE key = 'g_loss' ORDER BY step").all()).toEqual(
      [1, 2, 3, 4, 5].map((s) => ({ step: s, value: s })),
    );
    expect(db.prepare('SELECT step FROM previews').pluck().all()).toEqual([5]);
    expect(db.prepare('SELECT status, pid, last_step, ended_at FROM runs').get()).toEqual({
      status: 'starting',
      pid: 456,
      last_step: 5,
      ended_at: null,
    });
    // The steps trained again are logged once each.
    store.send({ type: 'metrics', runId: 'run-1', points: [6, 7].map((s) => point(s, s + 0.5)) });
    await store.stop();
    expect(db.prepare("SELECT step, value FROM metrics WHERE key = 'g_loss' ORDER BY step").all()).toEqual(
      [1, 2, 3, 4, 5, 6.5, 7.5].map((v, i) => ({ step: i + 1, value: v })),
    );
    db.close();
  });

  it('refuses a database from a newer srgan, naming both versions', () => {
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openDb(file)).toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this srgan \\(${SCHEMA_VERSION}\\)`));
  });
});
