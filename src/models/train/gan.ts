// One GAN training step as the seed runs it (docs/seed.md §6.1): a G step on pixel + perceptual +
// capped relativistic adversarial losses, then k D steps on the G step's output, detached, each with a
// fresh shift crop. Owns G, D, their Adam optimizers and the EMA of G. A pure function of the run
// config and the batches it is given: the trainer thread and the benchmarks drive it alike.

import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '../../config/presets.js';
import type { Discriminator, Generator } from '../archs/network.js';
import { buildDiscriminator, buildGenerator } from '../archs/build.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from '../losses/pixel-adversarial.js';
import { deriveSeed, mulberry32, type Rng } from '../../util/prng.js';
import { adamIterations, adamSnapshot, adamVariables, restoreAdam, type AdamSnapshot } from './optimizer-state.js';
import { SrganError } from '../../util/errors.js';
import type { GanScalars } from './checkpoint.js';

/** A frozen feature network's loss between G's output and the target (models/losses/perceptual.ts). */
export interface FeatureLoss {
  apply(y: tf.Tensor4D, label: tf.Tensor4D): { full: tf.Scalar; half: tf.Scalar };
  dispose(): void;
}

/** Exponential moving average of G's weights (models/train/ema.ts). */
export interface WeightAverage {
  update(step?: number): void;
  /** The averaged weights, by G's variable names. */
  readonly shadow: Readonly<Record<string, tf.Variable>>;
  /** Runs `fn` with the averaged weights in G's variables, then puts the training weights back. */
  withAverage<T>(fn: () => T): T;
  /** Sets the average to G's current weights. */
  reset(): void;
  dispose(): void;
}

/** What one step is asked to do (the scheduler's plan). */
export interface StepSpec {
  lrG: number;
  lrD: number;
  dSteps: number;
  resetOptimizers?: boolean;
  /** 1-based index of this G step; gives the EMA its warm-up (ema.ts). Without it the EMA uses its decay as is. */
  step?: number;
}

export interface GanOptions {
  perceptual?: FeatureLoss | null;
  /**
   * Generators the losses draw from besides the Gan's own shift crops (the perceptual loss's): with
   * `accumulate` > 1 every part of a step replays their draws, as it replays the shift crops.
   */
  replay?: readonly Rng[];
  ema?: (G: Generator) => WeightAverage | null;
}

export class Gan {
  readonly config: RunConfig;
  readonly G: Generator;
  readonly D: Discriminator;
  readonly #gVars: tf.Variable[];
  readonly #dVars: tf.Variable[];
  readonly #perceptual: FeatureLoss | null;
  readonly #ema: WeightAverage | null;
  readonly #shift: Rng;
  readonly #replay: readonly Rng[];
  #optG: tf.AdamOptimizer;
  #optD: tf.AdamOptimizer;

  constructor(config: RunConfig, options: GanOptions = {}) {
    this.config = config;
    this.G = buildGenerator(config.generator, config.scale, deriveSeed(config.seed, 1), config.recompute);
    this.D = buildDiscriminator(config.discriminator, deriveSeed(config.seed, 2));
    this.#gVars = Object.values(this.G.variables);
    this.#dVars = Object.values(this.D.variables);
    this.#perceptual = options.perceptual ?? null;
    this.#ema = options.ema?.(this.G) ?? null;
    this.#shift = mulberry32(deriveSeed(config.seed, 3));
    this.#replay = options.replay ?? [];
    this.#optG = adam(0);
    this.#optD = adam(0);
  }

  /**
   * Sets G's weights with `load` (fine-tuning from published weights, before the first step), and
   * starts the EMA from them rather than from the random init.
   */
  initGenerator(load: (G: Generator) => void): void {
    load(this.G);
    this.#ema?.reset();
  }

  /** Forgets both optimizers' moments (the author recreated them at every phase). */
  resetOptimizers(): void {
    this.#optG.dispose();
    this.#optD.dispose();
    this.#optG = adam(0);
    this.#optD = adam(0);
  }

  /**
   * One G step and `spec.dSteps` D steps on a batch (HR [n, P, P, 3] and LR [n, P/s, P/s, 3] in [0, 1]).
   * Returns the logged values still on the device (decode them with readStepValues or decodeStepValues):
   * weighted loss terms, the D loss (mean over its steps); training PSNR is derived from `mse` on decoding.
   *
   * A step whose losses or gradients are not all finite is not applied (docs/reliability.md, "NaN and
   * Inf"): every variable it changed (weights, BatchNorm statistics, the EMA, both optimizers' moments
   * and β products) is put back as it was, and its values carry `step_skipped: 1`. On the CPU rungs the
   * check reads one flag (their work is synchronous anyway); on webgpu, which must not read each step,
   * each variable takes its old or new value by a select on the device.
   *
   * With `config.accumulate` = k > 1 the batch is taken in k equal parts: each part's gradients are
   * computed in turn and averaged, then each optimizer steps once. Every loss is a mean over equal-sized
   * parts, so the average of the parts' gradients is the whole batch's; every part sees the random
   * draws the whole batch would (shift crops; the perceptual loss's, given as `replay`) and the same
   * spectral-norm vectors, so the step is the whole-batch step up to float rounding. BatchNorm, which
   * normalises over the batch, is the exception (config/resolve.ts refuses it). Peak memory is one part's.
   */
  stepLazy(hr: tf.Tensor4D, lr: tf.Tensor4D, spec: StepSpec): PendingStepValues {
    if (spec.resetOptimizers) this.resetOptimizers();
    setLearningRate(this.#optG, spec.lrG);
    setLearningRate(this.#optD, spec.lrD);
    const cfg = this.config;
    const adversarial = cfg.advWeight > 0;
    const k = cfg.accumulate;
    const n = hr.shape[0];
    if (n % k !== 0 || lr.shape[0] !== n) {
      throw new RangeError(`Gan.step: a batch of ${n} HR and ${lr.shape[0]} LR patches cannot be split into ${k} equal parts (accumulate)`);
    }
    return tf.tidy(() => {
      // The state before the step, to put back if it goes non-finite: clones share the variables'
      // buffers (no copy), and a variable's update gives it a new buffer.
      const before = new Map(this.#stateVariables().map((v) => [v, tf.clone(v)] as const));
      const iterations = [adamIterations(this.#optG), adamIterations(this.#optD)];
      const hrs = k === 1 ? [hr] : (tf.split(hr, k) as tf.Tensor4D[]);
      const lrs = k === 1 ? [lr] : (tf.split(lr, k) as tf.Tensor4D[]);
      const terms: Record<string, tf.Scalar> = {};
      const ys: tf.Tensor4D[] = [];
      const parts: Record<string, tf.Scalar>[] = [];
      const g = this.#overParts(this.#gVars, [this.#shift, ...this.#replay], (i) => {
        const part: Record<string, tf.Scalar> = {};
        parts.push(part);
        const y = tf.keep(this.G.apply(lrs[i]));
        ys.push(y);
        const diff = tf.sub(y, hrs[i]);
        const pix = cfg.pixelLoss === 'l1' ? tf.mean(tf.abs(diff)) : tf.mean(tf.square(diff));
        part.g_pix = tf.keep(tf.mul(pix, cfg.pixelWeight) as tf.Scalar);
        part.mse = tf.keep(cfg.pixelLoss === 'mse' ? (pix as tf.Scalar) : mse(y, hrs[i]));
        let total: tf.Tensor = part.g_pix;
        if (this.#perceptual) {
          const { full, half } = this.#perceptual.apply(y, hrs[i]);
          part.g_perc = tf.keep(full);
          part.g_perc_half = tf.keep(half);
          total = tf.add(total, tf.add(full, half));
        }
        if (adversarial) {
          const [cy, cl] = shiftCrop([y, hrs[i]], cfg.maxShift, this.#shift);
          const adv = generatorAdvLoss(this.D.apply(cy, { training: true }), this.D.apply(cl, { training: true }));
          part.g_adv = tf.keep(tf.mul(adv, cfg.advWeight) as tf.Scalar);
          total = tf.add(total, part.g_adv);
        }
        return total as tf.Scalar;
      });
      // Each logged term is the mean of the parts' (a part's terms were kept past its tape).
      for (const name of Object.keys(parts[0])) {
        const each = parts.map((p) => p[name]);
        terms[name] = k === 1 ? each[0] : tf.keep(tf.div(tf.addN(each), k) as tf.Scalar);
        if (k > 1) tf.dispose(each);
      }
      let check = finiteProbe(g.value, g.grads);
      if (spec.lrG > 0) this.#optG.applyGradients(g.grads as never);
      this.D.commitStats(); // BatchNorm statistics move in the G step too (docs/seed.md §6.1)
      this.#ema?.update(spec.step);

      // The ys' graphs belong to the finished G tapes: below they are constants, i.e. detached.
      let dSum: tf.Tensor = tf.scalar(0);
      const dSteps = adversarial ? spec.dSteps : 0;
      for (let d = 0; d < dSteps; d++) {
        const { value: cost, grads: dGrads } = this.#overParts(this.#dVars, [this.#shift], (i) => {
          const [cy, cl] = shiftCrop([ys[i], hrs[i]], cfg.maxShift, this.#shift);
          return discriminatorLoss(this.D.apply(cy, { training: true }), this.D.apply(cl, { training: true }));
        });
        check = tf.add(check, finiteProbe(cost, dGrads));
        this.#optD.applyGradients(dGrads as never);
        this.D.commitStats();
        dSum = tf.add(dSum, cost);
      }
      const skipped = this.#undoUnlessFinite(check, before, iterations);
      // Every logged loss in one vector, read once (readStepValues): one device read for the step, or
      // for many steps stacked (a GPU backend reads asynchronously, every logEvery steps).
      const names = ['g_loss', ...Object.keys(terms), ...(dSteps > 0 ? ['d_loss'] : []), 'step_skipped'];
      const scalars = [g.value, ...Object.values(terms), ...(dSteps > 0 ? [dSum] : []), skipped]; // d_loss: the sum, divided on decoding
      const values = tf.keep(tf.stack(scalars) as tf.Tensor1D);
      tf.dispose([...ys, ...Object.values(terms)]); // kept past variableGrads' scope above
      return { names, values, fixed: { lr_g: spec.lrG, lr_d: spec.lrD, d_steps: dSteps } };
    });
  }

  /** Every variable a step changes: weights, D's statistics, the EMA, both optimizers' state. */
  #stateVariables(): tf.Variable[] {
    return [
      ...this.#gVars,
      ...this.#dVars,
      ...Object.values(this.D.stats),
      ...Object.values(this.#ema?.shadow ?? {}),
      ...adamVariables(this.#optG),
      ...adamVariables(this.#optD),
    ];
  }

  /**
   * Puts every state variable back to `before` unless `check` is finite; a variable the step created
   * (an optimizer's moments, at its first update) goes back to zeros, as a fresh one starts. Returns
   * 1 (skipped) or 0 as a float scalar, still on the device.
   */
  #undoUnlessFinite(check: tf.Scalar, before: ReadonlyMap<tf.Variable, tf.Tensor>, iterations: readonly number[]): tf.Scalar {
    const ok = tf.isFinite(check);
    const old = (v: tf.Variable) => before.get(v) ?? tf.zerosLike(v);
    if (tf.getBackend() === 'webgpu') {
      // No read: each variable selects on the device. (The optimizers' JS update counts, which only
      // their saved weights use, stay advanced.)
      for (const v of this.#stateVariables()) v.assign(tf.where(ok, v, old(v)));
    } else if (ok.dataSync()[0] === 0) {
      for (const v of this.#stateVariables()) v.assign(old(v));
      adamIterations(this.#optG, iterations[0]);
      adamIterations(this.#optD, iterations[1]);
    }
    return tf.sub(1, tf.cast(ok, 'float32'));
  }

  /**
   * `stepLazy` with its values read at once (a blocking read: fine on the CPU rungs; on webgpu, whose
   * blocking read does not work in Node, use stepLazy and readStepValues).
   */
  step(hr: tf.Tensor4D, lr: tf.Tensor4D, spec: StepSpec): Record<string, number> {
    const pending = this.stepLazy(hr, lr, spec);
    try {
      return decodeStepValues(pending, pending.values.dataSync());
    } finally {
      pending.values.dispose();
    }
  }

  /**
   * The mean over the step's `config.accumulate` parts of `loss(i)` and of its gradients w.r.t. `vars`,
   * each part taken under its own tape, with `rngs` and D's vectors rewound between parts (#rewinder).
   * One part: the loss and gradients as they come.
   */
  #overParts(vars: tf.Variable[], rngs: readonly Rng[], loss: (part: number) => tf.Scalar): { value: tf.Scalar; grads: tf.NamedTensorMap } {
    const k = this.config.accumulate;
    const again = this.#rewinder(rngs);
    let value: tf.Scalar | null = null;
    let grads: tf.NamedTensorMap = {};
    for (let i = 0; i < k; i++) {
      if (i > 0) again();
      const r = tf.variableGrads(() => loss(i), vars);
      value = value === null ? r.value : tf.add<tf.Scalar>(value, r.value);
      grads = i === 0 ? r.grads : addInto(grads, r.grads);
    }
    return k === 1 ? { value: value!, grads } : { value: tf.div<tf.Scalar>(value!, k), grads: scaled(grads, 1 / k) };
  }

  /**
   * For the parts of one step: returns a function that puts `rngs` and D's non-trainable state
   * (spectral-norm vectors) back to where they are now, so the next part draws and normalises as the
   * first did. After the last part they stand where the whole batch would have left them.
   */
  #rewinder(rngs: readonly Rng[]): () => void {
    if (this.config.accumulate === 1) return () => {};
    const states = rngs.map((r) => r.state);
    this.D.commitStats();
    // Plain tensors of the step's tidy: they live until the step ends.
    const stats = Object.entries(this.D.stats).map(([name, v]) => [name, tf.clone(v)] as const);
    return () => {
      rngs.forEach((r, i) => (r.state = states[i]!));
      this.D.commitStats(); // drop nothing: a part's pending update is the same as the first part's
      for (const [name, t] of stats) this.D.stats[name].assign(t);
    };
  }

  /** Runs `fn` with the EMA weights in G's variables (with the training weights when there is no EMA). */
  withAverageWeights<T>(fn: () => T): T {
    return this.#ema ? this.#ema.withAverage(fn) : fn();
  }

  /** G's output for `lr`, clipped to [0, 1]; with the EMA weights when there is an EMA and `ema` is true. */
  generate(lr: tf.Tensor4D, opts: { ema?: boolean } = {}): tf.Tensor4D {
    const G = this.G;
    // Never under a tape: infer frees each block's intermediates as it goes.
    const run = () => tf.tidy(() => tf.clipByValue(G.infer === undefined ? G.apply(lr) : G.infer(lr), 0, 1) as tf.Tensor4D);
    return opts.ema !== false && this.#ema ? this.#ema.withAverage(run) : run();
  }

  /**
   * Everything training has changed, by stable names: `G/…`, `D/…`, `Dstats/…`, `EMA/…` and the
   * optimizers' moments `optG/m/…`, `optG/v/…`, `optD/m/…`, `optD/v/…`. The tensors are live
   * variables: read them before the next step (the trainer takes none while a checkpoint is written).
   */
  async exportState(): Promise<{ tensors: Record<string, tf.Tensor>; scalars: GanScalars }> {
    const tensors: Record<string, tf.Tensor> = {};
    const add = (prefix: string, rec: Readonly<Record<string, tf.Tensor>>) => {
      for (const [k, t] of Object.entries(rec)) tensors[`${prefix}/${k}`] = t;
    };
    add('G', this.G.variables);
    add('D', this.D.variables);
    add('Dstats', this.D.stats);
    if (this.#ema) add('EMA', this.#ema.shadow);
    const g = await adamSnapshot(this.#optG, this.G.variables);
    const d = await adamSnapshot(this.#optD, this.D.variables);
    add('optG/m', g.m);
    add('optG/v', g.v);
    add('optD/m', d.m);
    add('optD/v', d.v);
    const scalars = (s: AdamSnapshot) => ({ iterations: s.iterations, accBeta1: s.accBeta1, accBeta2: s.accBeta2 });
    return { tensors, scalars: { optG: scalars(g), optD: scalars(d), shiftRng: this.#shift.state } };
  }

  /**
   * Loads exportState() output into this Gan (built from the same config). Throws SRGAN_ERR_CHECKPOINT
   * naming the first missing or mis-shaped tensor; nothing is assigned unless everything matches.
   */
  importState(tensors: Record<string, tf.Tensor>, scalars: GanScalars): void {
    const plan: Array<[tf.Variable, tf.Tensor]> = [];
    const take = (prefix: string, rec: Readonly<Record<string, tf.Variable>>) => {
      for (const [k, v] of Object.entries(rec)) {
        const t = tensors[`${prefix}/${k}`];
        if (!t) throw new SrganError('SRGAN_ERR_CHECKPOINT', `checkpoint has no tensor ${prefix}/${k}`);
        if (!tf.util.arraysEqual(t.shape, v.shape)) {
          throw new SrganError(
            'SRGAN_ERR_CHECKPOINT',
            `checkpoint tensor ${prefix}/${k} has shape [${t.shape}], the model's is [${v.shape}] (a different config?)`,
          );
        }
        plan.push([v, t]);
      }
    };
    take('G', this.G.variables);
    take('D', this.D.variables);
    take('Dstats', this.D.stats);
    if (this.#ema) take('EMA', this.#ema.shadow);
    const moments = (prefix: string, vars: Record<string, tf.Variable>) => {
      const pick = (kind: 'm' | 'v') =>
        Object.fromEntries(
          Object.keys(vars).flatMap((k) => (tensors[`${prefix}/${kind}/${k}`] ? [[k, tensors[`${prefix}/${kind}/${k}`]]] : [])),
        );
      return { m: pick('m'), v: pick('v') };
    };
    const g = moments('optG', this.G.variables);
    const d = moments('optD', this.D.variables);
    for (const [v, t] of plan) v.assign(t);
    this.resetOptimizers();
    restoreAdam(this.#optG, this.G.variables, { ...scalars.optG, ...g });
    restoreAdam(this.#optD, this.D.variables, { ...scalars.optD, ...d });
    this.#shift.state = scalars.shiftRng;
  }

  dispose(): void {
    this.#optG.dispose();
    this.#optD.dispose();
    this.#ema?.dispose();
    this.#perceptual?.dispose();
    this.G.dispose();
    this.D.dispose();
  }
}

/**
 * A scalar that is finite only if `value` and every gradient are: their sum (a NaN or an infinity
 * anywhere carries through a sum; finite float32 gradients do not overflow it).
 */
function finiteProbe(value: tf.Scalar, grads: tf.NamedTensorMap): tf.Scalar {
  return tf.addN([value, ...Object.values(grads).map((t) => tf.sum(t))]) as tf.Scalar;
}

/** Adam with the seed's eps (tfjs' default differs). */
function adam(lr: number): tf.AdamOptimizer {
  return tf.train.adam(lr, 0.9, 0.999, 1e-8);
}

function setLearningRate(opt: tf.AdamOptimizer, lr: number): void {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}

/** One step's logged values: `values` (a kept tensor, one entry per name) is still on the device. */
export interface PendingStepValues {
  names: string[];
  values: tf.Tensor1D;
  /** Values known without reading the device (learning rates, D steps taken). */
  fixed: Record<string, number>;
}

/** A step's values by name, from `pending` and the numbers read from its `values`. */
export function decodeStepValues(pending: Omit<PendingStepValues, 'values'>, read: ArrayLike<number>): Record<string, number> {
  const out: Record<string, number> = {};
  pending.names.forEach((name, i) => (out[name] = read[i]));
  if (out.d_loss !== undefined) out.d_loss /= pending.fixed.d_steps; // the mean over the D steps, in float64 as before
  // Named only for a step that was not applied (a non-finite loss or gradient): the trainer's cue.
  if (out.step_skipped === 0) delete out.step_skipped;
  const mse = out.mse;
  delete out.mse;
  const ordered: Record<string, number> = { g_loss: out.g_loss, g_pix: out.g_pix, psnr_train: 10 * Math.log10(1 / Math.max(mse, 1e-12)) };
  for (const [k, v] of Object.entries(pending.fixed)) if (k !== 'd_steps') ordered[k] = v;
  for (const [k, v] of Object.entries(out)) if (!(k in ordered)) ordered[k] = v;
  ordered.d_steps = pending.fixed.d_steps;
  return ordered;
}

/**
 * The values of several steps with one asynchronous device read (stacked), each step's decoded;
 * disposes every `values` tensor.
 */
export async function readStepValues(pending: readonly PendingStepValues[]): Promise<Record<string, number>[]> {
  if (pending.length === 0) return [];
  const all = tf.concat(pending.map((p) => p.values));
  try {
    const read = await all.data();
    let at = 0;
    return pending.map((p) => {
      const n = p.names.length;
      const one = decodeStepValues(p, read.subarray(at, at + n));
      at += n;
      return one;
    });
  } finally {
    all.dispose();
    tf.dispose(pending.map((p) => p.values));
  }
}

/** acc + more, name by name, freeing both (gradients of one part added to the sum so far). */
function addInto(acc: tf.NamedTensorMap, more: tf.NamedTensorMap): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const [name, g] of Object.entries(more)) {
    const before = acc[name];
    out[name] = before ? tf.add(before, g) : g;
    if (before) tf.dispose([before, g]);
  }
  return out;
}

/** Each gradient × f, freeing the originals. */
function scaled(grads: tf.NamedTensorMap, f: number): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const [name, g] of Object.entries(grads)) {
    out[name] = tf.mul(g, f);
    g.dispose();
  }
  return out;
}
