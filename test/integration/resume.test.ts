// Checkpoints and resume through the real CLI and daemon: a run stopped and resumed computes exactly
// what an uninterrupted run computes; after kill -9 it continues from the last checkpoint with an
// intact database; damaged and half-written checkpoints are passed over with an event.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { isAlive } from '../../src/daemon/home.js';
import { listCheckpoints, openDb, recordCheckpoint } from '../../src/daemon/db.js';
import { writeCheckpoint } from '../../src/models/checkpoint.js';

const tmp = tempDir('srgan-resume-');
const photos = path.join(tmp.dir, 'photos');
const configFile = path.join(tmp.dir, 'tiny.json');
const pids: number[] = [];

// Small enough that a step takes milliseconds on the wasm backend (tfjs' cpu backend is ~10× slower here); 2 loader threads so frames really
// arrive out of order; validation on, so val_psnr and the best checkpoint are exercised.
const TINY = {
  backend: 'wasm',
  dataDir: photos,
  patchSize: 32,
  batchSize: 2,
  generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
  discriminator: { kind: 'patch', mid: 4 },
  loaderWorkers: 2,
  patchesPerImage: 2,
  previewEvery: 0,
  checkpointEvery: 4,
  checkpointMinutes: 0,
  checkpointKeep: 2,
  valEvery: 4,
  valImages: 2,
  seed: 3,
};

beforeAll(async () => {
  fs.mkdirSync(photos, { recursive: true });
  for (let i = 0; i < 10; i++) {
    const w = 80 + i * 4;
    const data = Buffer.alloc(w * 72 * 3);
    for (let p = 0; p < data.length; p++) data[p] = (Math.sin(p * 0.01 * (i + 1)) * 120 + 128 + ((p / 240) | 0) * (i % 3)) & 255;
    await sharp(data, { raw: { width: w, height: 72, channels: 3 } }).png().toFile(path.join(photos, `p${i}.png`));
  }
  fs.writeFileSync(configFile, JSON.stringify(TINY));
});

afterEach(() => {
  for (const pid of pids.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

interface Info { pid: number; runId: string }

function start(home: string, args: string[], faults: Record<string, string> = {}): Info {
  // The daemon inherits the environment of `srgan start`: fault-injection variables reach it this way.
  Object.assign(process.env, faults);
  try {
    const info = srganJson<Info>(home, ['start', ...args]);
    pids.push(info.pid);
    return info;
  } finally {
    for (const k of Object.keys(faults)) delete process.env[k];
  }
}

async function waitExit(pid: number): Promise<void> {
  await waitFor(`daemon ${pid} to exit`, () => !isAlive(pid), 120_000, 100);
}

/** step → value of `key`, from the runs database. */
function curve(home: string, runId: string, key: string): Map<number, number> {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step').all(runId, key) as { step: number; value: number }[];
    return new Map(rows.map((r) => [r.step, r.value]));
  } finally {
    db.close();
  }
}

function events(home: string, runId: string, kind: string): { message: string }[] {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare('SELECT message FROM events WHERE run_id = ? AND kind = ? ORDER BY id').all(runId, kind) as { message: string }[];
  } finally {
    db.close();
  }
}

describe('checkpoints and resume', () => {
  // One uninterrupted reference run, shared by the tests below.
  const refHome = path.join(tmp.dir, 'ref');
  let ref: Map<number, number>;
  let refRun: string;

  beforeAll(async () => {
    const info = start(refHome, ['--config', configFile, '--max-steps', '12']);
    await waitExit(info.pid);
    refRun = info.runId;
    ref = curve(refHome, refRun, 'g_loss');
  }, 180_000);

  it('a run stopped and resumed gives the same losses, step for step, as one that never stopped', async () => {
    expect([...ref.keys()]).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const home = path.join(tmp.dir, 'stopped');
    const first = start(home, ['--config', configFile, '--max-steps', '6']);
    await waitExit(first.pid); // stops itself at step 6, writing a 'stop' checkpoint
    const ckpts = fs.readdirSync(path.join(home, 'checkpoints', first.runId)).sort();
    expect(ckpts).toEqual(['step-00000004', 'step-00000006']);

    const second = start(home, ['--resume', first.runId.slice(0, 17), '--max-steps', '12']);
    expect(second.runId).toBe(first.runId);
    await waitExit(second.pid);
    const resumed = curve(home, first.runId, 'g_loss');
    expect([...resumed.keys()]).toEqual([...ref.keys()]);
    for (const [step, v] of ref) expect({ step, v: resumed.get(step) }).toEqual({ step, v });
    // Discriminator and validation values too.
    expect([...curve(home, first.runId, 'd_loss')]).toEqual([...curve(refHome, refRun, 'd_loss')]);
    expect([...curve(home, first.runId, 'val_psnr').keys()]).toEqual([4, 8, 12]);
    expect([...curve(home, first.runId, 'val_psnr')]).toEqual([...curve(refHome, refRun, 'val_psnr')]);
    expect(events(home, first.runId, 'resume_run')[0]!.message).toMatch(/from step-00000006 \(step 6\)/);

    const runs = srganJson<{ runs: { id: string; status: string; last_step: number }[] }>(home, ['runs']).runs;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ id: first.runId, status: 'stopped', last_step: 12 });
  }, 240_000);

  it('after kill -9 it resumes from the last checkpoint, drops the steps after it, and the database is intact', async () => {
    const home = path.join(tmp.dir, 'killed');
    const info = start(home, ['--config', configFile, '--max-steps', '400']);
    const dir = path.join(home, 'checkpoints', info.runId);
    await waitFor('a checkpoint past step 8', () => fs.existsSync(dir) && fs.readdirSync(dir).some((n) => /^step-\d+$/.test(n) && Number(n.slice(5)) >= 8), 120_000, 50);
    // `srgan checkpoint` answers once the checkpoint is on disk.
    const manual = srganJson<{ step: number; dir: string; kind: string; checksum: string }>(home, ['checkpoint']);
    expect(manual.kind).toBe('manual');
    expect(manual.step).toBeGreaterThanOrEqual(8);
    expect(fs.existsSync(path.join(manual.dir, 'checksums.json'))).toBe(true);
    process.kill(info.pid, 'SIGKILL');
    await waitExit(info.pid);
    const db = new Database(path.join(home, 'runs.db'));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    const kept = fs.readdirSync(dir).filter((n) => /^step-\d+$/.test(n)).sort();
    const last = Number(kept.at(-1)!.slice(5));
    // Retention: the last 2, plus the best by validation gain.
    expect(kept.length).toBeLessThanOrEqual(3);

    const again = start(home, ['--resume', info.runId, '--max-steps', String(last + 4)]);
    await waitExit(again.pid);
    const c = curve(home, info.runId, 'g_loss');
    expect([...c.keys()]).toEqual(Array.from({ length: last + 4 }, (_, i) => i + 1));
    // The steps after the checkpoint were trained again from the same state: same values as the reference.
    for (let s = 1; s <= Math.min(12, last + 4); s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
  }, 240_000);

  it('kill -9 in the middle of writing a checkpoint: the half-written folder is ignored and removed', async () => {
    const home = path.join(tmp.dir, 'killed-writing');
    const info = start(home, ['--config', configFile, '--max-steps', '400'], { SRGAN_FAULT_CHECKPOINT_PAUSE_MS: '1500' });
    const dir = path.join(home, 'checkpoints', info.runId);
    await waitFor('the second checkpoint being written', () => fs.existsSync(path.join(dir, 'step-00000008.tmp-' + info.pid)), 120_000, 20);
    process.kill(info.pid, 'SIGKILL');
    await waitExit(info.pid);
    expect(fs.readdirSync(dir).sort()).toEqual(['step-00000004', `step-00000008.tmp-${info.pid}`]);

    const again = start(home, ['--resume', info.runId, '--max-steps', '10']);
    await waitExit(again.pid);
    expect(events(home, info.runId, 'resume_run')[0]!.message).toMatch(/step-00000004 \(step 4\)/);
    expect(events(home, info.runId, 'checkpoint_skipped')[0]!.message).toMatch(/never finished/);
    const c = curve(home, info.runId, 'g_loss');
    for (let s = 1; s <= 10; s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }, 240_000);

  it('a trainer thread that dies is restarted from the newest checkpoint, and the run goes on as if nothing happened', async () => {
    const home = path.join(tmp.dir, 'trainer-crash');
    const info = start(home, ['--config', configFile, '--max-steps', '12'], { SRGAN_FAULT_TRAINER_FAIL_AT_STEP: '10' });
    await waitExit(info.pid);
    expect(events(home, info.runId, 'trainer_restart')[0]!.message).toMatch(/injected trainer fault at step 10.*continuing from step-00000008 \(step 8\)/);
    const c = curve(home, info.runId, 'g_loss');
    expect([...c.keys()]).toEqual([...ref.keys()]);
    for (const [step, v] of ref) expect({ step, v: c.get(step) }).toEqual({ step, v });
    const run = srganJson<{ runs: { status: string; last_step: number }[] }>(home, ['runs']).runs[0];
    expect(run).toMatchObject({ status: 'stopped', last_step: 12 });
  }, 240_000);

  it('retention keeps the newest checkpointKeep and the best by validation gain, not the best by PSNR', async () => {
    const home = path.join(tmp.dir, 'retention');
    const first = start(home, ['--config', configFile, '--max-steps', '4']);
    await waitExit(first.pid); // one checkpoint, step 4, validated
    const dir = path.join(home, 'checkpoints', first.runId);
    const name = (step: number) => path.join(dir, `step-${String(step).padStart(8, '0')}`);
    // Older checkpoints as an earlier stretch of the run would have left them (state.json is all
    // retention reads): step 1 with the highest gain, step 2 with by far the highest PSNR but a
    // negative gain, step 3 not validated. The trained model's gains are nowhere near 9 dB.
    const db = openDb(path.join(home, 'runs.db'));
    for (const [step, valPsnr, valGain] of [[1, 20, 9], [2, 60, -1], [3, null, null]] as const) {
      const state = { runId: first.runId, step, time: step, kind: 'periodic', config: TINY, scheduler: {}, gan: {}, rng: { jpeg: 0, perceptual: null }, data: { seq: 0, patchesPerImage: 2, images: 8 }, valPsnr, valGain, metrics: [] };
      const w = await writeCheckpoint(dir, state as unknown as Parameters<typeof writeCheckpoint>[1], {});
      recordCheckpoint(db, { run_id: first.runId, step, time: step, path: w.dir, checksum: w.checksum, kind: 'periodic', psnr: valPsnr, gain: valGain });
    }
    db.close();

    // checkpointKeep 2: every checkpoint after the resume leaves the newest two and step 1. No more
    // validations (valEvery may change on resume), so status shows what the run knew before it.
    const noVal = path.join(tmp.dir, 'no-val.json');
    fs.writeFileSync(noVal, JSON.stringify({ valEvery: 1000 }));
    const again = start(home, ['--resume', first.runId, '--config', noVal, '--max-steps', '400']);
    const s = await waitFor('training after the resume', () => {
      const st = srganJson<{ step: number; validation: unknown }>(home, ['status']);
      return st.step >= 9 ? st : null;
    }, 120_000, 50);
    expect(srgan(home, ['stop']).status).toBe(0);
    await waitExit(again.pid);
    const g4 = curve(home, first.runId, 'val_gain').get(4)!;
    const [p4, b4] = [curve(home, first.runId, 'val_psnr').get(4)!, curve(home, first.runId, 'val_bicubic').get(4)!];
    expect(s.validation).toEqual({ step: 4, psnr: p4, bicubic: b4, gain: g4, best: { step: 4, gain: g4 } });

    const read = openDb(path.join(home, 'runs.db'), { readonly: true });
    const rows = listCheckpoints(read, first.runId, { includeDeleted: true });
    read.close();
    const newest = rows.slice(-2).map((r) => r.path);
    expect(rows.at(-1)!.step).toBeGreaterThanOrEqual(8);
    expect(fs.readdirSync(dir).map((n) => path.join(dir, n)).sort()).toEqual([name(1), ...newest]);
    expect(rows.filter((r) => !r.deleted).map((r) => r.path)).toEqual([name(1), ...newest]);
    // The highest PSNR (step 2) is not what is kept.
    expect(rows.filter((r) => r.deleted).map((r) => r.path).slice(0, 3)).toEqual([name(2), name(3), name(4)]);
    // The daemon records each checkpoint's gain: step 4's is val_gain at step 4; the later ones were not validated.
    expect(rows.filter((x) => x.step >= 4).map((r) => [r.step, r.gain])).toEqual(rows.filter((x) => x.step >= 4).map((r) => [r.step, r.step === 4 ? g4 : null]));
  }, 240_000);

  it('a damaged newest checkpoint is skipped for the one before it, with an event; no checkpoint at all is a clear error', async () => {
    const home = path.join(tmp.dir, 'damaged');
    const info = start(home, ['--config', configFile, '--max-steps', '8']);
    await waitExit(info.pid);
    const dir = path.join(home, 'checkpoints', info.runId);
    // Flip bytes in the newest checkpoint's tensors; leave a half-written one beside it.
    const bin = path.join(dir, 'step-00000008', 'tensors.bin');
    const bytes = fs.readFileSync(bin);
    bytes[100] = bytes[100]! ^ 0xff;
    fs.writeFileSync(bin, bytes);
    fs.mkdirSync(path.join(dir, 'step-00000009.tmp-12345'));

    const again = start(home, ['--resume', info.runId, '--max-steps', '12']);
    await waitExit(again.pid);
    expect(events(home, info.runId, 'checkpoint_skipped').map((e) => e.message).join('\n')).toMatch(/step-00000008: tensors\.bin is damaged/);
    expect(events(home, info.runId, 'resume_run')[0]!.message).toMatch(/step-00000004 \(step 4\)/);
    const c = curve(home, info.runId, 'g_loss');
    for (let s = 1; s <= 12; s++) expect({ s, v: c.get(s) }).toEqual({ s, v: ref.get(s) });
    expect(fs.existsSync(path.join(dir, 'step-00000009.tmp-12345'))).toBe(false);

    fs.rmSync(dir, { recursive: true });
    const r = srgan(home, ['start', '--resume', info.runId]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/SRGAN_ERR_CHECKPOINT: run .* has no usable checkpoint/);
    expect(srgan(home, ['start', '--resume', 'no-such-run']).stderr).toMatch(/SRGAN_ERR_CONFIG/);
    expect(srgan(home, ['start', '--resume', info.runId, '--seed', '4']).stderr).toMatch(/--seed cannot be given with --resume/);
  }, 240_000);
});
