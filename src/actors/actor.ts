// The actor core: a mailbox processed one message at a time, an explicit lifecycle, and a parent that
// hears about crashes. Time is injected (`Clock`) so supervision and scheduling are testable without
// sleeping.

/** Lifecycle of an actor (XState's naming). */
export type ActorStatus = 'NotStarted' | 'Running' | 'Stopped' | 'Failed';

/** Injected time source. `setTimeout` returns a cancel function. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
});

/** A clock that only moves when told to; timers fire in order inside `advance`. */
export class SimulatedClock implements Clock {
  #now: number;
  #timers: { at: number; seq: number; fn: () => void }[] = [];
  #seq = 0;
  constructor(start = 0) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }
  /** Moves time forward by `ms`, firing due timers in time order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }
}

/** Receives the failure of a child actor (its supervisor). */
export interface ParentRef {
  childFailed(child: Actor<unknown>, error: unknown): void;
}

/**
 * Base class of every actor. Subclasses implement `receive` (one message at a time, in order) and may
 * override `onStart` / `onStop`. An exception thrown by `receive` or `onStart` marks the actor Failed
 * and is reported to its parent; without a parent it is rethrown from `start`/logged.
 */
export abstract class Actor<M> {
  readonly name: string;
  #status: ActorStatus = 'NotStarted';
  #mailbox: M[] = [];
  #draining = false;
  #stopping = false;
  #idle: Promise<void> = Promise.resolve();
  #parent: ParentRef | undefined;
  #lastError: unknown;

  constructor(name: string) {
    this.name = name;
  }

  get status(): ActorStatus {
    return this.#status;
  }
  get lastError(): unknown {
    return this.#lastError;
  }
  /** Messages waiting in the mailbox. */
  get mailboxSize(): number {
    return this.#mailbox.length;
  }

  setParent(parent: ParentRef): void {
    this.#parent = parent;
  }

  async start(): Promise<void> {
    if (this.#status === 'Running') return;
    this.#status = 'Running';
    this.#lastError = undefined;
    try {
      await this.onStart();
    } catch (err) {
      if (this.#parent) {
        this.#fail(err);
        return;
      }
      this.#status = 'Failed';
      this.#lastError = err;
      throw err; // no supervisor: the caller of start() hears about it
    }
  }

  /**
   * Stops gracefully: messages already queued are processed first (nothing sent is lost), new ones are
   * refused, then `onStop` releases resources.
   */
  async stop(): Promise<void> {
    if (this.#status === 'Stopped' || this.#status === 'NotStarted') {
      this.#status = 'Stopped';
      return;
    }
    this.#stopping = true;
    try {
      await this.#idle;
    } finally {
      this.#stopping = false;
    }
    // A Failed actor still holds its resources (a worker, a socket): clean up either way.
    this.#status = 'Stopped';
    this.#mailbox = [];
    await this.onStop();
  }

  /** Queues a message. Messages sent to an actor that is not running are dropped (returns false). */
  send(message: M): boolean {
    if (this.#status !== 'Running' || this.#stopping) return false;
    this.#mailbox.push(message);
    if (!this.#draining) this.#idle = this.#drain();
    return true;
  }

  /** Resolves when the mailbox is empty and no message is being processed. */
  whenIdle(): Promise<void> {
    return this.#idle;
  }

  /** Reports a failure that happened outside `receive` (a worker's exit, a socket error). */
  protected fail(error: unknown): void {
    this.#fail(error);
  }

  protected abstract receive(message: M): void | Promise<void>;
  protected onStart(): void | Promise<void> {}
  protected onStop(): void | Promise<void> {}

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#mailbox.length > 0 && this.#status === 'Running') {
        const message = this.#mailbox.shift() as M;
        try {
          await this.receive(message);
        } catch (err) {
          this.#fail(err);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #fail(error: unknown): void {
    if (this.#status !== 'Running') return;
    this.#status = 'Failed';
    this.#lastError = error;
    this.#mailbox = [];
    if (this.#parent) this.#parent.childFailed(this, error);
    else
      queueMicrotask(() => {
        // No supervisor: make the failure visible rather than losing it.
        process.emitWarning(`actor ${this.name} failed: ${String((error as Error)?.stack ?? error)}`);
      });
  }
}
