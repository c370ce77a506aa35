// Resuming a run: which run, and the config it continues with (docs/checkpoints.md, "Resume").

import fs from 'node:fs';
import { openDb, resolveRun } from '../store/db.js';
import { resolveConfig } from '../config/resolve.js';
import type { RunConfig } from '../config/presets.js';
import { SrganError } from '../util/errors.js';

/** Config fields a resumed run may change: none of them alters what training computes. */
export const RESUME_OVERRIDABLE: readonly string[] = Object.freeze([
  'maxSteps',
  'port',
  'backend',
  'loaderWorkers',
  'ringMiB',
  'logEvery',
  'previewEvery',
  'checkpointEvery',
  'checkpointMinutes',
  'checkpointKeep',
  'valEvery',
  // What happens after a non-finite step, not what a finite one computes.
  'nonFinite',
  'minFreeMiB',
  'retention',
  // Splits the same step into parts: only float rounding changes (moving a run between a CPU and a GPU).
  'accumulate',
  // The same: bf16 rounds the convolutions' inputs (a bf16 run can go on where the CPU has no bf16 units).
  'precision',
]);

/**
 * A stored run config with the fields added since it was written set to what the run did without them
 * (no blur; an ESPCN generator of depth 0; the whole batch at once), so a resumed run keeps computing
 * the same even where the preset's default has changed.
 */
function withFieldsBeforeTheyExisted(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    lrBlur: { probability: 0, sigmaMin: 0.2, sigmaMax: 1.2 },
    accumulate: 1,
    precision: 'fp32',
    ...config,
  };
  const g = config.generator as Record<string, unknown> | undefined;
  if (g?.kind === 'espcn' && !('depth' in g)) out.generator = { ...g, depth: 0 };
  return out;
}

/**
 * The run `ref` names (id, unique prefix or name) and the config it continues with: its stored config,
 * the fields added since it was made set to what it did without them, then `overrides`, which may only
 * be RESUME_OVERRIDABLE fields. SRGAN_ERR_CONFIG when there is no such run or an override is not allowed.
 */
export function runToResume(dbFile: string, ref: string, overrides: Record<string, unknown>): { id: string; config: RunConfig } {
  if (!fs.existsSync(dbFile)) throw new SrganError('SRGAN_ERR_CONFIG', `no runs yet (${dbFile} does not exist): nothing to resume`);
  const db = openDb(dbFile);
  let run: { id: string; config: Record<string, unknown> };
  try {
    const row = resolveRun(db, ref);
    run = { id: row.id, config: JSON.parse(row.config) as Record<string, unknown> };
  } finally {
    db.close();
  }
  for (const key of Object.keys(overrides)) {
    if (!RESUME_OVERRIDABLE.includes(key)) {
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `config field "${key}" cannot change when resuming run ${run.id} (it would change what training computes); these can: ${RESUME_OVERRIDABLE.join(', ')}`,
      );
    }
  }
  return { id: run.id, config: resolveConfig({ ...withFieldsBeforeTheyExisted(run.config), ...overrides }) };
}
