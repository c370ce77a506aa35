// How often a failed trainer thread is answered by continuing from the newest checkpoint rather than
// failing the run: a few times an hour. A bug that kills the trainer every few minutes then fails the run
// instead of looping; an out-of-memory once a day does not.

export class RestartBudget {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #times: number[] = [];

  /** At most `max` restarts within any `windowMs`; `now` is injectable for tests. */
  constructor(max: number, windowMs: number, now: () => number = Date.now) {
    this.#max = max;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** Takes one restart from the budget; false (and nothing taken) when it is spent. */
  take(): boolean {
    const now = this.#now();
    this.#times = this.#times.filter((t) => now - t < this.#windowMs);
    if (this.#times.length >= this.#max) return false;
    this.#times.push(now);
    return true;
  }
}
