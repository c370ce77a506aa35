// The registry of training presets: pure data. `srgan start --preset NAME` picks one; a config file or
// flags override single fields (config/resolve.ts merges and validates). No tfjs import here: the CLI
// reads this module.

import type { DMode, Phase } from './schedule.js';
import type { BackendRequest } from './backend-names.js';
import type { LrBlurSetting, LrFilterSetting } from './lr-synthesis.js';

export const ESPCN_LAYOUTS = Object.freeze(['plain', 'x2x2', 'conv-after-upsample', 'dilated'] as const);
export type EspcnLayout = (typeof ESPCN_LAYOUTS)[number];

/** Which generator, and its size. */
export type GeneratorConfig =
  /**
   * docs/seed.md §3.1 and its variants. `skip`: add a bilinear enlargement of the input to the output, so
   * the network learns only the residual (not in the seed; it makes the fast preset useful in minutes).
   */
  | { kind: 'espcn'; channels: number; layout: EspcnLayout; skip: boolean; depth: number }
  /** docs/seed.md §3.3, the article's final network (×2 only). */
  | { kind: 'final'; channels: number; blocks: number; dilatedBlocks: boolean }
  /** ESRGAN's RRDBNet, docs/seed.md §10.1. */
  | { kind: 'rrdbnet'; channels: number; growth: number; blocks: number }
  /** Real-ESRGAN's SRVGGNetCompact (docs/export.md): `convs` conv+PReLU layers `channels` wide at LR. */
  | { kind: 'compact'; channels: number; convs: number };

/** Which discriminator, and its size. */
export type DiscriminatorConfig =
  /** docs/seed.md §5.1 baseline. */
  | { kind: 'patch'; mid: number }
  /** docs/seed.md §5.2, the final run's dilated D. */
  | { kind: 'dilated'; mid: number }
  /** Real-ESRGAN's U-Net D with spectral norm, docs/seed.md §10.2. */
  | { kind: 'unet'; channels: number };

/** Perceptual feature loss (docs/seed.md §4.2): off, the bundled offline network, or a VGG16 file. */
export interface PerceptualConfig {
  kind: 'off' | 'bundled' | 'vgg16';
  /** A tfjs LayersModel (model.json) of VGG16, for kind 'vgg16'. */
  path: string | null;
  /** Weight of the full-resolution term. */
  weight: number;
  /** Weight of the half-resolution (gamma-2.2 downsampled) term; 0 = off. */
  halfWeight: number;
  /** Input normalisation of a VGG16 file: torchvision's ('torch') or Keras' ('caffe', BGR 0–255). */
  preprocess: 'torch' | 'caffe';
}

export interface RunConfig {
  preset: string;
  /** Upscale factor. */
  scale: 2 | 4;
  /** HR patch side in pixels (the LR input is patchSize / scale). */
  patchSize: number;
  batchSize: number;
  generator: GeneratorConfig;
  discriminator: DiscriminatorConfig;
  /** How LR inputs are made from HR patches: one filter, or a mix drawn per patch (docs/degradations.md). */
  lrFilter: LrFilterSetting;
  /** A Gaussian blur before the downscale, with a probability per patch (probability 0 = never). */
  lrBlur: LrBlurSetting;
  /** JPEG-degrade each LR batch at a quality drawn per batch from {50, 70, 80, 90, 95, 99}. */
  jpeg: boolean;
  pixelLoss: 'mse' | 'l1';
  pixelWeight: number;
  perceptual: PerceptualConfig;
  /** Weight of the capped relativistic adversarial term (docs/seed.md §4.3); 0 = no GAN. */
  advWeight: number;
  /** D steps per G step (docs/seed.md §6.1: the G step's output is reused, detached). */
  dStepsPerG: number;
  /** fixed: always dStepsPerG; adaptive: skip D updates while the smoothed G adversarial loss rises. */
  dMode: DMode;
  phases: Phase[];
  /** The seed's rule: lr × batchSize / lrReferenceBatch (8 in the article); null = use lr as given. */
  lrReferenceBatch: number | null;
  /** Recreate both Adam optimizers at each phase change (the author's behaviour). */
  resetOptimizers: boolean;
  /**
   * Recompute the generator's blocks in the backward pass instead of keeping their activations
   * (gradient checkpointing, src/models/archs/recompute.ts): same numbers, ~1 more forward per G step, a
   * fraction of the memory. Used by the final generator and RRDBNet; ESPCN has no blocks to recompute.
   */
  recompute: boolean;
  /**
   * Micro-batches per step (gradient accumulation): the batch is split into this many equal parts, each
   * part's gradients are computed in turn and averaged, and the optimizers step once. The same step as the
   * whole batch at once (up to float rounding) for discriminators without BatchNorm; the peak memory is
   * that of one part (docs/config.md, "Memory").
   */
  accumulate: number;
  /** Decay of the EMA of G's weights used for previews and evaluation; null = no EMA. */
  emaDecay: number | null;
  /** Max random shift of the shift crop before D and the perceptual net (docs/seed.md §4.4). */
  maxShift: number;
  logEvery: number;
  previewEvery: number;
  maxSteps: number | null;
  seed: number;
  /** Directory of training images; null = the built-in demo set. */
  dataDir: string | null;
  /**
   * Start G from these weights (a .safetensors state dict: ESRGAN's or Real-ESRGAN Compact's names, or an
   * srgan export; docs/export.md) instead of a random init: fine-tuning. The generator and scale are
   * those the file describes. Null = a fresh network.
   */
  init: string | null;
  loaderWorkers: number;
  /** Patches cut from an image each time a loader visits it. */
  patchesPerImage: number;
  /** Ring buffer size in MiB. */
  ringMiB: number;
  /** Compute backend: 'auto' takes the best rung that loads (models/backend/ladder.ts). */
  backend: BackendRequest;
  /**
   * What convolutions compute in on the wasm-native rung: 'fp32', or 'bf16' (inputs rounded to bfloat16,
   * fp32 accumulation; convolutions with 16 channels or fewer on a side, and the weights, optimiser
   * state, losses and checkpoints stay fp32; docs/native.md, "bf16").
   * bf16 needs a CPU with bf16 units (AVX512-BF16 or AMX) and the wasm-native rung, and is refused otherwise.
   */
  precision: 'fp32' | 'bf16';
  port: number;
  /** Write a checkpoint every N generator steps (0 = not by steps). */
  checkpointEvery: number;
  /** ...and at least every N minutes of training (0 = not by time). */
  checkpointMinutes: number;
  /** Checkpoints kept: the last N, plus the best by validation gain over bicubic (PSNR for checkpoints without gains). */
  checkpointKeep: number;
  /**
   * Where the run's checkpoint folders go: `<checkpointRoot>/<run id>/`. Null = `$SRGAN_HOME/checkpoints`.
   * Workers of the run queue that share one (a network file system, a mounted bucket) continue each
   * other's runs (docs/scale.md).
   */
  checkpointRoot: string | null;
  /**
   * Non-finite steps (docs/reliability.md, "NaN and Inf"): a step whose losses or gradients are not
   * finite is never applied; after `maxBadSteps` of them in a row the run goes back to its newest
   * checkpoint with every learning rate × `lrFactor`; after `maxRollbacks` such rollbacks it fails.
   */
  nonFinite: { maxBadSteps: number; lrFactor: number; maxRollbacks: number };
  /**
   * Pause training while less than this many MiB are free on the file system of $SRGAN_HOME, and go on
   * once there is again (0 = no threshold; a full disk still pauses). docs/reliability.md.
   */
  minFreeMiB: number;
  /**
   * How runs.db keeps old data (docs/reliability.md, "Bounded growth"): metric points of the last
   * `metricsFullMinutes` and previews of the last `previewsFullMinutes` all kept; older, the first point of
   * each key per `metricsEvery` steps and `previewsPerHour` previews an hour, plus validation points and
   * whatever sits at a checkpoint still on disk or pinned. Applies to every run in the database.
   */
  retention: { metricsFullMinutes: number; metricsEvery: number; previewsFullMinutes: number; previewsPerHour: number };
  /** Evaluate the held-out images every N generator steps (0 = never): val_psnr, val_bicubic, val_gain (= their difference), val_psnr_mix, val_gain_mix. */
  valEvery: number;
  /** Images held out of training for validation (taken from the data by the seed; 0 = none). */
  valImages: number;
}

/** Defaults of each generator kind, used when an override switches kind. */
export const GENERATOR_DEFAULTS: Readonly<Record<GeneratorConfig['kind'], GeneratorConfig>> = Object.freeze({
  espcn: { kind: 'espcn', channels: 64, layout: 'plain', skip: false, depth: 0 },
  final: { kind: 'final', channels: 64, blocks: 16, dilatedBlocks: true },
  rrdbnet: { kind: 'rrdbnet', channels: 64, growth: 32, blocks: 23 },
  compact: { kind: 'compact', channels: 64, convs: 16 },
});

/** Defaults of each discriminator kind, used when an override switches kind. */
export const DISCRIMINATOR_DEFAULTS: Readonly<Record<DiscriminatorConfig['kind'], DiscriminatorConfig>> = Object.freeze({
  patch: { kind: 'patch', mid: 32 },
  dilated: { kind: 'dilated', mid: 32 },
  unet: { kind: 'unet', channels: 64 },
});

const COMMON = {
  lrFilter: 'bilinear-aa',
  lrBlur: { probability: 0, sigmaMin: 0.2, sigmaMax: 1.2 },
  jpeg: false,
  pixelLoss: 'mse',
  pixelWeight: 1,
  perceptual: { kind: 'off', path: null, weight: 0, halfWeight: 0, preprocess: 'torch' },
  dMode: 'fixed',
  lrReferenceBatch: null,
  resetOptimizers: false,
  recompute: false,
  accumulate: 1,
  emaDecay: 0.999,
  logEvery: 1,
  maxSteps: null,
  seed: 1,
  dataDir: null,
  init: null,
  checkpointRoot: null,
  loaderWorkers: 1,
  ringMiB: 8,
  backend: 'auto',
  precision: 'fp32',
  port: 0,
  checkpointEvery: 1000,
  checkpointMinutes: 15,
  checkpointKeep: 3,
  valEvery: 500,
  valImages: 4,
  nonFinite: { maxBadSteps: 3, lrFactor: 0.5, maxRollbacks: 3 },
  minFreeMiB: 256,
  retention: { metricsFullMinutes: 120, metricsEvery: 100, previewsFullMinutes: 60, previewsPerHour: 4 },
} as const satisfies Partial<RunConfig>;

/**
 * The LR mix every preset trains on (docs/degradations.md): the four common downscalers, the soft
 * antialiased bilinear at half weight, and a sixth of patches blurred first. A network trained on one
 * kernel over-sharpens every other: the old bilinear-only espcn-x2-fast lost 1.9 dB to bicubic on photos
 * under the standard protocol. With bilinear at full weight and a third blurred, the soft LR inputs
 * dominated and the gains on the sharp ones (area, lanczos3, bicubic) fell as training went on
 * (docs/config.md).
 */
const LR_MIX = {
  lrFilter: { 'bicubic-aa': 1, 'bilinear-aa': 0.5, area: 1, lanczos3: 1 },
  lrBlur: { probability: 0.15, sigmaMin: 0.2, sigmaMax: 1.0 },
} as const satisfies Partial<RunConfig>;

/**
 * `espcn-x2-fast`: the quick preset, chosen by the quality bench on real held-out photos (numbers in
 * docs/config.md): an ESPCN body 64 wide and 6 convs deep over a bilinear skip, trained for PSNR (no
 * adversarial term: in minutes it cost 3/4 of each step's time and 0.3 dB), on the LR mix.
 */
const ESPCN_X2_FAST: RunConfig = {
  ...COMMON,
  preset: 'espcn-x2-fast',
  scale: 2,
  patchSize: 64,
  batchSize: 8,
  ...LR_MIX,
  generator: { kind: 'espcn', channels: 64, layout: 'plain', skip: true, depth: 4 },
  discriminator: { kind: 'patch', mid: 16 },
  dStepsPerG: 1,
  // Constant: dropping to 2.5e-4 at step 4000 made the held-out gain fall faster, not slower; the
  // weight average (emaDecay) is what smooths the end of the run (docs/config.md).
  phases: [{ steps: null, lrG: 1e-3, lrD: 1e-4 }],
  // PSNR first: with the seed's first ESPCN GAN weight (1e-4) the held-out gain peaked at step 1000 and
  // fell after, and the D step took 3/4 of the time. Set advWeight (e.g. 1e-4) for a GAN run.
  advWeight: 0,
  // A ~1000-step average of a constant-rate run: +0.2 dB on area LR over 0.99 at 8000 steps; the
  // EMA's warm-up by step (ema.ts) keeps early previews and checkpoints from carrying the init.
  emaDecay: 0.999,
  // Patches of one held-out photo (a prepared set of 8 photos gives ~9 per photo).
  valImages: 8,
  maxShift: 4,
  previewEvery: 25,
  patchesPerImage: 8,
  perceptual: { kind: 'off', path: null, weight: 0, halfWeight: 0, preprocess: 'torch' },
};

/**
 * `seed-final-x2`: the article's final run (docs/seed.md §6.2): §3.3 generator, §5.2 dilated D, batch 1 of
 * 256² patches, lr × batch/8, 10 D steps per G step, adversarial weight 3e-4, perceptual terms at full
 * and half resolution, JPEG-degraded LR inputs, optimizers recreated at every phase, 360 100 G steps.
 */
const SEED_FINAL_X2: RunConfig = {
  ...COMMON,
  preset: 'seed-final-x2',
  ...LR_MIX,
  scale: 2,
  patchSize: 256,
  batchSize: 1,
  generator: { kind: 'final', channels: 64, blocks: 16, dilatedBlocks: true },
  discriminator: { kind: 'dilated', mid: 32 },
  jpeg: true,
  perceptual: { kind: 'bundled', path: null, weight: 1e-4, halfWeight: 1e-4, preprocess: 'torch' },
  advWeight: 3e-4,
  dStepsPerG: 10,
  phases: [
    { steps: 100, lrG: 1e-4, lrD: 1e-4 },
    { steps: 10_000, lrG: 1e-4, lrD: 1e-4 },
    { steps: 10_000, lrG: 3e-5, lrD: 1e-4 },
    { steps: 20_000, lrG: 1e-5, lrD: 1e-4 },
    { steps: 40_000, lrG: 3e-5, lrD: 3e-5 },
    { steps: 40_000, lrG: 1e-5, lrD: 1e-5 },
    { steps: 80_000, lrG: 3e-6, lrD: 3e-6 },
    { steps: 80_000, lrG: 1e-6, lrD: 1e-6 },
    { steps: 80_000, lrG: 3e-7, lrD: 3e-7 },
  ],
  lrReferenceBatch: 8,
  resetOptimizers: true,
  recompute: true,
  maxShift: 8,
  maxSteps: 360_100,
  previewEvery: 100,
  patchesPerImage: 16,
  ringMiB: 32,
};

/**
 * `esrgan-x4`: RRDBNet (23 blocks, ×4) with ESRGAN's recipe as far as our losses go: batch 16 of 128²
 * HR patches, L1 pixel loss ×1e-2, perceptual loss, relativistic adversarial term ×5e-3, lr 1e-4 halved
 * at 50k, 100k, 200k and 300k steps. Differences: our capped relativistic loss instead of RaGAN's, the
 * U-Net discriminator of Real-ESRGAN instead of ESRGAN's VGG-style one, and no PSNR-only pre-training.
 */
const ESRGAN_X4: RunConfig = {
  ...COMMON,
  preset: 'esrgan-x4',
  ...LR_MIX,
  scale: 4,
  patchSize: 128,
  batchSize: 16,
  generator: { kind: 'rrdbnet', channels: 64, growth: 32, blocks: 23 },
  discriminator: { kind: 'unet', channels: 64 },
  pixelLoss: 'l1',
  pixelWeight: 1e-2,
  perceptual: { kind: 'bundled', path: null, weight: 1e-4, halfWeight: 0, preprocess: 'torch' },
  advWeight: 5e-3,
  dStepsPerG: 1,
  recompute: true,
  // 4 parts of 4: a part needs ~3 GiB, so the step fits the 4 GiB wasm heap; on a big GPU set 1 for speed.
  accumulate: 4,
  phases: [
    { steps: 50_000, lrG: 1e-4, lrD: 1e-4 },
    { steps: 50_000, lrG: 5e-5, lrD: 5e-5 },
    { steps: 100_000, lrG: 2.5e-5, lrD: 2.5e-5 },
    { steps: 100_000, lrG: 1.25e-5, lrD: 1.25e-5 },
    { steps: 100_000, lrG: 6.25e-6, lrD: 6.25e-6 },
  ],
  maxShift: 8,
  maxSteps: 400_000,
  previewEvery: 100,
  patchesPerImage: 8,
  ringMiB: 64,
};

/**
 * `compact-x2`, `compact-x4`: Real-ESRGAN's SRVGGNetCompact (64 wide, 16 convs), the small network many
 * published upscalers use, trained with the seed's losses and schedule (as seed-final-x2: perceptual
 * terms, capped relativistic adversarial term, dilated D, 10 D steps per G step, its phases). No
 * gradient checkpointing: the network keeps few activations.
 */
const compact = (scale: 2 | 4): RunConfig => ({
  ...SEED_FINAL_X2,
  preset: `compact-x${scale}`,
  scale,
  generator: { kind: 'compact', channels: 64, convs: 16 },
  recompute: false,
});

export const PRESETS: Readonly<Record<string, Readonly<RunConfig>>> = Object.freeze({
  'espcn-x2-fast': Object.freeze(ESPCN_X2_FAST),
  'seed-final-x2': Object.freeze(SEED_FINAL_X2),
  'esrgan-x4': Object.freeze(ESRGAN_X4),
  'compact-x2': Object.freeze(compact(2)),
  'compact-x4': Object.freeze(compact(4)),
});
