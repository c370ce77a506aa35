// The options of `srgan prepare` (docs/prepare.md), their defaults and checks, and what it reports.

import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { ManifestTotals, PatchParams, SkipReason } from './manifest.js';
import type { StageTimes } from './worker.js';

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
  /** The worker entry; default worker.js beside this file (tests point at dist/). */
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

export interface Resolved {
  sources: string[];
  out: string;
  params: PatchParams;
  maxPixels: number;
  pngLevel: number;
  workers: number;
}

/** Throws the TypeError/RangeError that prepare() would for these options (naming the field), without doing anything. */
export function checkPrepareOptions(o: PrepareOptions): void {
  resolveOptions(o);
}

export function resolveOptions(o: PrepareOptions): Resolved {
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
