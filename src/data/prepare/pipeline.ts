// `srgan prepare`: turns folders of photos into the patch dataset the trainer reads (docs/seed.md §2.4),
// resumably. Documented in docs/prepare.md.
//
// Threads: a piscina pool decodes one source per task and answers with PNG bytes (worker.ts);
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

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Piscina } from 'piscina';
import sharp from 'sharp';

import { SrganError } from '../../util/errors.js';
import { acquireLockFile, releaseLockFile } from '../../util/lock-file.js';
import { MANIFEST_FILE, Manifest, PATCHES_PER_FOLDER } from './manifest.js';
import type { PrepareResult, PrepareTask, PrepareWorkerData } from './worker.js';
import { resolveOptions, type PrepareOptions, type PrepareSummary } from './options.js';
import { listSources, type SourceFile } from './sources.js';
import { Committer } from './committer.js';

// The public surface of `srgan prepare` stays this module.
export { checkPrepareOptions, PIPELINE_VERSION, PREPARE_DEFAULTS } from './options.js';
export type { AlphaMode, PrepareOptions, PrepareProgress, PrepareSummary, SkipCode } from './options.js';
export { listSources } from './sources.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
const LOCK_FILE = '.prepare.lock';

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

/** One prepare per DATA_DIR at a time; a killed run's lock is free at once (util/lock-file.ts). */
function acquireLock(out: string): () => void {
  const file = path.join(out, LOCK_FILE);
  acquireLockFile(file, {
    held: (pid) => new SrganError('SRGAN_ERR_ALREADY_RUNNING', `another srgan prepare (pid ${pid}) is writing to ${out}`),
    cannotCreate: (err) => new SrganError('SRGAN_ERR_DATA', `cannot write in ${out}: ${err.message}`, { cause: err }),
  });
  return () => releaseLockFile(file);
}
