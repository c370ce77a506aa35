// Non-finite steps through the real daemon (docs/reliability.md, "NaN and Inf"), with NaN batches
// injected at chosen steps (SRGAN_FAULT_NAN_*, trainer/worker.ts): a lone bad step is not applied and is
// recorded; maxBadSteps in a row roll the run back to its newest checkpoint with the learning rates
// lowered; a run that keeps diverging fails after maxRollbacks, with the reason. No checkpoint ever
// holds a non-finite value, and the database keeps one row per step.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { hasExited } from '../../src/util/lock-file.js';

const tmp = tempDir('srgan-nonfinite-');
const photos = path.join(tmp.dir, 'photos');
const pids: number[] = [];

beforeAll(async () => {
  await writePhotos(photos, 6, 80, 72);
});
afterEach(() => {
  for (const pid of pids.splice(0)) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
});
afterAll(() => tmp.cleanup());

const LR_G = 1e-3;

/** Starts a run with NaN batches injected as `faults` says, and waits until its daemon has exited. */
async function run(name: string, extra: Record<string, unknown>, faults: Record<string, string>) {
  const home = path.join(tmp.dir, name);
  fs.mkdirSync(home);
  const cfg = path.join(home, 'run.json');
  fs.writeFileSync(
    cfg,
    JSON.stringify(
      tinyRun(photos, {
        advWeight: 1e-3,
        phases: [{ steps: null, lrG: LR_G, lrD: LR_G }],
        checkpointEvery: 4,
        checkpointKeep: 10,
        seed: 11,
        ...extra,
      }),
    ),
  );
  Object.assign(process.env, faults);
  let info: { pid: number; runId: string };
  try {
    info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', cfg]);
  } finally {
    for (const k of Object.keys(faults)) delete process.env[k];
  }
  pids.push(info.pid);
  await waitFor('the daemon to exit', () => hasExited(info.pid), 180_000, 100);
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    const status = db.prepare('SELECT status FROM runs WHERE id = ?').pluck().get(info.runId) as string;
    const events = db.prepare('SELECT kind, message, data FROM events WHERE run_id = ? ORDER BY id').all(info.runId) as {
      kind: string;
      message: string;
      data: string | null;
    }[];
    const rows = (key: string) =>
      db.prepare('SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid').all(info.runId, key) as {
        step: number;
        value: number;
      }[];
    return {
      home,
      runId: info.runId,
      status,
      events,
      gLoss: rows('g_loss'),
      lrG: rows('lr_g'),
      checkpoints: path.join(home, 'checkpoints', info.runId),
    };
  } finally {
    db.close();
  }
}

/** Every checkpoint's state and whether all its tensors are finite. */
function checkpointsOf(dir: string): { step: number; finite: boolean; lrScale?: number; rollbacks?: number }[] {
  return fs
    .readdirSync(dir)
    .filter((d) => /^step-\d+$/.test(d))
    .sort()
    .map((d) => {
      const state = JSON.parse(fs.readFileSync(path.join(dir, d, 'state.json'), 'utf8')) as {
        step: number;
        lrScale?: number;
        rollbacks?: number;
      };
      const bin = fs.readFileSync(path.join(dir, d, 'tensors.bin'));
      const f32 = new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4);
      return { step: state.step, finite: f32.every(Number.isFinite), lrScale: state.lrScale, rollbacks: state.rollbacks };
    });
}

interface EventRow {
  kind: string;
  message: string;
  data: string | null;
}
const kinds = (events: EventRow[], kind: string) => events.filter((e) => e.kind === kind);

describe('non-finite steps', () => {
  it('a lone NaN step is not applied, is recorded as an event, and training goes on unchanged', async () => {
    const r = await run('lone', { maxSteps: 10 }, { SRGAN_FAULT_NAN_AT_STEP: '6' });
    expect(r.status).toBe('stopped');
    const bad = kinds(r.events, 'nonfinite');
    expect(bad).toHaveLength(1);
    expect(bad[0].message).toMatch(/^step 6 not applied: its losses or gradients are not finite \(.*g_loss NaN.*\); 1 in a row$/);
    expect(kinds(r.events, 'rollback')).toEqual([]);
    // The database has no value for the bad step (NaN is not a number to chart), and one for each other.
    expect(r.gLoss.map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 7, 8, 9, 10]);
    expect(r.gLoss.every((x) => Number.isFinite(x.value))).toBe(true);
    expect(new Set(r.lrG.map((x) => x.value))).toEqual(new Set([LR_G]));
    const cps = checkpointsOf(r.checkpoints);
    expect(cps.map((c) => c.step)).toEqual([4, 8, 10]);
    for (const c of cps) expect(c).toMatchObject({ finite: true, lrScale: 1, rollbacks: 0 });
  }, 240_000);

  it('maxBadSteps in a row roll back to the newest checkpoint with the learning rates lowered, and the run goes on', async () => {
    const r = await run(
      'rollback',
      { maxSteps: 14, nonFinite: { maxBadSteps: 3, lrFactor: 0.5, maxRollbacks: 3 } },
      { SRGAN_FAULT_NAN_AT_STEP: '9', SRGAN_FAULT_NAN_STEPS: '3' },
    );
    expect(r.status).toBe('stopped');
    expect(kinds(r.events, 'nonfinite').map((e) => (JSON.parse(e.data!) as { step: number }).step)).toEqual([9, 10, 11]);
    const back = kinds(r.events, 'rollback');
    expect(back).toHaveLength(1);
    expect(back[0].message).toMatch(
      /3 steps in a row up to step 11 .*; rolling back to step-00000008 \(step 8\) with learning rates × 0\.5 \(rollback 1 of at most 3\)/,
    );
    // Steps 9 to 11 were trained again after the rollback: each step once, all finite.
    expect(r.gLoss.map((x) => x.step)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(r.gLoss.every((x) => Number.isFinite(x.value))).toBe(true);
    expect(r.lrG.map((x) => x.value)).toEqual(Array.from({ length: 14 }, (_, i) => (i < 8 ? LR_G : LR_G * 0.5)));
    const cps = checkpointsOf(r.checkpoints);
    expect(cps.map((c) => c.step)).toEqual([4, 8, 12, 14]);
    for (const c of cps) expect(c.finite).toBe(true);
    expect(cps.at(-1)).toMatchObject({ lrScale: 0.5, rollbacks: 1 });
  }, 240_000);

  it('a run that keeps diverging fails after maxRollbacks, with the reason', async () => {
    const r = await run(
      'diverges',
      { maxSteps: 40, nonFinite: { maxBadSteps: 2, lrFactor: 0.5, maxRollbacks: 2 } },
      { SRGAN_FAULT_NAN_AT_STEP: '5', SRGAN_FAULT_NAN_STEPS: '1000', SRGAN_FAULT_NAN_EVERY_TRAINER: '1' },
    );
    expect(r.status).toBe('failed');
    expect(kinds(r.events, 'rollback').map((e) => JSON.parse(e.data!) as { lrScale: number })).toMatchObject([
      { lrScale: 0.5 },
      { lrScale: 0.25 },
    ]);
    const errors = kinds(r.events, 'error').map((e) => e.message);
    expect(errors.join('\n')).toMatch(
      /training diverged again after 2 rollbacks \(nonFinite\.maxRollbacks 2, learning rates × 0\.25\): 2 steps in a row up to step 6/,
    );
    for (const c of checkpointsOf(r.checkpoints)) expect(c.finite).toBe(true);
  }, 240_000);
});
