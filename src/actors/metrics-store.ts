// The one owner of the daemon's SQLite connection. Every write is queued and committed in short batched
// transactions (every `flushMs`, or sooner when the queue grows), so the trainer never waits on disk.
//
// A write that cannot be made now (another process holds the write lock, as a user's sqlite3 shell in a
// transaction does; the disk is full; an I/O error) loses nothing: the batch goes back to the head of
// the queue and is retried with a growing delay, and the owner hears when writing stalls and when it
// recovers (docs/reliability.md, "A locked or full database"). Each try waits at most WRITE_WAIT_MS
// for the lock, so the daemon's thread is never held for long.

import os from 'node:os';
import type Database from 'better-sqlite3';
import { Actor, type Clock, systemClock } from './actor.js';
import {
  insertParams,
  openDb,
  pinCheckpoint,
  pinnedSteps,
  recordCheckpoint,
  refreshRollups,
  type CheckpointRow,
  type NewCheckpoint,
  type RunRow,
} from '../store/db.js';
import { thinOnce, type Retention } from '../store/thinning.js';
import type { MetricsPoint } from '../protocol/messages.js';

export type NewRun = Omit<RunRow, 'host' | 'ended_at' | 'last_step'>;

/** How long one write waits for another process's lock before it is put back and retried later. */
const WRITE_WAIT_MS = 250;
/** Retry delays grow from the first to the last. */
const RETRY_MS = [250, 500, 1000, 2000, 5000] as const;
/** At stop, the last flush waits this long for a lock before giving up. */
const FINAL_WAIT_MS = 30_000;
/** How often old points and previews are thinned (the first pass comes at start). */
const THIN_EVERY_MS = 10 * 60_000;

/** The SQLite errors that pass: a lock held elsewhere, a full disk, an I/O error. */
function isTransientWriteError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED|FULL|IOERR)/.test(code);
}

/** Writing stalled (the first failed try), or recovered (the first try that succeeded after). */
export type WriteState =
  { state: 'stalled'; code: string; message: string } | { state: 'recovered'; code: string; message: string; ms: number; writes: number };

export type MetricsStoreMessage =
  | { type: 'createRun'; run: NewRun }
  | { type: 'updateRun'; id: string; status?: string; backend?: string; backendReason?: string; lastStep?: number; ended?: boolean }
  | { type: 'metrics'; runId: string; points: MetricsPoint[] }
  | { type: 'event'; runId: string | null; kind: string; message?: string; data?: unknown }
  | { type: 'preview'; runId: string; step: number; width: number; height: number; panels: string[]; png: Uint8Array }
  /**
   * A run continues from the checkpoint at `fromStep`: whatever was logged after it is dropped (those
   * steps are trained again), and the row is marked running again under this process.
   */
  | { type: 'resumeRun'; id: string; fromStep: number; pid: number; points: MetricsPoint[]; queued?: { worker: string; job: string } }
  | { type: 'checkpoint'; row: NewCheckpoint }
  /** Retention removed these checkpoint folders. */
  | { type: 'checkpointsDeleted'; runId: string; paths: string[] }
  | { type: 'flush' }
  /** A thinning pass (store/thinning.ts), every THIN_EVERY_MS while a retention is set. */
  | { type: 'thin' };

/** A preview strip once it is in the database: what clients need to fetch it (GET /api/previews/ID.png). */
export interface StoredPreview {
  id: number;
  runId: string;
  step: number;
  width: number;
  height: number;
  panels: string[];
}

export interface MetricsStoreOptions {
  file: string;
  /** Called after the commit that stored a preview. */
  onPreviewStored?: (preview: StoredPreview) => void;
  /** Default 500 ms. */
  flushMs?: number;
  /** Flush as soon as this many writes are queued. Default 5000. */
  maxQueued?: number;
  /** Thin old points and previews of every run so (docs/reliability.md, "Bounded growth"); none: keep all. */
  retention?: Retention;
  /**
   * Told when writing stalls and when it recovers; what it returns on recovery is written at once (an
   * event saying so: written even when the recovery comes with the last flush, at stop).
   */
  onWriteState?: (s: WriteState) => MetricsStoreMessage | void;
  clock?: Clock;
}

export class MetricsStore extends Actor<MetricsStoreMessage> {
  readonly file: string;
  readonly #flushMs: number;
  readonly #maxQueued: number;
  readonly #clock: Clock;
  readonly #onPreviewStored: (preview: StoredPreview) => void;
  #db: Database.Database | null = null;
  #queue: Exclude<MetricsStoreMessage, { type: 'flush' } | { type: 'thin' }>[] = [];
  readonly #retention: Retention | null;
  #cancelThin: (() => void) | null = null;
  /** Rows and previews removed by thinning since start. */
  thinned = { metrics: 0, previews: 0 };
  #cancelTimer: (() => void) | null = null;
  #rowsWritten = 0;
  readonly #onWriteState: (s: WriteState) => MetricsStoreMessage | void;
  /** Since when writes fail, and why; null while they succeed. */
  #stall: { since: number; code: string; message: string; tries: number } | null = null;

  constructor(options: MetricsStoreOptions) {
    super('metrics-store');
    this.file = options.file;
    this.#flushMs = options.flushMs ?? 500;
    this.#maxQueued = options.maxQueued ?? 5000;
    this.#clock = options.clock ?? systemClock;
    this.#onPreviewStored = options.onPreviewStored ?? (() => {});
    this.#onWriteState = options.onWriteState ?? (() => {});
    this.#retention = options.retention ?? null;
  }

  /** Metric rows committed so far. */
  get rowsWritten(): number {
    return this.#rowsWritten;
  }

  /** The connection, for reads on the owner's thread (e.g. previews on request). */
  get db(): Database.Database {
    if (!this.#db) throw new Error('metrics store is not running');
    return this.#db;
  }

  protected override onStart(): void {
    this.#db ??= openDb(this.file);
    this.#db.pragma(`busy_timeout = ${WRITE_WAIT_MS}`);
    if (this.#retention) this.send({ type: 'thin' });
  }

  protected override onStop(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#cancelThin?.();
    this.#cancelThin = null;
    if (this.#db) {
      // The last chance for what is queued: wait longer for a lock held elsewhere.
      this.#db.pragma(`busy_timeout = ${FINAL_WAIT_MS}`);
      this.flushNow();
      this.#db.close();
      this.#db = null;
    }
  }

  protected receive(message: MetricsStoreMessage): void {
    if (message.type === 'flush') {
      this.flushNow();
      return;
    }
    if (message.type === 'thin') {
      this.#thin();
      return;
    }
    this.#queue.push(message);
    if (this.#stall) return; // the retry timer flushes
    // Runs are created at once so that readers (the CLI) see them immediately.
    if (
      message.type === 'createRun' ||
      message.type === 'resumeRun' ||
      message.type === 'checkpoint' ||
      this.#queue.length >= this.#maxQueued
    )
      this.flushNow();
    else if (!this.#cancelTimer) {
      this.#cancelTimer = this.#clock.setTimeout(() => {
        this.#cancelTimer = null;
        this.send({ type: 'flush' });
      }, this.#flushMs);
    }
  }

  /**
   * Pins (or unpins) the run's checkpoints at `step` at once (after committing what is queued); returns
   * them as they are now, empty when the run has none at that step.
   */
  pinCheckpoint(runId: string, step: number, pinned: boolean): CheckpointRow[] {
    this.flushNow();
    return pinCheckpoint(this.db, runId, step, pinned);
  }

  /** The steps of the run whose checkpoints are pinned (retention keeps them). */
  pinnedSteps(runId: string): Set<number> {
    return pinnedSteps(this.db, runId);
  }

  /**
   * Commits everything queued, in one transaction. When the database cannot be written now (a lock
   * held elsewhere, a full disk), puts it all back and retries later.
   */
  flushNow(): void {
    const db = this.#db;
    if (!db || this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    let written: { stored: StoredPreview[]; rows: number };
    try {
      written = this.#write(db, queue);
    } catch (err) {
      if (!isTransientWriteError(err)) throw err;
      this.#queue = queue.concat(this.#queue);
      this.#stalled(err as Error & { code: string });
      return;
    }
    this.#rowsWritten += written.rows;
    if (this.#stall) {
      const { since, code, message } = this.#stall;
      this.#stall = null;
      const note = this.#onWriteState({ state: 'recovered', code, message, ms: this.#clock.now() - since, writes: queue.length });
      if (note && note.type !== 'flush' && note.type !== 'thin') {
        this.#queue.push(note);
        this.flushNow();
      }
    }
    for (const p of written.stored) this.#onPreviewStored(p);
  }

  /** One thinning pass; the next comes at once while there is a backlog, else in THIN_EVERY_MS. */
  #thin(): void {
    const db = this.#db;
    if (!db || !this.#retention) return;
    let again = false;
    if (!this.#stall) {
      this.flushNow(); // thin what is written, not what is about to be
      try {
        const r = thinOnce(db, this.#clock.now() / 1000, this.#retention);
        this.thinned.metrics += r.metrics;
        this.thinned.previews += r.previews;
        again = !r.done;
      } catch (err) {
        if (!isTransientWriteError(err)) throw err; // a lock or a full disk: the next pass tries again
      }
    }
    this.#cancelThin?.();
    this.#cancelThin = this.#clock.setTimeout(
      () => {
        this.#cancelThin = null;
        this.send({ type: 'thin' });
      },
      again ? 0 : THIN_EVERY_MS,
    );
  }

  #stalled(err: Error & { code: string }): void {
    if (!this.#stall) {
      this.#stall = { since: this.#clock.now(), code: err.code, message: err.message, tries: 0 };
      this.#onWriteState({ state: 'stalled', code: err.code, message: err.message });
    }
    const delay = RETRY_MS[Math.min(this.#stall.tries++, RETRY_MS.length - 1)];
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.setTimeout(() => {
      this.#cancelTimer = null;
      this.send({ type: 'flush' });
    }, delay);
  }

  /** One transaction of `queue`'s writes; throws (and SQLite rolls it all back) when any fails. */
  #write(
    db: Database.Database,
    queue: readonly Exclude<MetricsStoreMessage, { type: 'flush' } | { type: 'thin' }>[],
  ): { stored: StoredPreview[]; rows: number } {
    // One row per (run, key, step) (a unique index): a point written again replaces the earlier one.
    const insertMetric = db.prepare(
      `INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time`,
    );
    const insertEvent = db.prepare('INSERT INTO events (run_id, time, kind, message, data) VALUES (?, ?, ?, ?, ?)');
    const insertPreview = db.prepare('INSERT INTO previews (run_id, step, time, width, height, panels, png) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const now = () => this.#clock.now() / 1000;
    const stored: StoredPreview[] = [];
    let rows = 0;
    const insertPoints = (runId: string, points: readonly MetricsPoint[]) => {
      for (const p of points) {
        for (const [key, value] of Object.entries(p.values)) {
          if (!Number.isFinite(value)) continue; // a step's NaN/Inf is reported as a 'nonfinite' event by the trainer
          insertMetric.run(runId, p.step, key, value, p.wallTime / 1000);
          rows++;
        }
      }
    };
    db.transaction(() => {
      for (const m of queue) {
        switch (m.type) {
          case 'createRun':
            db.prepare(
              `INSERT INTO runs (id, name, status, created_at, preset, backend, backend_reason, config, host, pid, data_dir, worker, job, continued_from)
               VALUES (@id, @name, @status, @created_at, @preset, @backend, @backend_reason, @config, @host, @pid, @data_dir, @worker, @job, @continued_from)`,
            ).run({ worker: null, job: null, continued_from: null, ...m.run, host: os.hostname() });
            insertParams(db, m.run.id, m.run.config);
            break;
          case 'updateRun': {
            const sets: string[] = [];
            const args: unknown[] = [];
            if (m.status !== undefined) {
              sets.push('status = ?');
              args.push(m.status);
            }
            if (m.backend !== undefined) {
              sets.push('backend = ?');
              args.push(m.backend);
            }
            if (m.backendReason !== undefined) {
              sets.push('backend_reason = ?');
              args.push(m.backendReason);
            }
            if (m.lastStep !== undefined) {
              sets.push('last_step = max(last_step, ?)');
              args.push(m.lastStep);
            }
            if (m.ended) {
              sets.push('ended_at = ?');
              args.push(now());
            }
            if (sets.length) db.prepare(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`).run(...args, m.id);
            break;
          }
          case 'metrics':
            insertPoints(m.runId, m.points);
            break;
          case 'event':
            insertEvent.run(m.runId, now(), m.kind, m.message ?? '', m.data === undefined ? null : JSON.stringify(m.data));
            break;
          case 'preview': {
            const info = insertPreview.run(m.runId, m.step, now(), m.width, m.height, JSON.stringify(m.panels), Buffer.from(m.png));
            stored.push({
              id: Number(info.lastInsertRowid),
              runId: m.runId,
              step: m.step,
              width: m.width,
              height: m.height,
              panels: m.panels,
            });
            break;
          }
          case 'resumeRun': {
            // The checkpoint's own copy of its last metrics replaces whatever of them reached the file.
            const from = Math.min(m.fromStep + 1, ...m.points.map((p) => p.step));
            db.prepare('DELETE FROM metrics WHERE run_id = ? AND step >= ?').run(m.id, from);
            insertPoints(
              m.id,
              m.points.filter((p) => p.step <= m.fromStep),
            );
            db.prepare('DELETE FROM previews WHERE run_id = ? AND step > ?').run(m.id, m.fromStep);
            db.prepare("UPDATE runs SET status = 'starting', ended_at = NULL, pid = ?, last_step = ? WHERE id = ?").run(
              m.pid,
              m.fromStep,
              m.id,
            );
            // A queued run taken up again: its latest stretch in this file starts at this checkpoint (what
            // store/multi-db.ts goes by when the run is in several workers' files).
            if (m.queued) {
              db.prepare('UPDATE runs SET worker = @worker, job = @job, continued_from = @from WHERE id = @id').run({
                ...m.queued,
                from: m.fromStep,
                id: m.id,
              });
            }
            break;
          }
          case 'checkpoint':
            recordCheckpoint(db, m.row);
            break;
          case 'checkpointsDeleted':
            for (const p of m.paths) db.prepare('UPDATE checkpoints SET deleted = 1 WHERE run_id = ? AND path = ?').run(m.runId, p);
            break;
        }
      }
      // Points replaced or removed (a resume) left their rollup buckets stale: recompute them before
      // the commit, so no reader sees one.
      refreshRollups(db);
    })();
    return { stored, rows };
  }
}
