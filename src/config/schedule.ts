// The names a run config uses for its training schedule; models/train/scheduler.ts runs them.

/** A learning-rate phase: `steps` generator steps at these rates (null = until stopped). */
export interface Phase {
  steps: number | null;
  lrG: number;
  lrD: number;
}

/** How the number of D steps per G step is chosen. */
export type DMode = 'fixed' | 'adaptive';
