// `srgan prepare`: turns folders of photos into the patch dataset the trainer reads (docs/seed.md §2.4),
// resumably. Documented in docs/prepare.md.
//
// Threads: a piscina pool decodes one source per task and answers with PNG bytes (prepare-worker.ts);
// this thread, the only owner of the manifest, gives patch ids and commits. Sources are committed in
// their sorted order through a small reorder window, so the ids (and so the dataset) are the same
// whatever the number of workers.
//
// Commit protocol, and why a kill -9 at any point is safe: for each source, in order, (1) its PNGs are
// written under ids nextPatchId.., then (2) one SQLite transaction records the source and its patches.
// The manifest is the truth: a PNG whose id is not in it is a stray from a killed run, and every stray
// has an id >= the next id (files are only written above the committed maximum), so a resume removes
// files with id >= max committed id + 1 before writing any. A source is done when its path, size and
// mtime match a committed row; identical files (same sha256) give patches once.

import fs, { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Piscina } from 'piscina';
import sharp from 'sharp';

import { SrganError } from '../../util/errors.js';
import { acquireLockFile, releaseLockFile } from '../../util/lock-file.js';
import {
  MANIFEST_FILE,
  Manifest,
  PATCHES_PER_FOLDER,
  patchPath,
  type ManifestTotals,
  type NewPatch,
  type PatchParams,
  type SkipReason,
} from './manifest.js';
import type { PrepareResult, PrepareTask, PrepareWorkerData, StageTimes } from './prepare-worker.js';
import { IMAGE_EXTENSIONS, isImageFile } from '../image/files.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'prepare-worker.js');
/** Accepted extensions when walking a folder (case-insensitive). A file named on the command line is always taken. */
const LOCK_FILE = '.prepare.lock';
/** Bump when the same parameters would give different patches (stored in the manifest, checked on resume). */
export const PIPELINE_VERSION = 1;

export type AlphaMode = 'drop' | 'flatten';

export interface PrepareOptions {
  /** Folders (walked recursively) and files to prepare. */
  sources: string[];
  /** The dataset folder: DATA_DIR/{id/1000}/{id}.png and DATA_DIR/manifest.sqlite. */
  out: string;
  /** Side of the square patches, px. Default 256. */
  patch?: number;
  /** Downscale factors to cut patches from; 1 is the photo itself. Default [1, 2, 4, 8]. */
  levels?: number[];
  /** Patches per level at most (fewer on levels under twice that many patch areas). Default 8. */
  perLevel?: number;
  /** Seed of the crop positions (mixed with each file's sha256). Default 1. */
  seed?: number;
  /** What to do with alpha: drop it like Pillow's convert('RGB') (default), or composite on white. */
  alpha?: AlphaMode;
  /** Downscale in linear light instead of sRGB values. Default false. */
  linear?: boolean;
  /** Downscale every source ×2 before cutting (noisy sources). Default false. */
  predownscale?: boolean;
  /** Downscale ×2 the sources whose EXIF Model (or "Make Model") is one of these. Default []. */
  predownscaleModels?: string[];
  /** Skip images with more pixels than this. Default 178,956,970 (Pillow's decompression-bomb error). */
  maxPixels?: number;
  /** PNG zlib level 0..9. Default 4: files about 1 % larger than at level 6 (Pillow's default) for about 22 % less encoding CPU (docs/prepare.md). */
  pngLevel?: number;
  /** Worker threads. Default os.availableParallelism(). */
  workers?: number;
  /** Called after each committed source. */
  onProgress?: (p: PrepareProgress) => void;
  /** Stops cooperatively: sources in flight are finished and committed, no new ones start. */
  signal?: AbortSignal;
  /** Milliseconds clock for rates and elapsed time. Default performance.now. */
  now?: () => number;
  /** The worker entry; default prepare-worker.js beside this file (tests point at dist/). */
  workerFile?: string;
}

export const PREPARE_DEFAULTS = Object.freeze({
  patch: 256,
  levels: Object.freeze<number[]>([1, 2, 4, 8]),
  perLevel: 8,
  seed: 1,
  alpha: 'drop',
  linear: false,
  predownscale: false,
  predownscaleModels: Object.freeze([]),
  maxPixels: 178_956_970,
  pngLevel: 4,
});

const KNOWN_OPTIONS = new Set([
  'sources',
  'out',
  'patch',
  'levels',
  'perLevel',
  'seed',
  'alpha',
  'linear',
  'predownscale',
  'predownscaleModels',
  'maxPixels',
  'pngLevel',
  'workers',
  'onProgress',
  'signal',
  'now',
  'workerFile',
]);

export interface PrepareProgress {
  /** Image files found under the sources. */
  found: number;
  /** Of those, committed by earlier runs (not looked at again). */
  previouslyDone: number;
  /** Sources this run has to process, and has committed so far. */
  toProcess: number;
  processed: number;
  /** This run: patches written, sources skipped, duplicates. */
  patches: number;
  skipped: number;
  duplicates: number;
  /** Megapixels decoded this run. */
  sourceMegapixels: number;
  elapsedMs: number;
  /** The source committed last. */
  current: string;
}

export type SkipCode = SkipReason | 'duplicate';

export interface PrepareSummary {
  dataDir: string;
  manifest: string;
  found: number;
  previouslyDone: number;
  /** Committed this run, by status. */
  processed: number;
  done: number;
  duplicates: number;
  skipped: number;
  /** This run's skips and duplicates by reason. */
  reasons: Partial<Record<SkipCode, number>>;
  /** This run's skipped and duplicate files, in order, with what happened. */
  skippedFiles: { path: string; reason: SkipCode; message: string }[];
  /** Folders that could not be listed. */
  walkErrors: { path: string; message: string }[];
  /** Uncommitted PNGs of an interrupted run, removed before starting. */
  straysRemoved: number;
  /** Patches written this run. */
  patches: number;
  sourceMegapixels: number;
  elapsedMs: number;
  megapixelsPerSec: number;
  patchesPerSec: number;
  /** Seconds spent per stage, summed over workers (where the time goes). */
  stageSeconds: StageTimes;
  /** Bytes of PNG written this run. */
  pngBytes: number;
  workers: number;
  /** Stopped by the signal before every source was processed. */
  interrupted: boolean;
  /** The whole manifest after this run. */
  totals: ManifestTotals;
}

interface SourceFile {
  path: string;
  size: number;
  mtimeMs: number;
}

interface Resolved {
  sources: string[];
  out: string;
  params: PatchParams;
  maxPixels: number;
  pngLevel: number;
  workers: number;
}

/**
 * Prepares (or resumes preparing) a patch dataset from photos; see PrepareOptions for defaults. Bad
 * options throw TypeError/RangeError naming the field; a dataset made with other parameters, a folder
 * that is not a dataset, or an unwritable patch throw SrganError (SRGAN_ERR_MANIFEST, SRGAN_ERR_DATA).
 * Bad images never throw: they are skipped with a reason.
 */
export async function prepare(options: PrepareOptions): Promise<PrepareSummary> {
  const o = resolveOptions(options);
  const now = options.now ?? (() => performance.now());
  const t0 = now();

  try {
    fs.mkdirSync(o.out, { recursive: true });
  } catch (err) {
    throw new SrganError('SRGAN_ERR_DATA', `cannot create the dataset folder ${o.out}: ${(err as Error).message}`, { cause: err });
  }
  checkDataDir(o.out);
  const releaseLock = acquireLock(o.out);
  let manifest: Manifest | null = null;
  let pool: Piscina | null = null;
  try {
    manifest = Manifest.open(o.out, o.params, {
      pngLevel: o.pngLevel,
      maxPixels: o.maxPixels,
      sources: o.sources,
      libvips: sharp.versions.vips ?? 'unknown',
    });
    let straysRemoved: number;
    try {
      straysRemoved = removeStrays(o.out, manifest.nextPatchId);
    } catch (err) {
      throw new SrganError('SRGAN_ERR_DATA', `cannot remove uncommitted patches in ${o.out}: ${(err as Error).message}`, { cause: err });
    }
    const { files, walkErrors } = listSources(o.sources, o.out);
    const todo = files.filter((f) => !manifest!.isDone(f.path, f.size, f.mtimeMs));

    const summary: PrepareSummary = {
      dataDir: o.out,
      manifest: path.join(o.out, MANIFEST_FILE),
      found: files.length,
      previouslyDone: files.length - todo.length,
      processed: 0,
      done: 0,
      duplicates: 0,
      skipped: 0,
      reasons: {},
      skippedFiles: [],
      walkErrors,
      straysRemoved,
      patches: 0,
      sourceMegapixels: 0,
      elapsedMs: 0,
      megapixelsPerSec: 0,
      patchesPerSec: 0,
      stageSeconds: { read: 0, decode: 0, resize: 0, encode: 0 },
      pngBytes: 0,
      workers: o.workers,
      interrupted: false,
      totals: manifest.totals(),
    };

    if (todo.length > 0) {
      const workerFile = options.workerFile ?? WORKER_FILE;
      if (!fs.existsSync(workerFile))
        throw new SrganError('SRGAN_ERR_DATA', `prepare worker entry ${workerFile} does not exist (is the project built?)`);
      const workerData: PrepareWorkerData = { params: o.params, maxPixels: o.maxPixels, pngLevel: o.pngLevel };
      // No more threads than sources: each costs a sharp load, and a resume often has few left.
      const threads = Math.min(o.workers, todo.length);
      pool = new Piscina({ filename: workerFile, minThreads: threads, maxThreads: threads, idleTimeout: Infinity, workerData });
      const committer = new Committer(o.out, manifest, summary);
      await runPipeline(pool, todo, manifest, committer, threads, options.signal, () => {
        summary.elapsedMs = now() - t0;
        options.onProgress?.({
          found: summary.found,
          previouslyDone: summary.previouslyDone,
          toProcess: todo.length,
          processed: summary.processed,
          patches: summary.patches,
          skipped: summary.skipped,
          duplicates: summary.duplicates,
          sourceMegapixels: summary.sourceMegapixels,
          elapsedMs: summary.elapsedMs,
          current: committer.last,
        });
      });
      summary.interrupted = summary.processed < todo.length;
    }

    summary.elapsedMs = now() - t0;
    const secs = Math.max(summary.elapsedMs / 1000, 1e-9);
    summary.megapixelsPerSec = summary.sourceMegapixels / secs;
    summary.patchesPerSec = summary.patches / secs;
    summary.totals = manifest.totals();
    return summary;
  } finally {
    await pool?.destroy();
    manifest?.close();
    releaseLock();
  }
}

/**
 * Keeps up to `window` sources in flight ahead of the commit cursor and commits them in order. Resolves
 * when every source is committed, or, after the signal, when those in flight are.
 */
function runPipeline(
  pool: Piscina,
  todo: readonly SourceFile[],
  manifest: Manifest,
  committer: Committer,
  workers: number,
  signal: AbortSignal | undefined,
  progress: () => void,
): Promise<void> {
  // Two per worker keeps every worker busy while the head of the line is still being decoded; more only
  // holds more PNG bytes in memory.
  const window = workers * 2 + 1;
  const ready = new Map<number, PrepareResult>();
  let nextSubmit = 0;
  let nextCommit = 0;
  let committing = false;
  let failed = false;
  return new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      if (failed) return;
      const stopping = signal?.aborted === true;
      while (!stopping && nextSubmit < todo.length && nextSubmit - nextCommit < window) submit(nextSubmit++);
      if (committing) return;
      if (ready.has(nextCommit)) {
        committing = true;
        const i = nextCommit;
        const result = ready.get(i) as PrepareResult;
        ready.delete(i);
        committer.commit(todo[i], result).then(
          () => {
            committing = false;
            nextCommit++;
            progress();
            pump();
          },
          (err: unknown) => {
            failed = true;
            reject(err);
          },
        );
      } else if (nextCommit === todo.length || (stopping && nextCommit === nextSubmit)) {
        signal?.removeEventListener('abort', pump);
        resolve();
      }
    };
    const submit = (i: number): void => {
      const file = todo[i];
      const task: PrepareTask = { path: file.path, knownHashes: manifest.doneHashesOfSize(file.size) };
      (pool.run(task) as Promise<PrepareResult>).then(
        (r) => {
          ready.set(i, r);
          pump();
        },
        (err: unknown) => {
          // The worker thread itself died (out of memory, a native crash): piscina replaces it. This file
          // is skipped as `failed`, which the next run retries.
          ready.set(i, {
            status: 'skipped',
            reason: 'failed',
            message: `worker failed: ${(err as Error).message ?? String(err)}`,
            hash: null,
            camera: null,
            predownscaled: false,
            pixels: 0,
            times: { read: 0, decode: 0, resize: 0, encode: 0 },
          });
          pump();
        },
      );
    };
    signal?.addEventListener('abort', pump);
    pump();
  });
}

/** Writes one source's PNGs, then records it; the only writer of patch files and of the manifest. */
class Committer {
  readonly #out: string;
  readonly #manifest: Manifest;
  readonly #summary: PrepareSummary;
  readonly #folders = new Set<number>();
  last = '';

  constructor(out: string, manifest: Manifest, summary: PrepareSummary) {
    this.#out = out;
    this.#manifest = manifest;
    this.#summary = summary;
  }

  async commit(file: SourceFile, r: PrepareResult): Promise<void> {
    const s = this.#summary;
    const m = this.#manifest;
    const base = {
      path: file.path,
      size: file.size,
      mtimeMs: file.mtimeMs,
      hash: r.hash,
      width: r.width,
      height: r.height,
      camera: r.camera,
      predownscaled: r.predownscaled,
    };
    for (const k of ['read', 'decode', 'resize', 'encode'] as const) s.stageSeconds[k] += r.times[k];
    s.sourceMegapixels += r.pixels / 1e6;
    const original = r.status !== 'skipped' && r.hash !== null ? m.doneByHash(r.hash) : undefined;
    if (r.status === 'duplicate' || (r.status === 'done' && original)) {
      if (!original) throw new Error(`internal: ${file.path} matched a known hash that the manifest does not have`);
      const message = `same content (sha256 ${r.hash!.slice(0, 12)}…) as ${original.path}`;
      m.commitSource({ ...base, status: 'duplicate', duplicateOf: original.id, message }, []);
      s.duplicates++;
      this.#skip(file.path, 'duplicate', message);
    } else if (r.status === 'skipped') {
      m.commitSource({ ...base, status: 'skipped', reason: r.reason, message: r.message }, []);
      s.skipped++;
      this.#skip(file.path, r.reason, r.message);
    } else {
      const first = m.nextPatchId;
      const rows: NewPatch[] = r.patches.map((p, i) => ({ id: first + i, level: p.level, x: p.x, y: p.y, size: p.size }));
      await Promise.all(
        r.patches.map(async (p, i) => {
          const id = first + i;
          const folder = Math.floor(id / PATCHES_PER_FOLDER);
          if (!this.#folders.has(folder)) {
            await fsp.mkdir(path.join(this.#out, String(folder)), { recursive: true });
            this.#folders.add(folder);
          }
          const file = patchPath(this.#out, id);
          try {
            await fsp.writeFile(file, new Uint8Array(r.png, p.offset, p.length));
          } catch (err) {
            throw new SrganError('SRGAN_ERR_DATA', `cannot write patch ${file}: ${(err as Error).message}`, { cause: err });
          }
        }),
      );
      m.commitSource({ ...base, status: 'done' }, rows);
      s.done++;
      s.patches += rows.length;
      s.pngBytes += r.png.byteLength;
    }
    s.processed++;
    this.last = file.path;
  }

  #skip(file: string, reason: SkipCode, message: string): void {
    const s = this.#summary;
    s.reasons[reason] = (s.reasons[reason] ?? 0) + 1;
    s.skippedFiles.push({ path: file, reason, message });
  }
}

/** Image files under the sources (folders walked recursively, symlinked folders not followed), sorted, without DATA_DIR. */
export function listSources(
  sources: readonly string[],
  out: string,
): { files: SourceFile[]; walkErrors: { path: string; message: string }[] } {
  const found = new Map<string, SourceFile>();
  const walkErrors: { path: string; message: string }[] = [];
  const add = (p: string, st: fs.Stats) => found.set(p, { path: p, size: st.size, mtimeMs: st.mtimeMs });
  const walk = (dir: string): void => {
    if (dir === out) return; // never prepare our own output
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      walkErrors.push({ path: dir, message: (err as Error).message });
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if ((e.isFile() || e.isSymbolicLink()) && isImageFile(e.name)) {
        try {
          const st = fs.statSync(p);
          if (st.isFile()) add(p, st);
        } catch (err) {
          // A dangling link, or a file that vanished: listed so the summary says so.
          walkErrors.push({ path: p, message: (err as Error).message });
        }
      }
    }
  };
  for (const src of sources) {
    let st: fs.Stats;
    try {
      st = fs.statSync(src);
    } catch (err) {
      throw new SrganError('SRGAN_ERR_DATA', `source ${src} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (st.isDirectory()) walk(src);
    else add(src, st);
  }
  const files = [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (files.length === 0) {
    throw new SrganError('SRGAN_ERR_DATA', `no image files (${IMAGE_EXTENSIONS.join(', ')}) under ${sources.join(', ')}`);
  }
  return { files, walkErrors };
}

/** A DATA_DIR must be a dataset already (it has the manifest) or empty: never write patches into someone's folder. */
function checkDataDir(out: string): void {
  if (fs.existsSync(path.join(out, MANIFEST_FILE))) return;
  const others = fs.readdirSync(out).filter((n) => n !== LOCK_FILE);
  if (others.length > 0) {
    throw new SrganError(
      'SRGAN_ERR_MANIFEST',
      `${out} is not empty and has no ${MANIFEST_FILE} (it holds ${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}); --out must be a new or empty folder, or a dataset made by srgan prepare`,
    );
  }
}

/** Removes PNGs whose id is >= nextId: written by a run that was killed before it committed them. */
function removeStrays(out: string, nextId: number): number {
  let removed = 0;
  const firstFolder = Math.floor(nextId / PATCHES_PER_FOLDER);
  for (const name of fs.readdirSync(out)) {
    if (!/^\d+$/.test(name) || Number(name) < firstFolder) continue;
    const dir = path.join(out, name);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir)) {
      const m = /^(\d+)\.png$/.exec(f);
      if (m && Number(m[1]) >= nextId) {
        fs.rmSync(path.join(dir, f), { force: true });
        removed++;
      }
    }
  }
  return removed;
}

/** One prepare per DATA_DIR at a time; a lock left by a killed run (its pid is gone) is taken over. */
function acquireLock(out: string): () => void {
  const file = path.join(out, LOCK_FILE);
  acquireLockFile(file, {
    held: (pid) => new SrganError('SRGAN_ERR_ALREADY_RUNNING', `another srgan prepare (pid ${pid}) is writing to ${out}`),
    cannotCreate: (err) => new SrganError('SRGAN_ERR_DATA', `cannot write in ${out}: ${err.message}`, { cause: err }),
  });
  return () => releaseLockFile(file);
}

/** Throws the TypeError/RangeError that prepare() would for these options (naming the field), without doing anything. */
export function checkPrepareOptions(o: PrepareOptions): void {
  resolveOptions(o);
}

function resolveOptions(o: PrepareOptions): Resolved {
  if (o === null || typeof o !== 'object') throw new TypeError(`options: expected an object, got ${String(o)}`);
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`options.${key}: unknown option (expected one of ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  if (!Array.isArray(o.sources) || o.sources.length === 0 || !o.sources.every((s) => typeof s === 'string' && s !== '')) {
    throw new TypeError(`sources: expected a non-empty array of paths, got ${JSON.stringify(o.sources)}`);
  }
  if (typeof o.out !== 'string' || o.out === '') throw new TypeError(`out: expected a non-empty path, got ${String(o.out)}`);
  const d = PREPARE_DEFAULTS;
  const patch = int('patch', o.patch ?? d.patch, 8, 8192);
  const levels = o.levels ?? [...d.levels];
  if (!Array.isArray(levels) || levels.length === 0)
    throw new RangeError(`levels: expected a non-empty array of downscale factors, got ${JSON.stringify(levels)}`);
  levels.forEach((f, i) => int(`levels[${i}]`, f, 1, 64));
  if (new Set(levels).size !== levels.length) throw new RangeError(`levels: each factor once, got ${levels.join(',')}`);
  const perLevel = int('perLevel', o.perLevel ?? d.perLevel, 1, 10_000);
  const seed = int('seed', o.seed ?? d.seed, 0, 0xffff_ffff);
  const alpha = o.alpha ?? d.alpha;
  if (alpha !== 'drop' && alpha !== 'flatten') throw new RangeError(`alpha: expected "drop" or "flatten", got ${JSON.stringify(alpha)}`);
  const linear = bool('linear', o.linear ?? d.linear);
  const predownscale = bool('predownscale', o.predownscale ?? d.predownscale);
  const models = o.predownscaleModels ?? [...d.predownscaleModels];
  if (!Array.isArray(models) || !models.every((m) => typeof m === 'string' && m.trim() !== '')) {
    throw new TypeError(`predownscaleModels: expected an array of camera model names, got ${JSON.stringify(models)}`);
  }
  const maxPixels = int('maxPixels', o.maxPixels ?? d.maxPixels, 1, Number.MAX_SAFE_INTEGER);
  const pngLevel = int('pngLevel', o.pngLevel ?? d.pngLevel, 0, 9);
  const workers = int('workers', o.workers ?? availableParallelism(), 1, 1024);
  for (const k of ['onProgress', 'now'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'function') throw new TypeError(`${k}: expected a function, got ${typeof o[k]}`);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError('signal: expected an AbortSignal');
  const params: PatchParams = {
    pipeline: PIPELINE_VERSION,
    patch,
    levels: [...levels].sort((a, b) => a - b),
    perLevel,
    seed,
    alpha,
    linear,
    predownscale,
    predownscaleModels: models.map((m) => m.trim()),
  };
  return { sources: o.sources.map((s) => path.resolve(s)), out: path.resolve(o.out), params, maxPixels, pngLevel, workers };
}

function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${name}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
}
