// The trainer actor as the main thread sees it: a handle on the dedicated worker thread that owns
// tfjs. Control messages go in by postMessage; metrics, previews and state changes come out. The
// worker's death is reported to the supervisor as this actor's failure.

import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Actor } from './actor.js';
import { SrganError } from '../util/errors.js';
import type { FromTrainer, ToTrainer } from '../protocol/messages.js';
import type { TrainerWorkerData } from '../protocol/trainer-init.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../trainer/worker.js');

export interface TrainerOptions {
  workerData: TrainerWorkerData;
  onMessage: (m: FromTrainer) => void;
  /** How long `stop` waits for the worker to finish its step before terminating it. Default 30 s. */
  stopTimeoutMs?: number;
}

export class Trainer extends Actor<ToTrainer> {
  readonly #o: TrainerOptions;
  #worker: Worker | null = null;
  #exited: Promise<number> | null = null;
  #stopping = false;
  #ready: Promise<Extract<FromTrainer, { type: 'ready' }>> = rejected(new Error('trainer not started'));

  constructor(options: TrainerOptions) {
    super('trainer');
    this.#o = options;
  }

  protected override onStart(): void {
    this.#stopping = false;
    const worker = new Worker(WORKER_FILE, { workerData: this.#o.workerData });
    this.#worker = worker;
    this.#ready = new Promise<Extract<FromTrainer, { type: 'ready' }>>((resolve, reject) => {
      worker.on('message', (m: FromTrainer) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'error') reject(new SrganError('SRGAN_ERR_TRAINER', m.message));
      });
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(new SrganError('SRGAN_ERR_TRAINER', `trainer thread exited with code ${code} before it was ready`)),
      );
    });
    this.#ready.catch(() => {}); // awaited by the daemon; failures also reach the supervisor
    worker.on('message', (m: FromTrainer) => {
      this.#o.onMessage(m);
      // Its last word: nothing is left to say, so end the thread rather than wait for it to drain.
      if (m.type === 'stopped') {
        this.#stopping = true;
        void worker.terminate();
      }
      if (m.type === 'error') {
        // Non-finite steps in a row are the daemon's to answer (a rollback), so they keep their code.
        const code = m.code === 'SRGAN_ERR_NONFINITE' ? m.code : 'SRGAN_ERR_TRAINER';
        this.fail(new SrganError(code, `trainer failed: ${m.message}`));
      }
    });
    worker.on('error', (err) => this.fail(new SrganError('SRGAN_ERR_TRAINER', `trainer thread crashed: ${err.message}`, { cause: err })));
    this.#exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        if (!this.#stopping && code !== 0) this.fail(new SrganError('SRGAN_ERR_TRAINER', `trainer thread exited with code ${code}`));
        resolve(code);
      }),
    );
  }

  /** Resolves once the worker has its backend and models (rejects if it fails first). */
  get ready(): Promise<Extract<FromTrainer, { type: 'ready' }>> {
    return this.#ready;
  }

  protected receive(message: ToTrainer): void {
    if (message.type === 'stop') this.#stopping = true;
    this.#worker?.postMessage(message);
  }

  /** Asks the worker to stop at a step boundary and waits for it to exit (terminating it after the timeout). */
  protected override async onStop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#stopping = true;
    worker.postMessage({ type: 'stop' } satisfies ToTrainer);
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, this.#o.stopTimeoutMs ?? 30_000, 'timeout').unref());
    if ((await Promise.race([this.#exited, timeout])) === 'timeout') await worker.terminate();
    this.#worker = null;
  }
}

/** A rejected promise that does not count as unhandled until someone awaits it. */
function rejected<T>(error: Error): Promise<T> {
  const p = Promise.reject<T>(error);
  p.catch(() => {});
  return p;
}
