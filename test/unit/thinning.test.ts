// Thinning old points and previews (src/store/thinning.ts, docs/reliability.md "Bounded growth"),
// through the real MetricsStore on a real SQLite file with a simulated clock: the recent past stays
// whole, older points keep one per metricsEvery steps of each key, validation points and those at kept
// checkpoints stay, rollups keep their full-resolution summaries, previews thin to so many an hour.
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actors/actor.js';
import { MetricsStore } from '../../src/actors/metrics-store.js';
import { tempDir } from '../support/tmp.js';

const T0 = 1_700_000_000; // unix seconds
const run = {
  id: 'run-1',
  name: 'thin me',
  status: 'training',
  created_at: T0,
  preset: 'espcn-x2-fast',
  backend: null,
  backend_reason: null,
  config: '{}',
  pid: 1,
  data_dir: '/data',
};
const CHECKPOINTS = [
  { step: 550, deleted: true, pinned: false },
  { step: 780, deleted: true, pinned: true },
  { step: 1240, deleted: false, pinned: false },
];
const retention = { metricsFullMinutes: 10, metricsEvery: 100, previewsFullMinutes: 5, previewsPerHour: 60 };

describe('thinning', () => {
  let tmp: ReturnType<typeof tempDir>;
  let file: string;
  beforeEach(() => {
    tmp = tempDir();
    file = path.join(tmp.dir, 'runs.db');
  });
  afterEach(() => tmp.cleanup());

  it('keeps the recent past whole and one point per metricsEvery steps before it, with validation, checkpoints and rollups intact', async () => {
    // One step a second for 50 minutes; a preview every 10 steps.
    const clock = new SimulatedClock(T0 * 1000);
    const store = new MetricsStore({ file, clock, retention });
    await store.start();
    store.send({ type: 'createRun', run });
    for (let step = 1; step <= 3000; step++) {
      clock.advance(1000);
      const values: Record<string, number> = { g_loss: 1 / step, d_loss: step % 7 };
      if (step % 500 === 0) values.val_psnr = 30 + step / 1000;
      store.send({ type: 'metrics', runId: 'run-1', points: [{ step, wallTime: clock.now(), values }] });
      if (step % 10 === 0)
        store.send({ type: 'preview', runId: 'run-1', step, width: 1, height: 1, panels: [], png: new Uint8Array([step % 256]) });
      await store.whenIdle(); // taken in at once, as in the daemon: a preview's time is when the store takes it
      // Checkpoints as the trainer writes them: one kept, one removed by retention but pinned, one removed.
      const ckpt = CHECKPOINTS.find((c) => c.step === step);
      if (ckpt) {
        const path = `/c/${step}`;
        store.send({
          type: 'checkpoint',
          row: { run_id: 'run-1', step, time: T0 + step, path, checksum: 'x', kind: 'periodic', psnr: null, gain: null },
        });
        if (ckpt.pinned) expect(store.pinCheckpoint('run-1', step, true)).toHaveLength(1);
        if (ckpt.deleted) store.send({ type: 'checkpointsDeleted', runId: 'run-1', paths: [path] });
      }
    }
    store.send({ type: 'flush' });
    await store.whenIdle();
    const db = new Database(file, { readonly: true });
    const rollups = () => db.prepare('SELECT * FROM metric_rollups ORDER BY key, shift, bucket').all();
    const before = rollups();
    const steps = (key: string) => db.prepare('SELECT step FROM metrics WHERE key = ? ORDER BY step').pluck().all(key) as number[];

    // The next pass, 10 minutes on (the first ran at start, on an empty file).
    clock.advance(10 * 60_000);
    await store.whenIdle();
    const now = clock.now() / 1000;
    // Step s was logged at T0 + s; the cutoff is now − 10 min. Older steps are thinned in whole buckets
    // of 100 steps: kept, the first of each bucket (1, 100, 200, …) and the kept checkpoints' steps.
    const cutoffStep = Math.max(...Array.from({ length: 3000 }, (_, i) => i + 1).filter((s) => T0 + s < now - 600));
    const thinnedUpTo = Math.floor((cutoffStep + 1) / 100) * 100 - 1;
    const expected = Array.from({ length: 3000 }, (_, i) => i + 1).filter(
      (s) => s > thinnedUpTo || s === 1 || s % 100 === 0 || s === 1240 || s === 780,
    );
    for (const key of ['g_loss', 'd_loss']) expect(steps(key), key).toEqual(expected);
    expect(steps('val_psnr')).toEqual([500, 1000, 1500, 2000, 2500, 3000]);
    expect(rollups()).toEqual(before); // the thinned stretch keeps its full-resolution min, max, mean
    expect(store.thinned.metrics).toBe(2 * (3000 - expected.length));

    // Previews: those of the last 5 minutes (slot-aligned) all; before, the first of each minute and the
    // pinned checkpoint's (780) and the kept one's (1240).
    const previewSteps = db.prepare('SELECT step FROM previews ORDER BY step').pluck().all() as number[];
    const times = new Map(Array.from({ length: 300 }, (_, i) => [10 * (i + 1), T0 + 10 * (i + 1)]));
    const cutoff = Math.floor((now - 300) / 60) * 60;
    const firstOfMinute = new Set<number>();
    for (const [s, t] of times)
      if (t < cutoff && ![...firstOfMinute].some((f) => Math.floor(times.get(f)! / 60) === Math.floor(t / 60))) firstOfMinute.add(s);
    const wantPreviews = [...times.keys()].filter((s) => times.get(s)! >= cutoff || firstOfMinute.has(s) || s === 780 || s === 1240);
    expect(previewSteps).toEqual(wantPreviews);
    expect(previewSteps.length).toBeLessThan(120);

    // Nothing more to thin until time moves on.
    const thinned = { ...store.thinned };
    clock.advance(10 * 60_000);
    await store.whenIdle();
    expect(store.thinned).toEqual(thinned);
    db.close();
    await store.stop();
  });
});
