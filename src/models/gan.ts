// One GAN training step as the seed runs it (docs/seed.md §6.1): a G step on pixel + perceptual +
// capped relativistic adversarial losses, then k D steps on the G step's output, detached, each with a
// fresh shift crop. Owns G, D, their Adam optimizers and the EMA of G. A pure function of the run
// config and the batches it is given: the trainer thread and the benchmarks drive it alike.

import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from './presets.js';
import type { Discriminator, Generator } from './network.js';
import { buildDiscriminator, buildGenerator } from './registry.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from './losses.js';
import { deriveSeed, mulberry32, type Rng } from '../data/prng.js';
import { adamSnapshot, restoreAdam, type AdamSnapshot } from './optimizer-state.js';
import { SrganError } from '../errors.js';

/** A frozen feature network's loss between G's output and the target (models/perceptual.ts). */
export interface FeatureLoss {
  apply(y: tf.Tensor4D, label: tf.Tensor4D): { full: tf.Scalar; half: tf.Scalar };
  dispose(): void;
}

/** Exponential moving average of G's weights (models/ema.ts). */
export interface WeightAverage {
  update(step?: number): void;
  /** The averaged weights, by G's variable names. */
  readonly shadow: Readonly<Record<string, tf.Variable>>;
  /** Runs `fn` with the averaged weights in G's variables, then puts the training weights back. */
  withAverage<T>(fn: () => T): T;
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
    this.#optG = adam(0);
    this.#optD = adam(0);
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
   * Returns the logged values: weighted loss terms, the D loss (mean over its steps), training PSNR.
   */
  step(hr: tf.Tensor4D, lr: tf.Tensor4D, spec: StepSpec): Record<string, number> {
    if (spec.resetOptimizers) this.resetOptimizers();
    setLearningRate(this.#optG, spec.lrG);
    setLearningRate(this.#optD, spec.lrD);
    const cfg = this.config;
    const adversarial = cfg.advWeight > 0;
    return tf.tidy(() => {
      const terms: Record<string, tf.Scalar> = {};
      let y!: tf.Tensor4D;
      const { value, grads } = tf.variableGrads(() => {
        y = tf.keep(this.G.apply(lr));
        const diff = tf.sub(y, hr);
        const pix = cfg.pixelLoss === 'l1' ? tf.mean(tf.abs(diff)) : tf.mean(tf.square(diff));
        terms.g_pix = tf.keep(tf.mul(pix, cfg.pixelWeight) as tf.Scalar);
        terms.mse = tf.keep(cfg.pixelLoss === 'mse' ? (pix as tf.Scalar) : mse(y, hr));
        let total: tf.Tensor = terms.g_pix;
        if (this.#perceptual) {
          const { full, half } = this.#perceptual.apply(y, hr);
          terms.g_perc = tf.keep(full);
          terms.g_perc_half = tf.keep(half);
          total = tf.add(total, tf.add(full, half));
        }
        if (adversarial) {
          const [cy, cl] = shiftCrop([y, hr], cfg.maxShift, this.#shift);
          const adv = generatorAdvLoss(this.D.apply(cy!, { training: true }), this.D.apply(cl!, { training: true }));
          terms.g_adv = tf.keep(tf.mul(adv, cfg.advWeight) as tf.Scalar);
          total = tf.add(total, terms.g_adv);
        }
        return total as tf.Scalar;
      }, this.#gVars);
      if (spec.lrG > 0) this.#optG.applyGradients(grads as tf.NamedTensorMap as never);
      this.D.commitStats(); // BatchNorm statistics move in the G step too (docs/seed.md §6.1)
      this.#ema?.update(spec.step);

      // y's graph belongs to the finished G tape: below it is a constant, i.e. detached.
      let dSum: tf.Tensor = tf.scalar(0);
      const dSteps = adversarial ? spec.dSteps : 0;
      for (let k = 0; k < dSteps; k++) {
        const cost = this.#optD.minimize(() => {
          const [cy, cl] = shiftCrop([y, hr], cfg.maxShift, this.#shift);
          return discriminatorLoss(this.D.apply(cy!, { training: true }), this.D.apply(cl!, { training: true }));
        }, true, this.#dVars);
        this.D.commitStats();
        if (cost) dSum = tf.add(dSum, cost);
      }
      const mseV = scalarOf(terms.mse!);
      const out: Record<string, number> = {
        g_loss: scalarOf(value),
        g_pix: scalarOf(terms.g_pix!),
        psnr_train: 10 * Math.log10(1 / Math.max(mseV, 1e-12)),
        lr_g: spec.lrG,
        lr_d: spec.lrD,
      };
      if (terms.g_perc) out.g_perc = scalarOf(terms.g_perc);
      if (terms.g_perc_half) out.g_perc_half = scalarOf(terms.g_perc_half);
      if (terms.g_adv) out.g_adv = scalarOf(terms.g_adv);
      if (dSteps > 0) out.d_loss = scalarOf(dSum) / dSteps;
      out.d_steps = dSteps;
      tf.dispose([y, ...Object.values(terms)]); // kept past variableGrads' scope above
      return out;
    });
  }

  /** Runs `fn` with the EMA weights in G's variables (with the training weights when there is no EMA). */
  withAverageWeights<T>(fn: () => T): T {
    return this.#ema ? this.#ema.withAverage(fn) : fn();
  }

  /** G's output for `lr`, clipped to [0, 1]; with the EMA weights when there is an EMA and `ema` is true. */
  generate(lr: tf.Tensor4D, opts: { ema?: boolean } = {}): tf.Tensor4D {
    const run = () => tf.tidy(() => tf.clipByValue(this.G.apply(lr), 0, 1) as tf.Tensor4D);
    return opts.ema !== false && this.#ema ? this.#ema.withAverage(run) : run();
  }

  /**
   * Everything training has changed, by stable names: `G/…`, `D/…`, `Dstats/…`, `EMA/…` and the
   * optimizers' moments `optG/m/…`, `optG/v/…`, `optD/m/…`, `optD/v/…`. The tensors are live
   * variables: read them before the next step.
   */
  exportState(): { tensors: Record<string, tf.Tensor>; scalars: GanScalars } {
    const tensors: Record<string, tf.Tensor> = {};
    const add = (prefix: string, rec: Readonly<Record<string, tf.Tensor>>) => {
      for (const [k, t] of Object.entries(rec)) tensors[`${prefix}/${k}`] = t;
    };
    add('G', this.G.variables);
    add('D', this.D.variables);
    add('Dstats', this.D.stats);
    if (this.#ema) add('EMA', this.#ema.shadow);
    const g = adamSnapshot(this.#optG, this.G.variables);
    const d = adamSnapshot(this.#optD, this.D.variables);
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
          throw new SrganError('SRGAN_ERR_CHECKPOINT', `checkpoint tensor ${prefix}/${k} has shape [${t.shape}], the model's is [${v.shape}] (a different config?)`);
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
        Object.fromEntries(Object.keys(vars).flatMap((k) => (tensors[`${prefix}/${kind}/${k}`] ? [[k, tensors[`${prefix}/${kind}/${k}`]!]] : [])));
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

/** The scalar part of a Gan's training state (the tensors go beside it, see Gan.exportState). */
export interface GanScalars {
  optG: { iterations: number; accBeta1: number; accBeta2: number };
  optD: { iterations: number; accBeta1: number; accBeta2: number };
  /** State of the shift-crop generator. */
  shiftRng: number;
}

/** Adam with the seed's eps (tfjs' default differs). */
function adam(lr: number): tf.AdamOptimizer {
  return tf.train.adam(lr, 0.9, 0.999, 1e-8);
}

function setLearningRate(opt: tf.AdamOptimizer, lr: number): void {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}

function scalarOf(t: tf.Tensor): number {
  return t.dataSync()[0] as number;
}
