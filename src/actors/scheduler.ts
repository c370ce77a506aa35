// The scheduler decides, step by step, what the trainer does: how many discriminator steps follow each
// generator step, which learning rates apply, when to log and preview, and whether to pause or stop.
// It is pure state: no tensors, no time, no I/O, so every decision is testable on its own.

/** A learning-rate phase: `steps` generator steps at these rates (null = until stopped). */
export interface Phase {
  steps: number | null;
  lrG: number;
  lrD: number;
}

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
}

/** What to do for the next generator step. */
export interface StepPlan {
  /** 1-based index of the generator step this plan is for. */
  step: number;
  phase: number;
  lrG: number;
  lrD: number;
  dSteps: number;
  log: boolean;
  preview: boolean;
}

/** run: training; pausing: pause asked, takes effect at the next step boundary; stopping: likewise. */
export type RunMode = 'run' | 'pausing' | 'paused' | 'stopping' | 'stopped';

export class Scheduler {
  readonly config: Readonly<SchedulerConfig>;
  #step: number;
  #dSteps: number;
  #mode: RunMode = 'run';

  constructor(config: SchedulerConfig, state: { step: number; dSteps: number } = { step: 0, dSteps: 0 }) {
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
    this.config = Object.freeze({ ...config, phases: config.phases.map((p) => ({ ...p })) });
    this.#step = state.step;
    this.#dSteps = state.dSteps;
  }

  /** Generator steps completed. */
  get step(): number {
    return this.#step;
  }
  /** Discriminator steps completed. */
  get dSteps(): number {
    return this.#dSteps;
  }
  get mode(): RunMode {
    return this.#mode;
  }

  /** Phase index and rates in force for generator step `step` (1-based). The last phase extends. */
  phaseAt(step: number): { index: number; phase: Phase } {
    let end = 0;
    const phases = this.config.phases;
    for (let i = 0; i < phases.length; i++) {
      const p = phases[i] as Phase;
      if (p.steps === null) return { index: i, phase: p };
      end += p.steps;
      if (step <= end) return { index: i, phase: p };
    }
    return { index: phases.length - 1, phase: phases[phases.length - 1] as Phase };
  }

  /** The plan for the next generator step. */
  plan(): StepPlan {
    const step = this.#step + 1;
    const { index, phase } = this.phaseAt(step);
    return {
      step,
      phase: index,
      lrG: phase.lrG,
      lrD: phase.lrD,
      dSteps: this.config.dStepsPerG,
      log: step % this.config.logEvery === 0 || step === 1,
      preview: this.config.previewEvery > 0 && (step % this.config.previewEvery === 0 || step === 1),
    };
  }

  /** Records that `plan` was carried out. */
  complete(plan: StepPlan, dStepsDone = plan.dSteps): void {
    if (plan.step !== this.#step + 1) throw new RangeError(`completed step ${plan.step}, expected ${this.#step + 1}`);
    this.#step = plan.step;
    this.#dSteps += dStepsDone;
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
