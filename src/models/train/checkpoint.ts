// Checkpoint folders: everything needed to continue a run exactly, written so that a crash at any
// moment leaves either the previous checkpoint or the new one, never half of one.
//
//   step-00001200/
//     state.json       run id, step, reason, effective config, scheduler snapshot, optimizer scalars,
//                      RNG states, data position, validation PSNR, and the table of tensors.bin
//     tensors.bin      float32 tensors back to back: G, D, D's statistics, EMA, Adam moments
//     generator/       the generator (EMA weights when there is an EMA) as a tfjs LayersModel:
//                      model.json + shards, loadable with tf.loadLayersModel as it is
//     checksums.json   sha256 of every other file; written last
//
// Writing: everything goes into `step-…tmp-PID`, each file is fsynced, then checksums.json, then the
// folder is renamed into place and the parent fsynced. A folder already there for the same step is
// renamed aside (`step-….old-PID`) first and removed only once the new one is in place: a directory
// cannot be renamed over another, and removing the old one first would leave a moment with neither.
// Readers take an aside folder for its step while the step has no other (checkpointFolders), and resume
// renames it back (removeTemporaryCheckpoints). Reading verifies every checksum first; a missing or
// damaged file is SRGAN_ERR_CHECKPOINT naming it, and callers fall back to an older one.
//
// No tfjs here: the daemon's main thread lists, verifies and prunes checkpoints with this module.
// Tensors are written from anything with float32 data (SavedTensor); checkpoint-tensors.ts reads them
// back as tfjs tensors, in the trainer worker.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SrganError } from '../../util/errors.js';
import type { RunConfig } from '../../config/presets.js';
import type { SchedulerSnapshot } from './scheduler.js';
import type { CheckpointKind } from '../../store/db.js';

export const CHECKPOINT_FORMAT = 'srgan-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** Why a checkpoint was written. */
export type { CheckpointKind };

/** The scalar part of a Gan's training state (the tensors go beside it, see Gan.exportState in gan.ts). */
export interface GanScalars {
  optG: { iterations: number; accBeta1: number; accBeta2: number };
  optD: { iterations: number; accBeta1: number; accBeta2: number };
  /** State of the shift-crop generator. */
  shiftRng: number;
}

/** What writeCheckpoint reads of a tensor; a tfjs Tensor is one. */
export interface SavedTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly size: number;
  data(): Promise<ArrayLike<number>>;
}

export interface TensorEntry {
  name: string;
  shape: number[];
  /** Byte offset into tensors.bin (a multiple of 4). */
  offset: number;
}

/** state.json. */
export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  runId: string;
  /** Generator steps completed. */
  step: number;
  /** Unix seconds. */
  time: number;
  kind: CheckpointKind;
  config: RunConfig;
  scheduler: SchedulerSnapshot;
  gan: GanScalars;
  /** RNG states beside the Gan's own: JPEG quality draws, the perceptual loss' shift crops. */
  rng: { jpeg: number; perceptual: number | null };
  /**
   * Where the data sequence continues: the seq of the next patch to train on, with the loader's
   * patches per image visit and image count (position = floor(seq / patchesPerImage)).
   */
  data: { seq: number; patchesPerImage: number; images: number };
  /** Validation PSNR (Y, dB, standard protocol) at this step, if measured. */
  valPsnr: number | null;
  /** Validation gain over bicubic (dB, standard protocol) at this step, if measured (absent before it existed). */
  valGain?: number | null;
  /** The best validation gain of the run up to this step (a resumed run keeps choosing 'best' by it). */
  bestValGain?: number | null;
  /**
   * The metrics logged since the previous checkpoint and in the minute before it. The trainer hands metrics to the database in
   * batches; after a kill, resume writes these back so the curve has no hole before the checkpoint.
   */
  metrics: { step: number; wallTime: number; values: Record<string, number> }[];
  /**
   * What non-finite steps have done to the run (docs/reliability.md, "NaN and Inf"): the factor on
   * every learning rate, and the rollbacks that set it (absent before they existed: 1 and 0).
   */
  lrScale?: number;
  rollbacks?: number;
  tensors: TensorEntry[];
}

const STEP_DIR = /^step-(\d{8,})$/;
/** A checkpoint folder renamed aside while a new one for its step took its place. */
const ASIDE_DIR = /^(step-\d{8,})\.old-\d+$/;

/** The folder name for `step` (sortable by name). */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function writeFileSynced(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p, base));
    else out.push(path.relative(base, p));
  }
  return out.sort();
}

/**
 * Writes a checkpoint folder `parent/step-NNNNNNNN` atomically. `extra(tmpDir)` may add files (the
 * LayersModel export) before the checksums are taken. Returns the folder and the sha256 of
 * checksums.json (which covers every file). An existing folder for the same step is replaced; until
 * the new one is in place the old one stays whole (under an aside name that readers accept).
 */
export async function writeCheckpoint(
  parent: string,
  state: Omit<CheckpointState, 'format' | 'version' | 'tensors'>,
  tensors: Record<string, SavedTensor>,
  extra?: (dir: string) => Promise<void>,
): Promise<{ dir: string; checksum: string; bytes: number }> {
  fs.mkdirSync(parent, { recursive: true });
  const final = path.join(parent, checkpointName(state.step));
  const tmp = `${final}.tmp-${process.pid}`;
  const aside = `${final}.old-${process.pid}`;
  let asideTaken = false;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    const entries: TensorEntry[] = [];
    const names = Object.keys(tensors).sort();
    let size = 0;
    for (const name of names) {
      const t = tensors[name];
      if (t.dtype !== 'float32') throw new TypeError(`tensor ${name}: only float32 is saved, got ${t.dtype}`);
      entries.push({ name, shape: [...t.shape], offset: size });
      size += t.size * 4;
    }
    const bin = new Uint8Array(size);
    const f32 = new Float32Array(bin.buffer);
    // Read asynchronously: a GPU backend has no blocking read in Node.
    const values = await Promise.all(names.map((name) => tensors[name].data()));
    values.forEach((v, i) => f32.set(v, entries[i].offset / 4));
    // A checkpoint is what a run goes back to: it never holds a NaN or an infinity.
    values.forEach((v, i) => {
      let at = -1;
      for (let j = 0; j < v.length && at < 0; j++) if (!Number.isFinite(v[j])) at = j;
      if (at >= 0) {
        throw new SrganError(
          'SRGAN_ERR_NONFINITE',
          `tensor ${names[i]} holds ${v[at]} at index ${at}: a checkpoint is never written with non-finite values`,
        );
      }
    });
    writeFileSynced(path.join(tmp, 'tensors.bin'), bin);
    const full: CheckpointState = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, ...state, tensors: entries };
    writeFileSynced(path.join(tmp, 'state.json'), JSON.stringify(full, null, 1));
    if (extra) await extra(tmp);
    // Fault injection for the crash tests: hold the half-written folder open for a while.
    const pauseMs = Number(process.env.SRGAN_FAULT_CHECKPOINT_PAUSE_MS ?? 0);
    if (pauseMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pauseMs);
    const files = listFiles(tmp);
    let bytes = 0;
    const sums: Record<string, string> = {};
    for (const f of files) {
      const p = path.join(tmp, f);
      fsyncPath(p); // files written by `extra` too
      bytes += fs.statSync(p).size;
      sums[f] = sha256(p);
    }
    const checksums = JSON.stringify({ algorithm: 'sha256', files: sums }, null, 1);
    writeFileSynced(path.join(tmp, 'checksums.json'), checksums);
    for (const d of new Set(files.map((f) => path.dirname(path.join(tmp, f))))) fsyncPath(d);
    fsyncPath(tmp);
    try {
      // A leftover of an earlier process with our pid goes only while `final` is there to replace it.
      if (fs.existsSync(aside) && fs.existsSync(final)) fs.rmSync(aside, { recursive: true, force: true });
      fs.renameSync(final, aside);
      asideTaken = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // ENOENT: no folder for this step yet
    }
    fs.renameSync(tmp, final);
    fsyncPath(parent);
    asideTaken = false;
    // Only now, with the new folder in place: ours, and any an earlier process left for this step.
    for (const n of fs.readdirSync(parent)) {
      if (ASIDE_DIR.exec(n)?.[1] === path.basename(final)) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
    }
    return { dir: final, checksum: crypto.createHash('sha256').update(checksums).digest('hex'), bytes: bytes + checksums.length };
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (asideTaken && !fs.existsSync(final)) fs.renameSync(aside, final);
    throw err;
  }
}

const corrupt = (dir: string, what: string, cause?: unknown): SrganError =>
  new SrganError('SRGAN_ERR_CHECKPOINT', `checkpoint ${dir}: ${what}`, cause === undefined ? undefined : { cause });

/** Checks every file of a checkpoint folder against checksums.json; throws SRGAN_ERR_CHECKPOINT naming the first bad one. */
export function verifyCheckpoint(dir: string): void {
  let sums: Record<string, string>;
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, 'checksums.json'), 'utf8')) as { files?: unknown };
    if (typeof parsed.files !== 'object' || parsed.files === null) throw new Error('no "files" table');
    sums = parsed.files as Record<string, string>;
  } catch (err) {
    throw corrupt(dir, `checksums.json is missing or unreadable (${(err as Error).message}): an interrupted write?`, err);
  }
  for (const f of ['state.json', 'tensors.bin']) if (!(f in sums)) throw corrupt(dir, `checksums.json does not list ${f}`);
  for (const [f, want] of Object.entries(sums)) {
    const p = path.join(dir, f);
    if (path.relative(dir, p).startsWith('..')) throw corrupt(dir, `checksums.json names a file outside the checkpoint: ${f}`);
    let got: string;
    try {
      got = sha256(p);
    } catch (err) {
      throw corrupt(dir, `${f} is missing (${(err as Error).message})`, err);
    }
    if (got !== want) throw corrupt(dir, `${f} is damaged (sha256 ${got.slice(0, 12)}…, expected ${String(want).slice(0, 12)}…)`);
  }
}

/**
 * Verifies a checkpoint folder and reads its state.json; SRGAN_ERR_CHECKPOINT when a file is damaged or
 * the state is not an srgan checkpoint of this version. readCheckpoint (checkpoint-tensors.ts) adds the tensors.
 * `verified`: the caller has just verified the folder (latestValidCheckpoint, verifyCheckpoint), so its
 * checksums are not computed again. The one reader of state.json outside this file's own helpers.
 */
export function readCheckpointState(dir: string, opts: { verified?: boolean } = {}): CheckpointState {
  if (!opts.verified) verifyCheckpoint(dir);
  let state: CheckpointState;
  try {
    state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as CheckpointState;
  } catch (err) {
    throw corrupt(dir, `state.json is not valid JSON (${(err as Error).message})`, err);
  }
  if (state.format !== CHECKPOINT_FORMAT)
    throw corrupt(dir, `state.json is not an srgan checkpoint (format ${JSON.stringify(state.format)})`);
  if (state.version !== CHECKPOINT_VERSION) {
    throw corrupt(dir, `state.json has version ${state.version}; this srgan reads version ${CHECKPOINT_VERSION}`);
  }
  if (!Array.isArray(state.tensors) || !Number.isInteger(state.step)) throw corrupt(dir, 'state.json lacks its step or tensor table');
  return state;
}

/**
 * Reads tensors.bin of a checkpoint folder whose `state` readCheckpointState returned, and hands `each`
 * every tensor of the table in turn: its name, a new Float32Array of its values, and its shape.
 */
export function forEachSavedTensor(
  dir: string,
  state: CheckpointState,
  each: (name: string, data: Float32Array, shape: number[]) => void,
): void {
  const bin = fs.readFileSync(path.join(dir, 'tensors.bin'));
  for (const e of state.tensors) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.offset % 4 !== 0 || e.offset + n * 4 > bin.length) throw corrupt(dir, `tensor ${e.name} lies outside tensors.bin`);
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bin.subarray(e.offset, e.offset + n * 4));
    each(e.name, data, e.shape);
  }
}

/**
 * The checkpoint folders under `parent`, oldest first (by step), one per step. A folder renamed aside
 * (`step-N.old-PID`) stands for step N when there is no `step-N`: a process died while replacing it.
 * Temporary and foreign folders are ignored.
 */
export function checkpointFolders(parent: string): { dir: string; step: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(parent).sort();
  } catch {
    return [];
  }
  const byStep = new Map<number, string>();
  for (const n of names) {
    const m = STEP_DIR.exec(n);
    if (m) byStep.set(Number(m[1]), n);
  }
  for (const n of names) {
    const m = ASIDE_DIR.exec(n);
    const step = m ? Number(m[1].slice(5)) : NaN;
    if (m && !byStep.has(step)) byStep.set(step, n);
  }
  return [...byStep].map(([step, n]) => ({ dir: path.join(parent, n), step })).sort((a, b) => a.step - b.step);
}

/** What is known of a checkpoint's validation: its gain over bicubic and its PSNR (dB), null when unmeasured. */
export interface ValidationScores {
  step: number;
  gain: number | null;
  psnr: number | null;
}

/**
 * Checkpoints ordered best first, as retention and `--best` mean it: by validation gain over bicubic
 * when any of them has one (PSNR alone rewards an easy validation set as much as a good model), else by
 * PSNR (a run from before gains were measured). Checkpoints without the measure used are left out; on
 * a tie the newer comes first. `by` is null when none was measured.
 */
export function rankByValidation<T extends ValidationScores>(items: readonly T[]): { by: 'gain' | 'psnr' | null; ranked: T[] } {
  const finite = (v: number | null): v is number => typeof v === 'number' && Number.isFinite(v);
  const by = items.some((c) => finite(c.gain)) ? 'gain' : items.some((c) => finite(c.psnr)) ? 'psnr' : null;
  if (by === null) return { by, ranked: [] };
  const ranked = items.filter((c) => finite(c[by])).sort((a, b) => (b[by] as number) - (a[by] as number) || b.step - a.step);
  return { by, ranked };
}

/** valGain and valPsnr from a checkpoint folder's state.json; nulls when missing or unreadable. */
export function stateScores(dir: string): { gain: number | null; psnr: number | null } {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as Partial<CheckpointState>;
    return { gain: typeof s.valGain === 'number' ? s.valGain : null, psnr: typeof s.valPsnr === 'number' ? s.valPsnr : null };
  } catch {
    return { gain: null, psnr: null };
  }
}

/**
 * Retention: which checkpoint folders under `parent` stay (the newest `keepNewest`, the best by
 * rankByValidation over all of them, and those at the `pinned` steps) and which go. Reads state.json
 * only; removes nothing.
 */
export function checkpointRetention(
  parent: string,
  keepNewest: number,
  pinned: ReadonlySet<number> = new Set(),
): { keep: string[]; remove: string[] } {
  const all = checkpointFolders(parent);
  const keep = new Set(keepNewest > 0 ? all.slice(-keepNewest).map((c) => c.dir) : []);
  for (const c of all) if (pinned.has(c.step)) keep.add(c.dir);
  const best = rankByValidation(all.map((c) => ({ ...c, ...stateScores(c.dir) }))).ranked[0];
  if (best) keep.add(best.dir);
  return { keep: all.filter((c) => keep.has(c.dir)).map((c) => c.dir), remove: all.filter((c) => !keep.has(c.dir)).map((c) => c.dir) };
}

/**
 * The newest checkpoint under `parent` that verifies, and the ones skipped on the way (with why).
 * Null when there is none.
 */
export function latestValidCheckpoint(parent: string): { dir: string; step: number; skipped: { dir: string; reason: string }[] } | null {
  const skipped: { dir: string; reason: string }[] = [];
  for (const c of checkpointFolders(parent).reverse()) {
    try {
      verifyCheckpoint(c.dir);
      return { ...c, skipped };
    } catch (err) {
      skipped.push({ dir: c.dir, reason: (err as Error).message });
    }
  }
  return null;
}

/**
 * Tidies up after interrupted writes, for a process that owns `parent` and writes nothing there yet:
 * removes `step-….tmp-PID` folders, and puts a folder renamed aside back under its own name when that
 * name is free (the replacement never arrived; the folder is the step's previous checkpoint), else
 * removes it. Returns the folder names removed and the ones restored.
 */
export function removeTemporaryCheckpoints(parent: string): { removed: string[]; restored: string[] } {
  let names: string[] = [];
  try {
    names = fs.readdirSync(parent).sort();
  } catch {
    return { removed: [], restored: [] };
  }
  const removed: string[] = [];
  const restored: string[] = [];
  for (const n of names) {
    if (/^step-\d+\.tmp-\d+$/.test(n)) {
      fs.rmSync(path.join(parent, n), { recursive: true, force: true });
      removed.push(n);
      continue;
    }
    const own = ASIDE_DIR.exec(n)?.[1];
    if (own === undefined) continue;
    if (fs.existsSync(path.join(parent, own))) {
      fs.rmSync(path.join(parent, n), { recursive: true, force: true });
      removed.push(n);
    } else {
      fs.renameSync(path.join(parent, n), path.join(parent, own));
      restored.push(n);
    }
  }
  if (restored.length) fsyncPath(parent);
  return { removed, restored };
}
