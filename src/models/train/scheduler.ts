// The scheduler decides, step by step, what the trainer does: how many discriminator steps follow each
// generator step, which learning rates apply, when to log and preview, and whether to pause or stop.
// It is pure state: no tensors, no time, no I/O, so every decision is testable on its own.

import type { DMode, Phase } from '../../config/schedule.js';

/**
 * Tuning of the adaptive-D trend test. The generator's adversarial loss is smoothed by two EMAs, a fast
 * and a slow one; it counts as rising while the fast one sits above the slow one by more than a margin
 * relative to the slow one's magnitude. Entering needs `enter`, leaving needs the gap to drop below
 * `exit` (< enter): a band of hysteresis, plus a minimum dwell `minHold`, so the decision does not flap
 * on noise.
 */
export interface AdaptiveDOptions {
  /** Decay of the fast EMA per observation (default 0.98, about 50 steps). */
  fastDecay: number;
  /** Decay of the slow EMA per observation (default 0.998, about 500 steps); must exceed fastDecay. */
  slowDecay: number;
  /** Start skipping D when (fast − slow) / max(|slow|, floor) > enter (default 0.05). */
  enter: number;
  /** Resume D when (fast − slow) / max(|slow|, floor) < exit (default 0; must be < enter). */
  exit: number;
  /** Observations after a switch before the next switch is allowed (default 50). */
  minHold: number;
  /** Observations before the first switch is allowed, while the slow EMA settles (default 500). */
  warmup: number;
  /** Lower bound of the scale the gap is measured against, for losses near zero (default 1e-8). */
  floor: number;
}

export const ADAPTIVE_D_DEFAULTS: Readonly<AdaptiveDOptions> = Object.freeze({
  fastDecay: 0.98,
  slowDecay: 0.998,
  enter: 0.05,
  exit: 0,
  minHold: 50,
  warmup: 500,
  floor: 1e-8,
});

export interface SchedulerConfig {
  /** Discriminator steps after each generator step (they reuse the G step's detached output). */
  dStepsPerG: number;
  phases: Phase[];
  /** Log losses every N generator steps. */
  logEvery: number;
  /** Make a preview every N generator steps (0 = never). */
  previewEvery: number;
  /** Stop by itself after this many generator steps (null = run until told to stop). */
  maxSteps: number | null;
  /**
   * Multiplier of every phase's rates, applied in plan(). The seed's rule (docs/seed.md §6.2) is
   * batch / 8: use lrBatchScale(batch). null or absent = rates as given (factor 1).
   */
  batchScale?: number | null;
  /**
   * Plan `resetOptimizers: true` on the first step of every phase after the first, as the author
   * recreated both Adam optimizers at each phase (docs/seed.md §1, §6.2). Default false.
   */
  resetOptimizersOnPhaseChange?: boolean;
  /** 'fixed' (default): always dStepsPerG D steps. 'adaptive': none while the smoothed G adversarial loss rises. */
  dMode?: DMode;
  /** Overrides of ADAPTIVE_D_DEFAULTS (used when dMode is 'adaptive'). */
  adaptiveD?: Partial<AdaptiveDOptions>;
}

/** A SchedulerConfig with every optional field resolved to its value or default. */
export interface ResolvedSchedulerConfig extends Required<Omit<SchedulerConfig, 'batchScale' | 'adaptiveD'>> {
  batchScale: number | null;
  adaptiveD: Readonly<AdaptiveDOptions>;
}

/** The seed's reference batch for learning rates (docs/seed.md §6.2: `b_m = batch / 8`). */
export const LR_REFERENCE_BATCH = 8;

/** The seed's learning-rate multiplier for a batch size: batch / reference (reference default 8). */
export function lrBatchScale(batch: number, reference = LR_REFERENCE_BATCH): number {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  if (!(Number.isFinite(reference) && reference > 0)) throw new RangeError(`reference must be a positive number, got ${reference}`);
  return batch / reference;
}

/** What to do for the next generator step. */
export interface StepPlan {
  /** 1-based index of the generator step this plan is for. */
  step: number;
  phase: number;
  /** Effective rates: the phase's rates × batchScale. */
  lrG: number;
  lrD: number;
  dSteps: number;
  /** True when adaptive D set dSteps to 0 for this step. */
  dSkipped: boolean;
  /** Recreate (or reset the moments of) both optimizers before this step. */
  resetOptimizers: boolean;
  log: boolean;
  preview: boolean;
}

/** run: training; pausing: pause asked, takes effect at the next step boundary; stopping: likewise. */
export type RunMode = 'run' | 'pausing' | 'paused' | 'stopping' | 'stopped';

/** The adaptive-D trend state; JSON-safe (null = no observation yet). */
export interface AdaptiveDState {
  /** Fast and slow EMAs of the observed G adversarial loss. */
  fast: number | null;
  slow: number | null;
  /** Observations taken. */
  observations: number;
  /** True while the loss counts as rising (D steps are skipped in adaptive mode). */
  rising: boolean;
  /** Observations since the last switch of `rising` (or since the start). */
  sinceSwitch: number;
}

/**
 * Everything a checkpoint needs to resume the schedule exactly: positions, counters and the adaptive-D
 * state. The run mode (paused, stopping) is deliberately not part of it: a restored scheduler starts in
 * 'run', and whoever restores decides whether to pause.
 */
export interface SchedulerSnapshot {
  /** Generator steps completed. */
  step: number;
  /** Discriminator steps completed. */
  dSteps: number;
  /** Generator steps whose D steps adaptive D skipped. */
  dSkips: number;
  adaptive: AdaptiveDState;
}

/** A position to start from: a SchedulerSnapshot, or just the two counters of older callers. */
export type SchedulerState = Pick<SchedulerSnapshot, 'step' | 'dSteps'> & Partial<Omit<SchedulerSnapshot, 'step' | 'dSteps'>>;

const INITIAL_ADAPTIVE: Readonly<AdaptiveDState> = Object.freeze({
  fast: null,
  slow: null,
  observations: 0,
  rising: false,
  sinceSwitch: 0,
});

export class Scheduler {
  readonly config: Readonly<ResolvedSchedulerConfig>;
  #step: number;
  #dSteps: number;
  #dSkips: number;
  #adaptive: AdaptiveDState;
  #mode: RunMode = 'run';

  /** Restores a scheduler from snapshot() output (validated, as it may come from a file). */
  static restore(config: SchedulerConfig, snapshot: SchedulerSnapshot): Scheduler {
    return new Scheduler(config, snapshot);
  }

  constructor(config: SchedulerConfig, state: SchedulerState = { step: 0, dSteps: 0 }) {
    this.config = resolveConfig(config);
    checkState(state);
    this.#step = state.step;
    this.#dSteps = state.dSteps;
    this.#dSkips = state.dSkips ?? 0;
    this.#adaptive = { ...(state.adaptive ?? INITIAL_ADAPTIVE) };
  }

  /** Generator steps completed. */
  get step(): number {
    return this.#step;
  }
  /** Discriminator steps completed. */
  get dSteps(): number {
    return this.#dSteps;
  }
  /** Generator steps whose D steps adaptive D skipped. */
  get dSkips(): number {
    return this.#dSkips;
  }
  get mode(): RunMode {
    return this.#mode;
  }
  /** A copy of the adaptive-D trend state (kept up to date by observe() in either dMode). */
  get adaptiveState(): AdaptiveDState {
    return { ...this.#adaptive };
  }

  /** Everything needed to resume this schedule exactly; see SchedulerSnapshot. */
  snapshot(): SchedulerSnapshot {
    return { step: this.#step, dSteps: this.#dSteps, dSkips: this.#dSkips, adaptive: { ...this.#adaptive } };
  }

  /** Phase index and rates in force for generator step `step` (1-based). The last phase extends. */
  phaseAt(step: number): { index: number; phase: Phase } {
    let end = 0;
    const phases = this.config.phases;
    for (let i = 0; i < phases.length; i++) {
      const p = phases[i];
      if (p.steps === null) return { index: i, phase: p };
      end += p.steps;
      if (step <= end) return { index: i, phase: p };
    }
    return { index: phases.length - 1, phase: phases[phases.length - 1] };
  }

  /** Effective rates for generator step `step` (1-based): its phase's rates × batchScale. */
  ratesAt(step: number): { lrG: number; lrD: number } {
    const { phase } = this.phaseAt(step);
    const k = this.config.batchScale ?? 1;
    return { lrG: phase.lrG * k, lrD: phase.lrD * k };
  }

  /**
   * The plan for the next generator step; a pure function of the state, so calling it twice gives the
   * same plan. `resetOptimizers` is true on the first step of every phase but the first (never on step
   * 1 of a fresh run: the optimizers are new anyway). A scheduler constructed at a saved position whose
   * next step opens a phase plans the reset too; one resumed mid-phase does not, so the trainer must
   * restore or recreate the optimizers itself on resume.
   */
  plan(): StepPlan {
    const step = this.#step + 1;
    const { index } = this.phaseAt(step);
    const { lrG, lrD } = this.ratesAt(step);
    const cfg = this.config;
    // Skip D only when G is training: in a D-only phase (lrG 0) G cannot catch up, so skipping would stall.
    const dSkipped = cfg.dMode === 'adaptive' && this.#adaptive.rising && lrG > 0 && cfg.dStepsPerG > 0;
    return {
      step,
      phase: index,
      lrG,
      lrD,
      dSteps: dSkipped ? 0 : cfg.dStepsPerG,
      dSkipped,
      resetOptimizers: cfg.resetOptimizersOnPhaseChange && step > 1 && this.phaseAt(step - 1).index !== index,
      log: step % cfg.logEvery === 0 || step === 1,
      preview: cfg.previewEvery > 0 && (step % cfg.previewEvery === 0 || step === 1),
    };
  }

  /**
   * Feeds the G adversarial loss of the step just taken to the adaptive-D trend test. Call it once per
   * generator step, after complete(); steps without an observation simply do not move the EMAs. The
   * state is updated in 'fixed' mode too, so it can be monitored and a later switch starts warm.
   */
  observe(obs: { gAdv: number }): void {
    const x = obs.gAdv;
    if (!Number.isFinite(x)) throw new RangeError(`gAdv must be a finite number, got ${x}`);
    const o = this.config.adaptiveD;
    const a = this.#adaptive;
    if (a.fast === null || a.slow === null) {
      a.fast = x;
      a.slow = x;
    } else {
      a.fast = o.fastDecay * a.fast + (1 - o.fastDecay) * x;
      a.slow = o.slowDecay * a.slow + (1 - o.slowDecay) * x;
    }
    a.observations++;
    a.sinceSwitch++;
    if (a.observations < o.warmup || a.sinceSwitch < o.minHold) return;
    const gap = (a.fast - a.slow) / Math.max(Math.abs(a.slow), o.floor);
    if (a.rising ? gap < o.exit : gap > o.enter) {
      a.rising = !a.rising;
      a.sinceSwitch = 0;
    }
  }

  /** Records that `plan` was carried out. */
  complete(plan: StepPlan, dStepsDone = plan.dSteps): void {
    if (plan.step !== this.#step + 1) throw new RangeError(`completed step ${plan.step}, expected ${this.#step + 1}`);
    this.#step = plan.step;
    this.#dSteps += dStepsDone;
    if (plan.dSkipped) this.#dSkips++;
    if (this.config.maxSteps !== null && this.#step >= this.config.maxSteps && this.#mode === 'run') this.#mode = 'stopping';
  }

  requestPause(): void {
    if (this.#mode === 'run') this.#mode = 'pausing';
  }
  requestResume(): void {
    if (this.#mode === 'pausing' || this.#mode === 'paused') this.#mode = 'run';
  }
  requestStop(): void {
    if (this.#mode !== 'stopped') this.#mode = 'stopping';
  }

  /**
   * Called between generator steps: what the trainer must do now. Pause and stop requests take
   * effect here, so a step is never cut in half.
   */
  atBoundary(): 'continue' | 'paused' | 'stop' {
    switch (this.#mode) {
      case 'run':
        return 'continue';
      case 'pausing':
      case 'paused':
        this.#mode = 'paused';
        return 'paused';
      case 'stopping':
      case 'stopped':
        this.#mode = 'stopped';
        return 'stop';
    }
  }
}

const ADAPTIVE_KEYS = Object.keys(ADAPTIVE_D_DEFAULTS) as (keyof AdaptiveDOptions)[];

/** Validates a config (errors name the field and the value) and merges it over the defaults, frozen. */
function resolveConfig(config: SchedulerConfig): Readonly<ResolvedSchedulerConfig> {
  if (!Number.isInteger(config.dStepsPerG) || config.dStepsPerG < 0) {
    throw new RangeError(`dStepsPerG must be a non-negative integer, got ${config.dStepsPerG}`);
  }
  if (config.phases.length === 0) throw new RangeError('phases must not be empty');
  config.phases.forEach((p, i) => {
    if (p.steps !== null && !(Number.isInteger(p.steps) && p.steps > 0)) {
      throw new RangeError(`phases[${i}].steps must be a positive integer or null, got ${p.steps}`);
    }
    if (p.steps === null && i !== config.phases.length - 1) throw new RangeError(`phases[${i}].steps may be null only in the last phase`);
    for (const k of ['lrG', 'lrD'] as const) {
      if (!(Number.isFinite(p[k]) && p[k] >= 0)) throw new RangeError(`phases[${i}].${k} must be a finite number >= 0, got ${p[k]}`);
    }
  });
  for (const k of ['logEvery', 'previewEvery'] as const) {
    if (!Number.isInteger(config[k]) || config[k] < (k === 'logEvery' ? 1 : 0)) {
      throw new RangeError(`${k} must be an integer >= ${k === 'logEvery' ? 1 : 0}, got ${config[k]}`);
    }
  }
  const batchScale = config.batchScale ?? null;
  if (batchScale !== null && !(Number.isFinite(batchScale) && batchScale > 0)) {
    throw new RangeError(`batchScale must be a finite number > 0 or null, got ${batchScale}`);
  }
  const reset = config.resetOptimizersOnPhaseChange ?? false;
  if (typeof reset !== 'boolean') throw new TypeError(`resetOptimizersOnPhaseChange must be a boolean, got ${String(reset)}`);
  const dMode = config.dMode ?? 'fixed';
  if (dMode !== 'fixed' && dMode !== 'adaptive') throw new RangeError(`dMode must be 'fixed' or 'adaptive', got ${String(dMode)}`);
  const adaptiveD = resolveAdaptive(config.adaptiveD ?? {});
  return Object.freeze({
    dStepsPerG: config.dStepsPerG,
    phases: config.phases.map((p) => Object.freeze({ ...p })),
    logEvery: config.logEvery,
    previewEvery: config.previewEvery,
    maxSteps: config.maxSteps,
    batchScale,
    resetOptimizersOnPhaseChange: reset,
    dMode,
    adaptiveD,
  });
}

function resolveAdaptive(over: Partial<AdaptiveDOptions>): Readonly<AdaptiveDOptions> {
  for (const k of Object.keys(over)) {
    if (!(ADAPTIVE_KEYS as string[]).includes(k)) {
      const near = ADAPTIVE_KEYS.find((c) => c.toLowerCase() === k.toLowerCase());
      throw new RangeError(
        `adaptiveD.${k} is not an option${near ? `; did you mean ${near}?` : ` (options: ${ADAPTIVE_KEYS.join(', ')})`}`,
      );
    }
  }
  const o: AdaptiveDOptions = { ...ADAPTIVE_D_DEFAULTS, ...over };
  const num = (k: keyof AdaptiveDOptions, ok: boolean, want: string): void => {
    if (!(Number.isFinite(o[k]) && ok)) throw new RangeError(`adaptiveD.${k} must be ${want}, got ${o[k]}`);
  };
  num('fastDecay', o.fastDecay >= 0 && o.fastDecay < 1, 'in [0, 1)');
  num('slowDecay', o.slowDecay > o.fastDecay && o.slowDecay < 1, `in (fastDecay = ${o.fastDecay}, 1)`);
  num('enter', true, 'a finite number');
  num('exit', o.exit < o.enter, `a finite number < enter (${o.enter})`);
  num('minHold', Number.isInteger(o.minHold) && o.minHold >= 0, 'an integer >= 0');
  num('warmup', Number.isInteger(o.warmup) && o.warmup >= 0, 'an integer >= 0');
  num('floor', o.floor > 0, 'a number > 0');
  return Object.freeze(o);
}

/** Validates a saved position (it may come from a checkpoint file), naming the field. */
function checkState(state: SchedulerState): void {
  const count = (name: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
  };
  count('state.step', state.step);
  count('state.dSteps', state.dSteps);
  if (state.dSkips !== undefined) count('state.dSkips', state.dSkips);
  const a = state.adaptive;
  if (a === undefined) return;
  if (typeof a !== 'object' || a === null) throw new TypeError(`state.adaptive must be an object, got ${String(a)}`);
  for (const k of ['fast', 'slow'] as const) {
    if (a[k] !== null && !(typeof a[k] === 'number' && Number.isFinite(a[k]))) {
      throw new RangeError(`state.adaptive.${k} must be a finite number or null, got ${String(a[k])}`);
    }
  }
  if ((a.fast === null) !== (a.slow === null)) throw new RangeError('state.adaptive.fast and .slow must both be null or both numbers');
  count('state.adaptive.observations', a.observations);
  count('state.adaptive.sinceSwitch', a.sinceSwitch);
  if (typeof a.rising !== 'boolean') throw new TypeError(`state.adaptive.rising must be a boolean, got ${String(a.rising)}`);
}
