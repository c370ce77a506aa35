// The validation part of the daemon's status (latest and best gain over bicubic), kept up to date from
// metrics points and rebuilt from the database when a run resumes.

import type Database from 'better-sqlite3';
import type { MetricsPoint, ValidationStatus } from '../protocol/messages.js';
import { validationSummary } from '../store/db.js';

/** `v` after metrics point `p`: its validation becomes the latest when it has a val_gain (and the best when higher). */
export function withValidation(v: ValidationStatus | null, p: MetricsPoint): ValidationStatus | null {
  const gain = p.values.val_gain;
  if (typeof gain !== 'number' || !Number.isFinite(gain)) return v;
  // An older point (a checkpoint's copy of metrics the database may also have) can only raise the best.
  if (v && p.step < v.step) return gain > v.best.gain ? { ...v, best: { step: p.step, gain } } : v;
  const num = (x: number | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const best = v && v.best.gain >= gain ? v.best : { step: p.step, gain };
  return { step: p.step, psnr: num(p.values.val_psnr), bicubic: num(p.values.val_bicubic), gain, best };
}

/**
 * The validation status of run `runId` as of `step` (where it continues from): from the database, with
 * the checkpoint's own copy of its last metrics on top (some may not have reached the file).
 */
export function validationUpTo(
  db: Database.Database,
  runId: string,
  step: number,
  checkpointMetrics: readonly MetricsPoint[],
): ValidationStatus | null {
  let v: ValidationStatus | null = null;
  try {
    const { latest, best } = validationSummary(db, runId, step);
    if (latest && best) v = { ...latest, best };
  } catch {
    /* the status starts without it; the next validation fills it in */
  }
  for (const p of [...checkpointMetrics].sort((a, b) => a.step - b.step)) if (p.step <= step) v = withValidation(v, p);
  return v;
}
