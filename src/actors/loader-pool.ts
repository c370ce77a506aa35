// The loader pool actor: keeps a few patch-loader tasks in flight on piscina worker threads, walking
// the image list in a seeded shuffled order, every image once per epoch. A worker that crashes is
// replaced by piscina; its task is handed out again and the crash reported as an event.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Actor } from './actor.js';
import type { LoaderResult, LoaderTask, LoaderWorkerData } from './loader-worker.js';
import { deriveSeed, mulberry32 } from '../data/prng.js';
import type { DownscaleFilter } from '../data/degrade.js';
import { SrganError } from '../errors.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loader-worker.js');
const MAX_FAILURES_IN_A_ROW = 8;
const IMAGE_EXT = /\.(png|jpe?g|webp|tiff?|gif|avif)$/i;

export interface LoaderPoolOptions {
  ring: SharedArrayBuffer;
  files: string[];
  workers: number;
  seed: number;
  patchSize: number;
  scale: 2 | 4;
  lrFilter: DownscaleFilter;
  patchesPerImage: number;
  /** Images per task. Default 2. */
  imagesPerTask?: number;
  /** Default `/loader-worker.js` beside this file; tests may point at another entry. */
  workerFile?: string;
  onEvent?: (kind: 'data_error' | 'loader_crash' | 'epoch', message: string, data?: unknown) => void;
}

export type LoaderPoolMessage = { type: 'pump' };

export class LoaderPool extends Actor<LoaderPoolMessage> {
  readonly #o: Required<Omit<LoaderPoolOptions, 'onEvent'>> & Pick<LoaderPoolOptions, 'onEvent'>;
  #pool: Piscina | null = null;
  #inFlight = 0;
  #epoch = 0;
  #order: number[] = [];
  #cursor = 0;
  #retry: { file: string; index: number }[] = [];
  #bad = new Set<string>();
  #closed = false;
  #written = 0;
  /** Task failures since the last success: a worker that can never run must not loop forever. */
  #failuresInARow = 0;

  constructor(options: LoaderPoolOptions) {
    super('loader-pool');
    if (options.files.length === 0) throw new SrganError('SRGAN_ERR_DATA', 'no training images');
    this.#o = { imagesPerTask: 2, workerFile: WORKER_FILE, ...options };
  }

  /** Patches written into the ring so far. */
  get written(): number {
    return this.#written;
  }
  get epoch(): number {
    return this.#epoch;
  }

  protected override onStart(): void {
    if (!fs.existsSync(this.#o.workerFile)) {
      throw new SrganError('SRGAN_ERR_ACTOR', `loader worker entry ${this.#o.workerFile} does not exist (is the project built?)`);
    }
    this.#closed = false;
    this.#failuresInARow = 0;
    // A restart retries every image: a failure may have been transient (a drive that went away).
    this.#bad.clear();
    const workerData: LoaderWorkerData = { ring: this.#o.ring };
    this.#pool = new Piscina({
      filename: this.#o.workerFile,
      minThreads: this.#o.workers,
      maxThreads: this.#o.workers,
      idleTimeout: Infinity,
      workerData,
    });
    this.#pool.on('error', (err: unknown) => this.#o.onEvent?.('loader_crash', `loader worker failed: ${(err as Error).message}`));
    if (this.#order.length === 0) this.#shuffle();
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

  #shuffle(): void {
    const n = this.#o.files.length;
    const order = Array.from({ length: n }, (_, i) => i);
    const rand = mulberry32(deriveSeed(this.#o.seed, 1_000_003 + this.#epoch));
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    this.#order = order;
    this.#cursor = 0;
  }

  #nextItems(): { file: string; index: number }[] {
    if (this.#bad.size >= this.#o.files.length) {
      throw new SrganError('SRGAN_ERR_DATA', `every training image failed to load (${this.#o.files.length} files; the reasons are in the data_error events)`);
    }
    const items = this.#retry.splice(0, this.#o.imagesPerTask);
    let guard = this.#o.files.length * 2;
    while (items.length < this.#o.imagesPerTask && guard-- > 0) {
      if (this.#cursor >= this.#order.length) {
        this.#epoch++;
        this.#shuffle();
        this.#o.onEvent?.('epoch', `epoch ${this.#epoch} started`, { epoch: this.#epoch });
      }
      const index = this.#order[this.#cursor++] as number;
      const file = this.#o.files[index] as string;
      if (!this.#bad.has(file)) items.push({ file, index });
    }
    if (items.length === 0) throw new SrganError('SRGAN_ERR_DATA', 'no loadable training image left');
    return items;
  }

  /** Hands one task to the pool; false when there is nothing left to hand out (the actor has failed). */
  #submit(): boolean {
    const pool = this.#pool as Piscina;
    let items: { file: string; index: number }[];
    try {
      items = this.#nextItems();
    } catch (err) {
      this.fail(err);
      return false;
    }
    const task: LoaderTask = {
      items,
      epoch: this.#epoch,
      seed: this.#o.seed,
      patchSize: this.#o.patchSize,
      scale: this.#o.scale,
      lrFilter: this.#o.lrFilter,
      patchesPerImage: this.#o.patchesPerImage,
      writeTimeoutMs: 2000,
    };
    this.#inFlight++;
    (pool.run(task) as Promise<LoaderResult>).then(
      (r) => {
        this.#inFlight--;
        this.#failuresInARow = 0;
        this.#written += r.written;
        for (const f of r.failed) {
          this.#bad.add(f.file);
          this.#o.onEvent?.('data_error', f.message, { file: f.file });
        }
        this.#retry.push(...r.unwritten);
        if (r.closed) this.#closed = true;
        else this.send({ type: 'pump' });
      },
      (err: unknown) => {
        this.#inFlight--;
        if (this.#closed || !this.#pool) return;
        // The worker died mid-task (piscina replaces it): report, and hand the images out again.
        this.#o.onEvent?.('loader_crash', `loader task failed: ${(err as Error).message}`, { items: items.map((i) => i.file) });
        this.#retry.push(...items);
        if (++this.#failuresInARow >= MAX_FAILURES_IN_A_ROW) {
          this.fail(new SrganError('SRGAN_ERR_ACTOR', `${this.#failuresInARow} loader tasks failed in a row; last: ${(err as Error).message}`, { cause: err }));
          return;
        }
        this.send({ type: 'pump' });
      },
    );
    return true;
  }
}

/** Image files under `dir` (recursive), sorted for a stable order. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && IMAGE_EXT.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}
