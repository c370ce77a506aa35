// The patch dataset's manifest, DATA_DIR/manifest.sqlite: what `srgan prepare` made from which source
// file, and with which parameters. It is the commit record of the dataset: a PNG whose id is not in
// `patches` does not exist as far as anyone is concerned (prepare removes such strays when it resumes),
// so readers (the training loader: listPatchFiles) go through the manifest, never through a directory
// listing. Documented in docs/prepare.md.
//
// One owner: the Manifest object on the main thread of `srgan prepare` (better-sqlite3 is never loaded
// in a worker). WAL; one short transaction per source.

import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

import { SrganError } from '../../util/errors.js';
import { configureWriter, waitForLocks } from '../../util/sqlite.js';

export const MANIFEST_FILE = 'manifest.sqlite';
/** PRAGMA user_version of the schema below. */
export const MANIFEST_VERSION = 1;
/** The author's ImageSaver layout: DATA_DIR/{floor(id / 1000)}/{id}.png. */
export const PATCHES_PER_FOLDER = 1000;
const FORMAT = 'srgan-patches';

const SCHEMA = `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE sources (
    id            INTEGER PRIMARY KEY,      -- commit order
    path          TEXT NOT NULL,            -- absolute
    size          INTEGER NOT NULL,         -- bytes
    mtime_ms      REAL NOT NULL,            -- fs.stat mtimeMs when it was listed
    hash          TEXT,                     -- sha256 of the file, hex; NULL when it could not be read
    status        TEXT NOT NULL CHECK (status IN ('done', 'skipped', 'duplicate')),
    reason        TEXT,                     -- skipped: empty | unreadable | not-an-image | unsupported | corrupt | too-large | too-small | failed
    message       TEXT,                     -- what exactly went wrong, for people
    duplicate_of  INTEGER REFERENCES sources(id),
    width         INTEGER,                  -- decoded and upright, before any pre-downscale
    height        INTEGER,
    camera        TEXT,                     -- EXIF Make + Model
    predownscaled INTEGER NOT NULL DEFAULT 0,
    patches       INTEGER NOT NULL DEFAULT 0,
    committed_at  REAL NOT NULL             -- unix seconds
  );
  CREATE INDEX sources_path ON sources (path);
  CREATE INDEX sources_hash ON sources (hash) WHERE status = 'done';
  CREATE TABLE patches (
    id        INTEGER PRIMARY KEY,          -- the file DATA_DIR/{id / 1000}/{id}.png
    source_id INTEGER NOT NULL REFERENCES sources(id),
    level     INTEGER NOT NULL,             -- downscale factor: 1 = the photo itself
    x         INTEGER NOT NULL,             -- crop box in the level's pixels
    y         INTEGER NOT NULL,
    size      INTEGER NOT NULL
  );
  CREATE INDEX patches_source ON patches (source_id);
`;

export type SourceStatus = 'done' | 'skipped' | 'duplicate';

/** Why a source gave no patches. `failed` and `unreadable` are retried by the next run; the rest are facts about the file. */
export const SKIP_REASONS = ['empty', 'unreadable', 'not-an-image', 'unsupported', 'corrupt', 'too-large', 'too-small', 'failed'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];
const RETRIED: ReadonlySet<string> = new Set<SkipReason>(['unreadable', 'failed']);

/** The parameters that decide which patches a source gives, pixel for pixel. A resume must use the same. */
export interface PatchParams {
  /** Bumped when the pipeline changes what it makes from the same parameters. */
  pipeline: number;
  patch: number;
  levels: number[];
  perLevel: number;
  seed: number;
  alpha: 'drop' | 'flatten';
  linear: boolean;
  predownscale: boolean;
  predownscaleModels: string[];
}

/** Informational settings, recorded in meta but free to change between runs. */
export interface RunInfo {
  pngLevel: number;
  maxPixels: number;
  sources: string[];
  libvips: string;
}

export interface CommittedSource {
  id: number;
  size: number;
  mtimeMs: number;
  status: SourceStatus;
  reason: SkipReason | null;
}

export interface NewSource {
  path: string;
  size: number;
  mtimeMs: number;
  hash: string | null;
  status: SourceStatus;
  reason?: SkipReason | undefined;
  message?: string | undefined;
  duplicateOf?: number | undefined;
  width?: number | undefined;
  height?: number | undefined;
  camera?: string | null | undefined;
  predownscaled?: boolean | undefined;
}

export interface NewPatch {
  id: number;
  level: number;
  x: number;
  y: number;
  size: number;
}

export interface ManifestTotals {
  /** Latest row per path, by status. */
  sources: Record<SourceStatus, number>;
  /** Skipped sources by reason. */
  reasons: Partial<Record<SkipReason, number>>;
  patches: number;
}

/** DATA_DIR/{floor(id / 1000)}/{id}.png */
export function patchPath(dataDir: string, id: number): string {
  return path.join(dataDir, String(Math.floor(id / PATCHES_PER_FOLDER)), `${id}.png`);
}

/**
 * The committed patch files of a prepared dataset, absolute paths in id order (what the training loader
 * reads). Throws SrganError SRGAN_ERR_MANIFEST when DATA_DIR has no readable manifest.
 */
export function listPatchFiles(dataDir: string): string[] {
  if (typeof dataDir !== 'string' || dataDir === '') throw new TypeError(`dataDir: expected a non-empty path, got ${String(dataDir)}`);
  const root = path.resolve(dataDir);
  const db = openExisting(path.join(root, MANIFEST_FILE), true);
  try {
    const ids = db.prepare('SELECT id FROM patches ORDER BY id').pluck().all() as number[];
    return ids.map((id) => patchPath(root, id));
  } finally {
    db.close();
  }
}

/** Every committed patch with the id of the source photo it was cut from, in id order. */
export function listPatchesBySource(dataDir: string): { file: string; source: number }[] {
  if (typeof dataDir !== 'string' || dataDir === '') throw new TypeError(`dataDir: expected a non-empty path, got ${String(dataDir)}`);
  const root = path.resolve(dataDir);
  const db = openExisting(path.join(root, MANIFEST_FILE), true);
  try {
    const rows = db.prepare('SELECT id, source_id FROM patches ORDER BY id').all() as { id: number; source_id: number }[];
    return rows.map((r) => ({ file: patchPath(root, r.id), source: r.source_id }));
  } finally {
    db.close();
  }
}

/** The parameters a dataset was prepared with, or null when DATA_DIR has no manifest. */
export function readPatchParams(dataDir: string): PatchParams | null {
  const file = path.join(path.resolve(dataDir), MANIFEST_FILE);
  if (!fs.existsSync(file)) return null;
  const db = openExisting(file, true);
  try {
    return readMeta(db, file).params;
  } finally {
    db.close();
  }
}

function openExisting(file: string, readonly: boolean): Database.Database {
  if (readonly && !fs.existsSync(file)) {
    throw new SrganError(
      'SRGAN_ERR_MANIFEST',
      `no patch manifest at ${file} (make one with \`srgan prepare PHOTOS_DIR --out ${path.dirname(file)}\`)`,
    );
  }
  let db: Database.Database;
  try {
    db = new Database(file, { readonly, fileMustExist: readonly });
    waitForLocks(db);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MANIFEST_VERSION) {
      db.close();
      throw new SrganError(
        'SRGAN_ERR_MANIFEST',
        `${file} has manifest schema ${version}, newer than this srgan understands (${MANIFEST_VERSION}); update srgan`,
      );
    }
  } catch (err) {
    if (err instanceof SrganError) throw err;
    throw new SrganError('SRGAN_ERR_MANIFEST', `cannot open patch manifest ${file}: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function readMeta(db: Database.Database, file: string): { params: PatchParams } {
  let rows: { key: string; value: string }[];
  try {
    rows = db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[];
  } catch (err) {
    throw new SrganError('SRGAN_ERR_MANIFEST', `${file} is not a patch manifest: ${(err as Error).message}`, { cause: err });
  }
  const meta = new Map(rows.map((r) => [r.key, r.value]));
  if (meta.get('format') !== FORMAT || !meta.has('params')) {
    throw new SrganError('SRGAN_ERR_MANIFEST', `${file} is not a patch manifest (its meta table has no format=${FORMAT} and params)`);
  }
  try {
    return { params: JSON.parse(meta.get('params') as string) as PatchParams };
  } catch (err) {
    throw new SrganError('SRGAN_ERR_MANIFEST', `${file}: meta.params is not valid JSON`, { cause: err });
  }
}

/** Canonical JSON of the parameters (fixed key order), as stored in meta.params and compared on resume. */
function paramsJson(p: PatchParams): string {
  return JSON.stringify({
    pipeline: p.pipeline,
    patch: p.patch,
    levels: p.levels,
    perLevel: p.perLevel,
    seed: p.seed,
    alpha: p.alpha,
    linear: p.linear,
    predownscale: p.predownscale,
    predownscaleModels: p.predownscaleModels,
  });
}

/** Flag spelling of each parameter, for messages that tell the user what to pass. */
const FLAG_OF: Record<keyof PatchParams, string> = {
  pipeline: 'pipeline version',
  patch: '--patch',
  levels: '--levels',
  perLevel: '--per-level',
  seed: '--seed',
  alpha: '--alpha',
  linear: '--linear',
  predownscale: '--predownscale',
  predownscaleModels: '--predownscale-models',
};

function show(v: unknown): string {
  return Array.isArray(v) ? (v.length ? v.join(',') : '(none)') : String(v);
}

/** The one owner of a dataset's manifest connection while `prepare` runs. */
export class Manifest {
  readonly file: string;
  readonly #db: Database.Database;
  readonly #committed = new Map<string, CommittedSource>();
  readonly #doneByHash = new Map<string, { id: number; path: string }>();
  /** Done hashes by file size: a task is told these, so a known duplicate is not decoded again. */
  readonly #doneHashesBySize = new Map<number, string[]>();
  #nextPatchId: number;
  readonly #insertSource: Database.Statement;
  readonly #insertPatch: Database.Statement;
  readonly #deleteRetried: Database.Statement;
  readonly #commit: (src: NewSource, patches: readonly NewPatch[]) => number;

  /**
   * Opens DATA_DIR/manifest.sqlite, creating it with `params` when missing. An existing manifest must have
   * been made with the same params: otherwise SrganError SRGAN_ERR_MANIFEST names each that differs.
   */
  static open(dataDir: string, params: PatchParams, info: RunInfo): Manifest {
    return new Manifest(path.join(path.resolve(dataDir), MANIFEST_FILE), params, info);
  }

  private constructor(file: string, params: PatchParams, info: RunInfo) {
    this.file = file;
    const exists = fs.existsSync(file);
    const db = openExisting(file, false);
    this.#db = db;
    try {
      configureWriter(db);
      const isNew = !exists || (db.pragma('user_version', { simple: true }) as number) === 0;
      if (isNew) {
        if ((db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number) > 0) {
          throw new SrganError('SRGAN_ERR_MANIFEST', `${file} is an SQLite file of something else (it has tables but no manifest schema)`);
        }
        db.transaction(() => {
          db.exec(SCHEMA);
          db.pragma(`user_version = ${MANIFEST_VERSION}`);
          const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
          put.run('format', FORMAT);
          put.run('params', paramsJson(params));
          put.run('created_at', new Date().toISOString());
        })();
      } else {
        this.#checkParams(readMeta(db, file).params, params);
      }
      const put = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
      db.transaction(() => {
        put.run('png_level', String(info.pngLevel));
        put.run('max_pixels', String(info.maxPixels));
        put.run('sources', JSON.stringify(info.sources));
        put.run('libvips', info.libvips);
        put.run('updated_at', new Date().toISOString());
      })();

      // The latest row of each path says whether it is done; ids grow, so later rows win.
      for (const r of db.prepare('SELECT id, path, size, mtime_ms, status, reason, hash FROM sources ORDER BY id').iterate() as Iterable<{
        id: number;
        path: string;
        size: number;
        mtime_ms: number;
        status: SourceStatus;
        reason: SkipReason | null;
        hash: string | null;
      }>) {
        this.#committed.set(r.path, { id: r.id, size: r.size, mtimeMs: r.mtime_ms, status: r.status, reason: r.reason });
        if (r.status === 'done' && r.hash) this.#noteDone(r.hash, r.id, r.path, r.size);
      }
      this.#nextPatchId = ((db.prepare('SELECT max(id) FROM patches').pluck().get() as number | null) ?? -1) + 1;
    } catch (err) {
      db.close();
      if (err instanceof SrganError) throw err;
      throw new SrganError('SRGAN_ERR_MANIFEST', `cannot use patch manifest ${file}: ${(err as Error).message}`, { cause: err });
    }

    this.#insertSource = db.prepare(`
      INSERT INTO sources (path, size, mtime_ms, hash, status, reason, message, duplicate_of, width, height, camera, predownscaled, patches, committed_at)
      VALUES (@path, @size, @mtimeMs, @hash, @status, @reason, @message, @duplicateOf, @width, @height, @camera, @predownscaled, @patches, @committedAt)`);
    this.#insertPatch = db.prepare('INSERT INTO patches (id, source_id, level, x, y, size) VALUES (?, ?, ?, ?, ?, ?)');
    // A retried source (unreadable, failed) replaces its earlier row instead of piling up attempts.
    this.#deleteRetried = db.prepare("DELETE FROM sources WHERE path = ? AND status = 'skipped' AND reason IN ('unreadable', 'failed')");
    this.#commit = db.transaction((src: NewSource, patches: readonly NewPatch[]): number => {
      this.#deleteRetried.run(src.path);
      const info = this.#insertSource.run({
        path: src.path,
        size: src.size,
        mtimeMs: src.mtimeMs,
        hash: src.hash,
        status: src.status,
        reason: src.reason ?? null,
        message: src.message ?? null,
        duplicateOf: src.duplicateOf ?? null,
        width: src.width ?? null,
        height: src.height ?? null,
        camera: src.camera ?? null,
        predownscaled: src.predownscaled ? 1 : 0,
        patches: patches.length,
        committedAt: Date.now() / 1000,
      });
      const id = Number(info.lastInsertRowid);
      for (const p of patches) this.#insertPatch.run(p.id, id, p.level, p.x, p.y, p.size);
      return id;
    });
  }

  #checkParams(stored: PatchParams, asked: PatchParams): void {
    const a = JSON.parse(paramsJson(asked)) as Record<string, unknown>;
    const s = stored as unknown as Record<string, unknown>;
    const diffs = (Object.keys(FLAG_OF) as (keyof PatchParams)[])
      .filter((k) => JSON.stringify(s[k]) !== JSON.stringify(a[k]))
      .map((k) => `${FLAG_OF[k]} ${show(s[k])} (this run: ${show(a[k])})`);
    if (diffs.length > 0) {
      throw new SrganError(
        'SRGAN_ERR_MANIFEST',
        `${path.dirname(this.file)} was prepared with different parameters: ${diffs.join('; ')}. ` +
          'Run again with the same parameters to resume, or choose a new --out directory.',
      );
    }
  }

  /** The id the next patch gets: one past the highest committed. */
  get nextPatchId(): number {
    return this.#nextPatchId;
  }

  /** True when `file` with this size and mtime has been committed and needs no retry. */
  isDone(file: string, size: number, mtimeMs: number): boolean {
    const c = this.#committed.get(file);
    return (
      c !== undefined && c.size === size && c.mtimeMs === mtimeMs && !(c.status === 'skipped' && c.reason !== null && RETRIED.has(c.reason))
    );
  }

  /** The first done source with this content hash, if any. */
  doneByHash(hash: string): { id: number; path: string } | undefined {
    return this.#doneByHash.get(hash);
  }

  /**
   * Records one source and its patches in one transaction. Patch ids must continue from nextPatchId
   * without gaps (their files are written before this is called). Returns the source's id.
   */
  commitSource(src: NewSource, patches: readonly NewPatch[]): number {
    patches.forEach((p, i) => {
      if (p.id !== this.#nextPatchId + i) throw new RangeError(`patches[${i}].id: expected ${this.#nextPatchId + i}, got ${p.id}`);
    });
    if (src.status === 'done' && src.hash === null) throw new RangeError(`hash: a done source needs its hash (${src.path})`);
    const id = this.#commit(src, patches);
    this.#nextPatchId += patches.length;
    this.#committed.set(src.path, { id, size: src.size, mtimeMs: src.mtimeMs, status: src.status, reason: src.reason ?? null });
    if (src.status === 'done' && src.hash) this.#noteDone(src.hash, id, src.path, src.size);
    return id;
  }

  #noteDone(hash: string, id: number, file: string, size: number): void {
    if (this.#doneByHash.has(hash)) return;
    this.#doneByHash.set(hash, { id, path: file });
    const list = this.#doneHashesBySize.get(size);
    if (list) list.push(hash);
    else this.#doneHashesBySize.set(size, [hash]);
  }

  /** Hashes of done sources of exactly this many bytes (a duplicate has the same size). */
  doneHashesOfSize(size: number): string[] {
    return this.#doneHashesBySize.get(size) ?? [];
  }

  /** Counts over the whole manifest (every run so far). */
  totals(): ManifestTotals {
    const sources: Record<SourceStatus, number> = { done: 0, skipped: 0, duplicate: 0 };
    const reasons: Partial<Record<SkipReason, number>> = {};
    const rows = this.#db
      .prepare(
        `SELECT status, reason, count(*) AS n FROM sources s
         WHERE id = (SELECT max(id) FROM sources WHERE path = s.path) GROUP BY status, reason`,
      )
      .all() as { status: SourceStatus; reason: SkipReason | null; n: number }[];
    for (const r of rows) {
      sources[r.status] += r.n;
      if (r.status === 'skipped' && r.reason) reasons[r.reason] = (reasons[r.reason] ?? 0) + r.n;
    }
    const patches = this.#db.prepare('SELECT count(*) FROM patches').pluck().get() as number;
    return { sources, reasons, patches };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
