// The loader pool actor: keeps a few patch-loader tasks in flight on piscina worker threads, walking
// the image list in a seeded shuffled order, every image once per epoch. A worker that crashes is
// replaced by piscina; its task is handed out again and the crash reported as an event.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Actor } from './actor.js';
import type { LoaderItem, LoaderResult, LoaderTask, LoaderWorkerData } from '../protocol/loader-task.js';
import { deriveSeed, mulberry32 } from '../util/prng.js';
import type { LrBlurSetting, LrFilterSetting } from '../config/lr-synthesis.js';
import { SrganError } from '../util/errors.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loader-worker.js');
const MAX_FAILURES_IN_A_ROW = 8;

export interface LoaderPoolOptions {
  ring: SharedArrayBuffer;
  files: string[];
  workers: number;
  seed: number;
  patchSize: number;
  scale: 2 | 4;
  /** One filter, or a mix drawn per patch (docs/degradations.md). */
  lrFilter: LrFilterSetting;
  /** Gaussian blur before the downscale, drawn per patch. Default: never. */
  lrBlur?: LrBlurSetting | null;
  patchesPerImage: number;
  /** Images per task. Default 2. */
  imagesPerTask?: number;
  /**
   * Where in the data sequence to begin: epoch × files.length + position in that epoch's order (a
   * resumed run passes its checkpoint's position). Default 0.
   */
  startPosition?: number;
  /** Default `/loader-worker.js` beside this file; tests may point at another entry. */
  workerFile?: string;
  onEvent?: (kind: 'data_error' | 'loader_crash', message: string, data?: unknown) => void;
}

export type LoaderPoolMessage = { type: 'pump' };

export class LoaderPool extends Actor<LoaderPoolMessage> {
  readonly #o: Required<Omit<LoaderPoolOptions, 'onEvent'>> & Pick<LoaderPoolOptions, 'onEvent'>;
  #pool: Piscina | null = null;
  #inFlight = 0;
  /** Bumped on every start: results of tasks from an earlier pool are ignored. */
  #generation = 0;
  /** The next position to hand out, and the shuffled order of its epoch. */
  #pos: number;
  #orderEpoch = -1;
  #order: number[] = [];
  /** Items handed out whose frames are not all in the ring yet, by position. */
  readonly #outstanding = new Map<number, LoaderItem>();
  #retry: LoaderItem[] = [];
  #bad = new Set<string>();
  #closed = false;
  #written = 0;
  /** Task failures since the last success: a worker that can never run must not loop forever. */
  #failuresInARow = 0;
  /**
   * How far (in images) hand-outs may run ahead of the oldest outstanding one. The trainer takes
   * patches in sequence order and keeps early ones aside, so this bounds its memory while one slow
   * image (a 50 MP photo) is still decoding.
   */
  readonly #window: number;

  constructor(options: LoaderPoolOptions) {
    super('loader-pool');
    if (options.files.length === 0) throw new SrganError('SRGAN_ERR_DATA', 'no training images');
    this.#o = { imagesPerTask: 2, workerFile: WORKER_FILE, startPosition: 0, ...options, lrBlur: options.lrBlur ?? null };
    if (!Number.isSafeInteger(this.#o.startPosition) || this.#o.startPosition < 0) {
      throw new RangeError(`startPosition must be a non-negative integer, got ${this.#o.startPosition}`);
    }
    this.#pos = this.#o.startPosition;
    this.#window = Math.max(8, this.#o.workers * this.#o.imagesPerTask * 4);
  }

  /** Patches written into the ring so far. */
  get written(): number {
    return this.#written;
  }
  /** The epoch of the next image handed out. */
  get epoch(): number {
    return Math.floor(this.#pos / this.#o.files.length);
  }

  protected override onStart(): void {
    if (!fs.existsSync(this.#o.workerFile)) {
      throw new SrganError('SRGAN_ERR_ACTOR', `loader worker entry ${this.#o.workerFile} does not exist (is the project built?)`);
    }
    this.#generation++;
    this.#closed = false;
    this.#failuresInARow = 0;
    this.#inFlight = 0;
    // A restart retries every image: a failure may have been transient (a drive that went away).
    this.#bad.clear();
    // Whatever the old pool had in flight is lost with it: hand it out again, in sequence order.
    this.#retry = [...this.#outstanding.values()].sort((a, b) => a.pos - b.pos).map((it) => ({ ...it, skip: false }));
    const workerData: LoaderWorkerData = { ring: this.#o.ring };
    this.#pool = new Piscina({
      filename: this.#o.workerFile,
      minThreads: this.#o.workers,
      maxThreads: this.#o.workers,
      idleTimeout: Infinity,
      workerData,
    });
    this.#pool.on('error', (err: unknown) => this.#o.onEvent?.('loader_crash', `loader worker failed: ${(err as Error).message}`));
    this.send({ type: 'pump' });
  }

  protected override async onStop(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = null;
    await pool?.destroy();
  }

  protected receive(): void {
    // Two tasks per worker: one running, one queued, so a worker never waits for the main thread.
    while (this.#pool && !this.#closed && this.#inFlight < this.#o.workers * 2) {
      if (!this.#submit()) break;
    }
  }

  /** The file index at sequence position `pos`: the epoch's order is a seeded shuffle. */
  #fileAt(pos: number): { index: number; epoch: number } {
    const n = this.#o.files.length;
    const epoch = Math.floor(pos / n);
    if (epoch !== this.#orderEpoch) {
      const order = Array.from({ length: n }, (_, i) => i);
      const rand = mulberry32(deriveSeed(this.#o.seed, 1_000_003 + epoch));
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      this.#order = order;
      this.#orderEpoch = epoch;
    }
    return { index: this.#order[pos - epoch * n], epoch };
  }

  #nextItems(): LoaderItem[] {
    if (this.#bad.size >= this.#o.files.length) {
      throw new SrganError(
        'SRGAN_ERR_DATA',
        `every training image failed to load (${this.#o.files.length} files; the reasons are in the data_error events)`,
      );
    }
    const items = this.#retry.splice(0, this.#o.imagesPerTask);
    let oldest = Infinity;
    for (const p of this.#outstanding.keys()) oldest = Math.min(oldest, p);
    while (items.length < this.#o.imagesPerTask && this.#pos - (oldest === Infinity ? this.#pos : oldest) < this.#window) {
      const pos = this.#pos++;
      const { index, epoch } = this.#fileAt(pos);
      const file = this.#o.files[index];
      const item: LoaderItem = { file, index, pos, epoch, skip: this.#bad.has(file) };
      this.#outstanding.set(pos, item);
      oldest = Math.min(oldest, pos);
      items.push(item);
    }
    return items;
  }

  /** Hands one task to the pool; false when there is nothing to hand out now (window full, or failed). */
  #submit(): boolean {
    const pool = this.#pool as Piscina;
    let items: LoaderItem[];
    try {
      items = this.#nextItems();
    } catch (err) {
      this.fail(err);
      return false;
    }
    if (items.length === 0) return false;
    const task: LoaderTask = {
      items,
      seed: this.#o.seed,
      patchSize: this.#o.patchSize,
      scale: this.#o.scale,
      lrFilter: this.#o.lrFilter,
      lrBlur: this.#o.lrBlur ?? null,
      patchesPerImage: this.#o.patchesPerImage,
      writeTimeoutMs: 2000,
    };
    const generation = this.#generation;
    this.#inFlight++;
    (pool.run(task) as Promise<LoaderResult>).then(
      (r) => {
        if (generation !== this.#generation) return;
        this.#inFlight--;
        this.#failuresInARow = 0;
        this.#written += r.written;
        for (const f of r.failed) {
          this.#bad.add(f.file);
          this.#o.onEvent?.('data_error', f.message, { file: f.file });
        }
        const unwritten = new Set(r.unwritten.map((it) => it.pos));
        for (const it of items) if (!unwritten.has(it.pos)) this.#outstanding.delete(it.pos);
        this.#retry.push(...r.unwritten);
        this.#retry.sort((a, b) => a.pos - b.pos);
        if (r.closed) this.#closed = true;
        else this.send({ type: 'pump' });
      },
      (err: unknown) => {
        if (generation !== this.#generation) return;
        this.#inFlight--;
        if (this.#closed || !this.#pool) return;
        // The worker died mid-task (piscina replaces it): report, and hand the images out again.
        this.#o.onEvent?.('loader_crash', `loader task failed: ${(err as Error).message}`, { items: items.map((i) => i.file) });
        this.#retry.push(...items);
        this.#retry.sort((a, b) => a.pos - b.pos);
        if (++this.#failuresInARow >= MAX_FAILURES_IN_A_ROW) {
          this.fail(
            new SrganError('SRGAN_ERR_ACTOR', `${this.#failuresInARow} loader tasks failed in a row; last: ${(err as Error).message}`, {
              cause: err,
            }),
          );
          return;
        }
        this.send({ type: 'pump' });
      },
    );
    return true;
  }
}
