// Supervision as a policy: a child's crash goes to its supervisor, which restarts it (after a delay),
// lets it stay down, or escalates when restarts come too often (Erlang's restart intensity).

import { Actor, type Clock, type ParentRef, systemClock } from './actor.js';
import { SrganError } from '../util/errors.js';

/** permanent: always restarted; transient: restarted only after a failure; temporary: never. */
export type RestartPolicy = 'permanent' | 'transient' | 'temporary';

export interface ChildSpec {
  actor: Actor<unknown>;
  restart: RestartPolicy;
}

export interface SupervisorOptions {
  /** Most restarts allowed within `windowMs` before escalating. Default 5. */
  maxRestarts: number;
  /** Default 60 000 ms. */
  windowMs: number;
  /** Delay before a restart. Default 100 ms. */
  restartDelayMs: number;
  clock: Clock;
  /** Called when the restart limit is hit or a child cannot be restarted. */
  onEscalate: (error: SrganError) => void;
  /** Observes every failure and restart (for the events table). */
  onEvent?: (event: { kind: 'child_failed' | 'child_restarted'; child: string; error?: unknown }) => void;
}

const DEFAULTS = Object.freeze({ maxRestarts: 5, windowMs: 60_000, restartDelayMs: 100, clock: systemClock });

export class Supervisor implements ParentRef {
  readonly #options: SupervisorOptions;
  readonly #children: ChildSpec[] = [];
  #restarts: number[] = [];
  #stopping = false;
  #pending = new Set<() => void>();

  constructor(options: Partial<SupervisorOptions> & Pick<SupervisorOptions, 'onEscalate'>) {
    for (const key of Object.keys(options)) {
      if (!['maxRestarts', 'windowMs', 'restartDelayMs', 'clock', 'onEscalate', 'onEvent'].includes(key)) {
        throw new TypeError(`Supervisor: unknown option "${key}"`);
      }
    }
    this.#options = { ...DEFAULTS, ...options };
    if (!Number.isInteger(this.#options.maxRestarts) || this.#options.maxRestarts < 0) {
      throw new RangeError(`Supervisor: maxRestarts must be a non-negative integer, got ${this.#options.maxRestarts}`);
    }
  }

  /** Children in start order. */
  get children(): readonly ChildSpec[] {
    return this.#children;
  }

  /**
   * Starts a child and then supervises it. A child that fails to start the first time is not
   * restarted: the error is thrown to the caller (a daemon that cannot bind its port should say so).
   */
  async startChild(spec: ChildSpec): Promise<void> {
    await spec.actor.start();
    spec.actor.setParent(this);
    this.#children.push(spec);
  }

  /** Stops one child and stops supervising it (its failures from now on are not restarted). */
  async stopChild(actor: ChildSpec['actor']): Promise<void> {
    const i = this.#children.findIndex((c) => c.actor === actor);
    if (i >= 0) this.#children.splice(i, 1);
    await actor.stop();
  }

  /** Stops children in reverse start order; no restarts happen afterwards. */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    for (const cancel of this.#pending) cancel();
    this.#pending.clear();
    for (const spec of [...this.#children].reverse()) {
      await spec.actor.stop();
    }
  }

  childFailed(child: Actor<unknown>, error: unknown): void {
    const spec = this.#children.find((c) => c.actor === child);
    this.#options.onEvent?.({ kind: 'child_failed', child: child.name, error });
    if (!spec || this.#stopping || spec.restart === 'temporary') return;
    const now = this.#options.clock.now();
    this.#restarts = this.#restarts.filter((t) => now - t < this.#options.windowMs);
    if (this.#restarts.length >= this.#options.maxRestarts) {
      this.#options.onEscalate(
        new SrganError(
          'SRGAN_ERR_RESTART_LIMIT',
          `actor ${child.name} failed ${this.#restarts.length + 1} times within ${this.#options.windowMs} ms: ${describe(error)}`,
          { cause: error },
        ),
      );
      return;
    }
    this.#restarts.push(now);
    const cancel = this.#options.clock.setTimeout(() => {
      this.#pending.delete(cancel);
      if (this.#stopping) return;
      child
        .stop()
        .then(() => child.start())
        .then(() => {
          if (child.status === 'Running') this.#options.onEvent?.({ kind: 'child_restarted', child: child.name });
        })
        .catch((err: unknown) =>
          this.#options.onEscalate(
            new SrganError('SRGAN_ERR_ACTOR', `actor ${child.name} could not restart: ${describe(err)}`, { cause: err }),
          ),
        );
    }, this.#options.restartDelayMs);
    this.#pending.add(cancel);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
