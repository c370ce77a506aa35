// Checkpoint folders on a real file system (src/models/train/checkpoint.ts): replacing the checkpoint of a
// step is safe against a crash at any moment, leftovers of interrupted writes are recognised, and
// retention keeps exactly the newest N plus the best by validation gain.
//
// A crash is simulated by copying the checkpoint folder just before each rename or removal that
// writeCheckpoint makes (and, for a removal, also as if it had been cut off half way): each copy is
// what a process killed at that moment leaves, and must still give the step's checkpoint, old or new,
// to the readers (a trainer restart: latestValidCheckpoint) and to resume (removeTemporaryCheckpoints
// first).

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  checkpointName,
  checkpointRetention,
  latestValidCheckpoint,
  checkpointFolders,
  removeTemporaryCheckpoints,
  writeCheckpoint,
} from '../../src/models/train/checkpoint.js';
import { readCheckpoint } from '../../src/models/train/checkpoint-tensors.js';
import { tempDir } from '../support/tmp.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type State = Parameters<typeof writeCheckpoint>[1];

/** A checkpoint's state: `kind` and `time` tell versions of the same step apart. */
function state(step: number, extra: Partial<State> = {}): State {
  return {
    runId: 'run',
    step,
    time: step,
    kind: 'periodic',
    config: {} as State['config'],
    scheduler: {} as State['scheduler'],
    gan: {} as State['gan'],
    rng: { jpeg: 0, perceptual: null },
    data: { seq: 0, patchesPerImage: 1, images: 1 },
    valPsnr: null,
    valGain: null,
    metrics: [],
    ...extra,
  };
}

async function write(parent: string, s: State): Promise<string> {
  const w = tf.tensor1d([s.step, s.time, 1.5]);
  try {
    return (await writeCheckpoint(parent, s, { 'G/w': w }, async (dir) => fs.mkdirSync(path.join(dir, 'generator')))).dir;
  } finally {
    w.dispose();
  }
}

/** What the newest valid checkpoint under `parent` is: folder name, step and kind. */
function newest(parent: string): { name: string; step: number; kind: string } | null {
  const found = latestValidCheckpoint(parent);
  if (!found) return null;
  const c = readCheckpoint(found.dir);
  tf.dispose(Object.values(c.tensors));
  return { name: path.basename(found.dir), step: c.state.step, kind: c.state.kind };
}

describe('replacing the checkpoint of a step', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('srgan-ckpt-');
  });
  afterEach(() => {
    vi.restoreAllMocks();
    tmp.cleanup();
  });

  it('leaves a valid checkpoint of that step, old or new, at every moment a crash could come', async () => {
    const parent = path.join(tmp.dir, 'run');
    await write(parent, state(4));
    await write(parent, state(8)); // the periodic checkpoint a manual one at the same step replaces
    const crashes: { at: string; dir: string }[] = [];
    let n = 0;
    const snapshot = (at: string, target: string, partly: boolean) => {
      if (!fs.existsSync(parent)) return;
      const dir = path.join(tmp.dir, `crash-${n++}`);
      fs.cpSync(parent, dir, { recursive: true });
      const inCopy = path.join(dir, path.relative(parent, target));
      if (partly) {
        // A recursive removal cut off half way: some files of the folder are already gone.
        if (!fs.existsSync(inCopy) || !fs.statSync(inCopy).isDirectory()) return;
        fs.rmSync(path.join(inCopy, fs.readdirSync(inCopy).sort()[0]), { recursive: true });
      }
      crashes.push({ at, dir });
    };
    const rename = fs.renameSync;
    const rm = fs.rmSync;
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      snapshot(`before renaming ${path.basename(String(from))} to ${path.basename(String(to))}`, String(from), false);
      rename(from, to);
    });
    vi.spyOn(fs, 'rmSync').mockImplementation((target, opts) => {
      if (String(target).startsWith(parent + path.sep) && fs.existsSync(target)) {
        snapshot(`before removing ${path.basename(String(target))}`, String(target), false);
        snapshot(`half way through removing ${path.basename(String(target))}`, String(target), true);
      }
      rm(target, opts);
    });
    await write(parent, state(8, { kind: 'manual', time: 9 }));
    vi.restoreAllMocks();
    snapshot('after writeCheckpoint returned', parent, false);

    // Every rename of the replacement was seen, and at least one crash point lies between them.
    expect(crashes.filter((c) => c.at.startsWith('before renaming')).length).toBeGreaterThanOrEqual(1);
    for (const { at, dir } of crashes) {
      // A trainer restarted in the same process looks without tidying up first.
      const read = newest(dir);
      expect({ at, step: read?.step, kind: read?.kind }).toEqual({ at, step: 8, kind: expect.stringMatching(/^(periodic|manual)$/) });
      // Resume tidies up first, then finds the step under its own name, with nothing left over.
      removeTemporaryCheckpoints(dir);
      expect({ at, newest: newest(dir)?.name, left: fs.readdirSync(dir).sort() }).toEqual({
        at,
        newest: 'step-00000008',
        left: ['step-00000004', 'step-00000008'],
      });
    }
    // And once it returned, the new one is in place.
    expect(newest(parent)).toEqual({ name: 'step-00000008', step: 8, kind: 'manual' });
    expect(fs.readdirSync(parent).sort()).toEqual(['step-00000004', 'step-00000008']);
  });

  it('puts the old folder back when installing the new one fails', async () => {
    const parent = path.join(tmp.dir, 'run');
    await write(parent, state(8));
    const rename = fs.renameSync;
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (String(from).includes('.tmp-')) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
      rename(from, to);
    });
    await expect(write(parent, state(8, { kind: 'manual' }))).rejects.toThrow(/injected/);
    vi.restoreAllMocks();
    expect(fs.readdirSync(parent)).toEqual(['step-00000008']);
    expect(newest(parent)).toEqual({ name: 'step-00000008', step: 8, kind: 'periodic' });
  });

  it('takes a folder left aside by a crash for its step, and resume restores or removes it', async () => {
    const parent = path.join(tmp.dir, 'run');
    await write(parent, state(4));
    await write(parent, state(8));
    await write(parent, state(12));
    // A replacement of step 8 by process 4321 died between its two renames; one of step 12 after both.
    fs.renameSync(path.join(parent, 'step-00000008'), path.join(parent, 'step-00000008.old-4321'));
    fs.cpSync(path.join(parent, 'step-00000012'), path.join(parent, 'step-00000012.old-4321'), { recursive: true });
    fs.mkdirSync(path.join(parent, 'step-00000016.tmp-4321'));
    expect(checkpointFolders(parent).map((c) => [path.basename(c.dir), c.step])).toEqual([
      ['step-00000004', 4],
      ['step-00000008.old-4321', 8],
      ['step-00000012', 12],
    ]);
    fs.rmSync(path.join(parent, 'step-00000012'), { recursive: true });
    expect(newest(parent)).toEqual({ name: 'step-00000012.old-4321', step: 12, kind: 'periodic' });
    await write(parent, state(12, { kind: 'stop' }));
    expect(fs.readdirSync(parent).sort()).toEqual(['step-00000004', 'step-00000008.old-4321', 'step-00000012', 'step-00000016.tmp-4321']);

    fs.cpSync(path.join(parent, 'step-00000012'), path.join(parent, 'step-00000012.old-99'), { recursive: true });
    expect(removeTemporaryCheckpoints(parent)).toEqual({
      removed: ['step-00000012.old-99', 'step-00000016.tmp-4321'],
      restored: ['step-00000008.old-4321'],
    });
    expect(fs.readdirSync(parent).sort()).toEqual(['step-00000004', 'step-00000008', 'step-00000012']);
    expect(newest(parent)).toEqual({ name: 'step-00000012', step: 12, kind: 'stop' });
    expect(removeTemporaryCheckpoints(path.join(tmp.dir, 'missing'))).toEqual({ removed: [], restored: [] });
  });
});

describe('retention', () => {
  let tmp: ReturnType<typeof tempDir>;
  let parent: string;
  beforeEach(() => {
    tmp = tempDir('srgan-retention-');
    parent = path.join(tmp.dir, 'run');
  });
  afterEach(() => tmp.cleanup());

  /** Checkpoints at these steps with these validation scores (state.json is all retention reads). */
  async function make(scores: [step: number, psnr: number | null, gain: number | null][]): Promise<void> {
    for (const [step, valPsnr, valGain] of scores) await writeCheckpoint(parent, state(step, { valPsnr, valGain }), {});
  }
  const steps = (dirs: string[]) => dirs.map((d) => Number(path.basename(d).slice(5)));

  it('keeps the newest N and the best by gain, not the best by PSNR, and removes the rest', async () => {
    await make([
      [1, 20, 9],
      [2, 60, -1],
      [3, null, null],
      [4, 30, 0.5],
      [5, null, null],
      [6, 31, 0.25],
    ]);
    const r = checkpointRetention(parent, 2);
    expect(steps(r.keep)).toEqual([1, 5, 6]);
    expect(steps(r.remove)).toEqual([2, 3, 4]);
    // The best among the newest is kept once, not as an extra.
    expect(steps(checkpointRetention(parent, 6).keep)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(steps(checkpointRetention(parent, 0).keep)).toEqual([1]);
    expect(steps(checkpointRetention(parent, 0).remove)).toEqual([2, 3, 4, 5, 6]);
    // Pinned steps stay whatever their scores; a pin of a step with no folder changes nothing.
    const pinned = checkpointRetention(parent, 2, new Set([2, 3, 99]));
    expect(steps(pinned.keep)).toEqual([1, 2, 3, 5, 6]);
    expect(steps(pinned.remove)).toEqual([4]);
  });

  it('on a tie keeps the newer; without gains ranks by PSNR; without either keeps the newest only', async () => {
    await make([
      [1, 25, 2],
      [2, 20, 1],
      [3, 24, 2],
      [4, null, null],
      [5, null, null],
    ]);
    expect(steps(checkpointRetention(parent, 1).keep)).toEqual([3, 5]);

    fs.rmSync(parent, { recursive: true });
    await make([
      [1, 25, null],
      [2, 28, null],
      [3, 21, null],
      [4, null, null],
    ]);
    expect(steps(checkpointRetention(parent, 1).keep)).toEqual([2, 4]);

    fs.rmSync(parent, { recursive: true });
    await make([
      [1, null, null],
      [2, null, null],
      [3, null, null],
    ]);
    expect(steps(checkpointRetention(parent, 2).keep)).toEqual([2, 3]);
    expect(checkpointRetention(parent, 0).keep).toEqual([]);
  });

  it('counts a folder left aside by a crash as its step, and ignores temporary and foreign folders', async () => {
    await make([
      [1, 20, 3],
      [2, 20, 1],
      [3, 20, 0],
    ]);
    fs.renameSync(path.join(parent, checkpointName(1)), path.join(parent, `${checkpointName(1)}.old-77`));
    fs.mkdirSync(path.join(parent, `${checkpointName(9)}.tmp-77`));
    fs.mkdirSync(path.join(parent, 'notes'));
    const r = checkpointRetention(parent, 1);
    expect(r.keep.map((d) => path.basename(d))).toEqual(['step-00000001.old-77', 'step-00000003']);
    expect(r.remove.map((d) => path.basename(d))).toEqual(['step-00000002']);
  });
});

describe('a checkpoint with a non-finite tensor (docs/reliability.md, "NaN and Inf")', () => {
  it('is refused, naming the tensor, and leaves the checkpoint already there for the step', async () => {
    const tmp = tempDir('srgan-ckpt-nan-');
    try {
      await write(tmp.dir, state(4));
      for (const bad of [NaN, Infinity, -Infinity]) {
        const w = tf.tensor1d([1, 2, bad]);
        await expect(writeCheckpoint(tmp.dir, state(4, { kind: 'manual' }), { 'G/ok': tf.ones([3]), 'G/w': w })).rejects.toMatchObject({
          code: 'SRGAN_ERR_NONFINITE',
          message: `tensor G/w holds ${bad} at index 2: a checkpoint is never written with non-finite values`,
        });
        w.dispose();
      }
      expect(newest(tmp.dir)).toEqual({ name: checkpointName(4), step: 4, kind: 'periodic' });
      expect(fs.readdirSync(tmp.dir)).toEqual([checkpointName(4)]);
    } finally {
      tmp.cleanup();
    }
  });
});
