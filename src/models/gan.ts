// One GAN training step as the seed runs it (SEED_SPEC §6.1): a G step on pixel + perceptual +
// capped relativistic adversarial losses, then k D steps on the G step's output, detached, each with a
// fresh shift crop. Owns G, D, their Adam optimizers and the EMA of G. A pure function of the run
// config and the batches it is given: the trainer thread and the benchmarks drive it alike.

import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from './presets.js';
import type { Discriminator, Generator } from './network.js';
import { buildDiscriminator, buildGenerator } from './registry.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from './losses.js';
import { deriveSeed, mulberry32 } from '../data/prng.js';

/** A frozen feature network's loss between G's output and the target (models/perceptual.ts). */
export interface FeatureLoss {
  apply(y: tf.Tensor4D, label: tf.Tensor4D): { full: tf.Scalar; half: tf.Scalar };
  dispose(): void;
}

/** Exponential moving average of G's weights (models/ema.ts). */
export interface WeightAverage {
  update(): void;
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
  readonly #shift: () => number;
  #optG: tf.AdamOptimizer;
  #optD: tf.AdamOptimizer;

  constructor(config: RunConfig, options: GanOptions = {}) {
    this.config = config;
    this.G = buildGenerator(config.generator, config.scale, deriveSeed(config.seed, 1));
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
      this.D.commitStats(); // BatchNorm statistics move in the G step too (SEED_SPEC §6.1)
      this.#ema?.update();

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

  /** G's output for `lr`, clipped to [0, 1]; with the EMA weights when there is an EMA and `ema` is true. */
  generate(lr: tf.Tensor4D, opts: { ema?: boolean } = {}): tf.Tensor4D {
    const run = () => tf.tidy(() => tf.clipByValue(this.G.apply(lr), 0, 1) as tf.Tensor4D);
    return opts.ema !== false && this.#ema ? this.#ema.withAverage(run) : run();
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
