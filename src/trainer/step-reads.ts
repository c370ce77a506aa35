// The logged values of the steps trained since the last read, still on the device, read together in
// one asynchronous device read when the trainer needs them (a log step, validation, a checkpoint, a
// pause or stop, or every step with the adaptive D schedule). On a GPU a blocking read each step would
// stall the queue; Dawn in Node has no blocking read at all (docs/backends.md, "webgpu").

import { readStepValues, type PendingStepValues } from '../models/train/gan.js';

export interface ReadStep {
  step: number;
  /** The scheduler's plan logs this step. */
  log: boolean;
  /** When the step finished (ms since the epoch), for its metrics row. */
  wallTime: number;
  values: Record<string, number>;
}

export class UnreadSteps {
  #steps: { step: number; log: boolean; wallTime: number; values: PendingStepValues }[] = [];

  push(step: number, log: boolean, values: PendingStepValues): void {
    this.#steps.push({ step, log, wallTime: Date.now(), values });
  }

  /** Every unread step's values, in step order, from one device read; frees their tensors. */
  async read(): Promise<ReadStep[]> {
    if (this.#steps.length === 0) return [];
    const steps = this.#steps.splice(0);
    const values = await readStepValues(steps.map((s) => s.values));
    return steps.map((s, i) => ({ step: s.step, log: s.log, wallTime: s.wallTime, values: values[i] }));
  }

  /** Frees what is unread (a trainer that stops on an error). */
  dispose(): void {
    for (const s of this.#steps.splice(0)) s.values.values.dispose();
  }
}
