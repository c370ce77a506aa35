// Bounded growth of runs.db (docs/reliability.md, "Bounded growth"): a run's recent past stays at full
// resolution; older metric points are thinned to one per `metricsEvery` steps of each key, older
// previews to `previewsPerHour` an hour. Kept always: validation points (val_*), the points and previews
// at the steps of checkpoints still on disk or pinned. The rollups (metric_rollups) of a thinned stretch
// keep their full-resolution min, max and mean (schema v6: the delete trigger stands aside during a
// pass), so the monitor's zoomed-out curves do not change. Checkpoint folders have their own retention
// (checkpointKeep). Run by the metrics store, which owns the writing connection.

import type Database from 'better-sqlite3';
import { schemaVersion } from './db.js';

export interface Retention {
  /** Metric points newer than this (wall time) are all kept. */
  metricsFullMinutes: number;
  /** Older ones: the first point of each key in each bucket of this many steps. */
  metricsEvery: number;
  /** Previews newer than this are all kept. */
  previewsFullMinutes: number;
  /** Older ones: the first in each slot of 1/previewsPerHour hour. */
  previewsPerHour: number;
}

export interface ThinResult {
  metrics: number;
  previews: number;
  /** False when a run has more to thin than one pass takes (call again). */
  done: boolean;
}

/** Steps thinned per run and pass: one short transaction each. */
const MAX_STEPS_PER_PASS = 65_536;

/**
 * One thinning pass over every run, in one transaction, as of `now` (unix seconds). Takes at most
 * MAX_STEPS_PER_PASS steps of each run; `done` says whether all is thinned up to the cutoffs.
 */
export function thinOnce(db: Database.Database, now: number, r: Retention): ThinResult {
  if (schemaVersion(db) < 6) return { metrics: 0, previews: 0, done: true };
  const every = Math.max(1, Math.floor(r.metricsEvery));
  const slot = 3600 / Math.max(1e-6, r.previewsPerHour);
  const metricsCutoff = now - r.metricsFullMinutes * 60;
  // Slot-aligned, so a slot is never split between two passes.
  const previewCutoff = Math.floor((now - r.previewsFullMinutes * 60) / slot) * slot;
  const runs = db.prepare('SELECT id FROM runs').pluck().all() as string[];
  const mark = db.prepare('SELECT metrics_step, preview_time FROM thin_marks WHERE run_id = ?');
  const setMark = db.prepare(
    `INSERT INTO thin_marks (run_id, metrics_step, preview_time) VALUES (?, ?, ?)
     ON CONFLICT (run_id) DO UPDATE SET metrics_step = excluded.metrics_step, preview_time = excluded.preview_time`,
  );
  // The last step whose points are older than the cutoff: from the 1024-step rollups of the run's most
  // logged key (a few thousand rows for millions of steps), then exactly within that bucket.
  const busiestKey = db.prepare('SELECT key FROM metric_rollups WHERE run_id = ? AND shift = 14 GROUP BY key ORDER BY sum(n) DESC LIMIT 1');
  const lastBucketBefore = db.prepare(
    'SELECT bucket, last_step FROM metric_rollups WHERE run_id = ? AND key = ? AND shift = 10 AND last_time < ? ORDER BY bucket DESC LIMIT 1',
  );
  const lastStepBefore = db.prepare(
    'SELECT max(step) FROM metrics WHERE run_id = ? AND key = ? AND step >= ? AND step < ? AND wall_time < ?',
  );
  const keys = db.prepare("SELECT DISTINCT key FROM metric_rollups WHERE run_id = ? AND shift = 14 AND key NOT LIKE 'val\\_%' ESCAPE '\\'");
  const kept = 'SELECT step FROM checkpoints WHERE run_id = @run AND (deleted = 0 OR pinned = 1)';
  const thinKey = db.prepare(
    `DELETE FROM metrics WHERE run_id = @run AND key = @key AND step > @lo AND step <= @hi
       AND step NOT IN (SELECT min(step) FROM metrics WHERE run_id = @run AND key = @key AND step > @lo AND step <= @hi GROUP BY step / CAST(@every AS INTEGER))
       AND step NOT IN (${kept})`,
  );
  const thinPreviews = db.prepare(
    `DELETE FROM previews WHERE run_id = @run AND time >= @lo AND time < @hi
       AND id NOT IN (SELECT min(id) FROM previews WHERE run_id = @run AND time >= @lo AND time < @hi GROUP BY CAST(time / @slot AS INTEGER))
       AND step NOT IN (${kept})`,
  );
  const out: ThinResult = { metrics: 0, previews: 0, done: true };
  db.transaction(() => {
    db.prepare('INSERT INTO thinning (active) VALUES (1)').run();
    for (const run of runs) {
      const m = (mark.get(run) as { metrics_step: number; preview_time: number } | undefined) ?? { metrics_step: 0, preview_time: 0 };
      let metricsStep = m.metrics_step;
      const key = busiestKey.pluck().get(run) as string | undefined;
      if (key !== undefined) {
        const old = lastBucketBefore.get(run, key, metricsCutoff) as { bucket: number; last_step: number } | undefined;
        // Points of the bucket after the last wholly old one may be old too (a bucket straddles the cutoff).
        const from = old === undefined ? 0 : (old.bucket + 1) * 1024;
        const last = (lastStepBefore.pluck().get(run, key, from, from + 1024, metricsCutoff) as number | null) ?? old?.last_step ?? null;
        if (last !== null) {
          // Whole `every` buckets only, so one is never thinned in two passes.
          let upTo = Math.floor((last + 1) / every) * every - 1;
          if (upTo - metricsStep > MAX_STEPS_PER_PASS) {
            upTo = metricsStep + Math.floor(MAX_STEPS_PER_PASS / every) * every;
            out.done = false;
          }
          if (upTo > metricsStep) {
            for (const k of keys.pluck().all(run) as string[])
              out.metrics += thinKey.run({ run, key: k, lo: metricsStep, hi: upTo, every }).changes;
            metricsStep = upTo;
          }
        }
      }
      let previewTime = m.preview_time;
      if (previewCutoff > previewTime) {
        out.previews += thinPreviews.run({ run, lo: previewTime, hi: previewCutoff, slot }).changes;
        previewTime = previewCutoff;
      }
      if (metricsStep !== m.metrics_step || previewTime !== m.preview_time) setMark.run(run, metricsStep, previewTime);
    }
    db.prepare('DELETE FROM thinning').run();
  })();
  return out;
}
