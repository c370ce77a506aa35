// The perceptual (feature) loss of docs/seed.md §4.2, at full and at half resolution, over a pluggable
// frozen feature network (docs/perceptual.md):
//  - 'vgg16': a VGG16 tfjs LayersModel the user points to; the first 7 Conv2D layers (block1_conv1 …
//    block3_conv3), torchvision's ImageNet normalisation, the seed's weight 1e-4 per term;
//  - 'bundled': the Keras MobileNetV2 shipped (base64) inside the `nsfwjs` npm package, so it works
//    with no download; 7 early/mid layers spanning the same receptive fields as VGG's conv1_1 … conv3_3,
//    scaled by a measured calibration factor into the seed's VGG units;
//  - 'off'.
//
//   L_full = w · c_full · Σ_l MSE(φ_l(norm(y′)), φ_l(norm(label′)))        (y′, label′ = shiftCrop8(y, label))
//   L_half = w_half · c_half · Σ_l MSE(φ_l(norm(g(y″))), φ_l(norm(g(label″))))  (g = gammaDownsample2, fresh crop)
//
// c is 1 for VGG16, BUNDLED_CALIBRATION for the bundled net. Each term draws its own shift (§4.4).
// Fidelity choice for VGG16 (§4.2 note): conv1_1 … conv3_2 are read after their ReLU and conv3_3
// before it, which is what the author's PyTorch code computed (in-place ReLUs) and what the logged
// loss values and the 1e-4 weight belong to.

import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';

import { SrganError } from '../../util/errors.js';
import { type FeatureTap, type FrozenFeatureNet, freezeFeatureNet } from './feature-graph.js';
import { fileModelIO } from '../io/layers-io.js';
import { shiftCrop } from './pixel-adversarial.js';

export type PerceptualKind = 'vgg16' | 'bundled' | 'off';

export interface PerceptualOptions {
  kind: PerceptualKind;
  /** The VGG16 model.json (or its directory), for kind 'vgg16'. */
  path?: string | null;
  /** Weight of the full-resolution term, in the seed's VGG units. Default 1e-4 (docs/seed.md §4.2). */
  weight?: number;
  /** Weight of the half-resolution term; 0 skips it. Default 1e-4. */
  halfWeight?: number;
  /** Max shift of the random crop before each term (docs/seed.md §4.4). Default 8; 0 = no crop. */
  maxShift?: number;
  /**
   * Input normalisation of a VGG16 file: 'torch' (default: RGB [0, 1], ImageNet mean/std, for
   * torchvision's weights, e.g. from scripts/export-vgg16.py) or 'caffe' (BGR 0–255 minus the mean,
   * for Keras' own VGG16 weights, whose features differ, so re-tune the weight).
   */
  preprocess?: 'torch' | 'caffe';
}

export interface PerceptualLoss {
  readonly kind: PerceptualKind;
  /** One line for logs: network, layers, normalisation, weights, shift. */
  readonly describe: string;
  /** The features used, in order (empty when off). */
  readonly layers: readonly string[];
  readonly weight: number;
  readonly halfWeight: number;
  /** Factors from this network's raw feature distance to the seed's VGG units (1 and 1 for VGG16). */
  readonly calibration: Readonly<Calibration>;
  /**
   * The weighted terms for G's output `y` and the target `label` (NHWC, 3 channels, same shape, [0, 1]
   * scale; y is not clipped for the full term). Differentiable w.r.t. y; frozen features; draws an
   * independent shift per term (full first). Returns scalars owned by the caller (0 for a term that is off).
   */
  apply(y: tf.Tensor4D, label: tf.Tensor4D): { full: tf.Scalar; half: tf.Scalar };
  /** Raw Σ_l MSE(φ_l(norm(a)), φ_l(norm(b))): no crop, no weight, no calibration (0 when off). */
  distance(a: tf.Tensor4D, b: tf.Tensor4D): tf.Scalar;
  dispose(): void;
}

/** torchvision's ImageNet statistics (RGB, inputs in [0, 1]). */
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
/** Keras' VGG16 'caffe' preprocessing: BGR means, inputs in [0, 255]. */
const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68];

/** How many Conv2D layers the seed reads: conv1_1 … conv3_3 (features[0..14]). */
const VGG_CONVS = 7;

/**
 * The bundled net's features: MobileNetV2 BatchNorm outputs, i.e. conv features before their ReLU6
 * (the author's stated intent for VGG, and ReLU6 would cut gradients at 0 and 6). Strides 2/2/4/4/4/8/8,
 * receptive fields 3/7/11/11/19/27/43 px, against VGG's conv1_1 … conv3_3 at 1/1/2/2/4/4/4 and 3 … 40 px.
 * High-variance outputs (block_1_expand_BN, the linear bottlenecks) are left out: they would dominate the sum.
 */
export const BUNDLED_LAYERS: readonly string[] = Object.freeze([
  'bn_Conv1',
  'expanded_conv_depthwise_BN',
  'block_1_depthwise_BN',
  'block_2_expand_BN',
  'block_2_depthwise_BN',
  'block_3_depthwise_BN',
  'block_4_depthwise_BN',
]);

export interface Calibration {
  full: number;
  half: number;
}

const UNCALIBRATED: Readonly<Calibration> = Object.freeze({ full: 1, half: 1 });

/**
 * Multiplies the bundled net's raw distances into the seed's VGG units, so that weight 1e-4 means what
 * it means for VGG16. From `npm run bench -- perceptual-calibration`: the seed's logged VGG terms are
 * ≈ 2.9× (full) and ≈ 1.33× (half) the pixel MSE (docs/seed.md §7, final run: 0.0035 and 0.0016 vs
 * 0.0012); these factors give the bundled terms the same ratios on demo images with G-like (blur) errors.
 * See docs/perceptual.md, "Calibration".
 */
export const BUNDLED_CALIBRATION: Readonly<Calibration> = Object.freeze({ full: 20, half: 33 });

const KNOWN_OPTIONS = new Set(['kind', 'path', 'weight', 'halfWeight', 'maxShift', 'preprocess']);

/**
 * Builds the perceptual loss `opts` asks for. Defaults: weight 1e-4, halfWeight 1e-4, maxShift 8,
 * preprocess 'torch'. `rand` returns floats in [0, 1) (a seeded PRNG) and drives the shift crops.
 * A missing or unusable model is SrganError SRGAN_ERR_CONFIG naming the file and what is wrong.
 */
export async function createPerceptualLoss(opts: PerceptualOptions, rand: () => number): Promise<PerceptualLoss> {
  const o = validate(opts, rand);
  if (o.kind === 'off') return offLoss();
  if (o.kind === 'vgg16') {
    const file = o.path!;
    const net = await loadVgg16(file);
    const norm = o.preprocess === 'caffe' ? caffeNormalise() : torchNormalise();
    const layers = net.tapNames;
    const normText =
      o.preprocess === 'caffe' ? "Keras 'caffe' normalisation (BGR, 0–255, mean subtracted)" : 'torchvision ImageNet normalisation';
    return featureLoss(
      'vgg16',
      net,
      norm,
      UNCALIBRATED,
      o,
      rand,
      `vgg16 ${file}: ${layers.length} features (${layers[0]} … ${layers[layers.length - 1]}), ${normText}`,
    );
  }
  const net = await loadBundled();
  const identity: Normaliser = { apply: (x) => x, dispose: () => undefined };
  return featureLoss(
    'bundled',
    net,
    identity,
    BUNDLED_CALIBRATION,
    o,
    rand,
    `bundled MobileNetV2 (nsfwjs): ${BUNDLED_LAYERS.length} pre-activation features (${BUNDLED_LAYERS[0]} … ${BUNDLED_LAYERS[BUNDLED_LAYERS.length - 1]}), input [0, 1], calibrated ×${BUNDLED_CALIBRATION.full} full / ×${BUNDLED_CALIBRATION.half} half to VGG units`,
  );
}

/**
 * The half-resolution view of docs/seed.md §4.2: clip to [1e-6, 1] (x^2.2 of a negative value is NaN),
 * then (avgPool2(x^2.2))^(1/2.2). NHWC; odd sizes drop the last row/column.
 */
export function gammaDownsample2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const linear = tf.pow(tf.clipByValue(x, 1e-6, 1), 2.2) as tf.Tensor4D;
    return tf.pow(tf.avgPool(linear, 2, 2, 'valid'), 1 / 2.2) as tf.Tensor4D;
  });
}

interface Resolved {
  kind: PerceptualKind;
  path: string | null;
  weight: number;
  halfWeight: number;
  maxShift: number;
  preprocess: 'torch' | 'caffe';
}

function validate(opts: PerceptualOptions, rand: () => number): Resolved {
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`opts: expected an object, got ${String(opts)}`);
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`perceptual.${key}: unknown option (expected ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  if (opts.kind !== 'vgg16' && opts.kind !== 'bundled' && opts.kind !== 'off') {
    throw new TypeError(`perceptual.kind: expected "vgg16", "bundled" or "off", got ${JSON.stringify(opts.kind)}`);
  }
  if (typeof rand !== 'function') throw new TypeError(`rand: expected a function, got ${typeof rand}`);
  const weightOf = (field: 'weight' | 'halfWeight'): number => {
    const v = opts[field] ?? 1e-4;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new RangeError(`perceptual.${field}: expected a number ≥ 0, got ${String(v)}`);
    return v;
  };
  const maxShift = opts.maxShift ?? 8;
  if (!Number.isInteger(maxShift) || maxShift < 0)
    throw new RangeError(`perceptual.maxShift: expected an integer ≥ 0, got ${String(maxShift)}`);
  const preprocess = opts.preprocess ?? 'torch';
  if (preprocess !== 'torch' && preprocess !== 'caffe') {
    throw new TypeError(`perceptual.preprocess: expected "torch" or "caffe", got ${JSON.stringify(preprocess)}`);
  }
  const path = opts.path ?? null;
  if (opts.kind === 'vgg16' && (typeof path !== 'string' || path.length === 0)) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `perceptual.path: the VGG16 model.json is required when perceptual.kind is "vgg16", got ${JSON.stringify(path)}`,
    );
  }
  return { kind: opts.kind, path, weight: weightOf('weight'), halfWeight: weightOf('halfWeight'), maxShift, preprocess };
}

function offLoss(): PerceptualLoss {
  return {
    kind: 'off',
    describe: 'off',
    layers: [],
    weight: 0,
    halfWeight: 0,
    calibration: Object.freeze({ full: 0, half: 0 }),
    apply: () => ({ full: tf.scalar(0), half: tf.scalar(0) }),
    distance: () => tf.scalar(0),
    dispose: () => undefined,
  };
}

interface Normaliser {
  apply(x: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

function torchNormalise(): Normaliser {
  const mean = tf.tensor1d(IMAGENET_MEAN);
  const invStd = tf.tensor1d(IMAGENET_STD.map((s) => 1 / s));
  return {
    apply: (x) => tf.mul(tf.sub(x, mean), invStd),
    dispose: () => tf.dispose([mean, invStd]),
  };
}

function caffeNormalise(): Normaliser {
  const mean = tf.tensor1d(CAFFE_MEAN_BGR);
  return {
    apply: (x) => tf.sub(tf.mul(tf.reverse(x, 3), 255), mean),
    dispose: () => mean.dispose(),
  };
}

function featureLoss(
  kind: PerceptualKind,
  net: FrozenFeatureNet,
  norm: Normaliser,
  calibration: Readonly<Calibration>,
  o: Resolved,
  rand: () => number,
  what: string,
): PerceptualLoss {
  const distance = (a: tf.Tensor4D, b: tf.Tensor4D): tf.Scalar =>
    tf.tidy(() => {
      const fa = net.forward(norm.apply(a));
      const fb = net.forward(norm.apply(b));
      return tf.addN(fa.map((f, i) => tf.mean(tf.squaredDifference(f, fb[i])))) as tf.Scalar;
    });
  const term = (y: tf.Tensor4D, label: tf.Tensor4D, half: boolean): tf.Scalar => {
    let [a, b] = shiftCrop([y, label], o.maxShift, rand) as [tf.Tensor4D, tf.Tensor4D];
    if (half) {
      a = gammaDownsample2(a);
      b = gammaDownsample2(b);
    }
    return tf.mul(distance(a, b), half ? o.halfWeight * calibration.half : o.weight * calibration.full);
  };
  let disposed = false;
  return {
    kind,
    describe: `${what}; full ×${o.weight}, half ×${o.halfWeight}, shift ${o.maxShift}`,
    layers: net.tapNames,
    weight: o.weight,
    halfWeight: o.halfWeight,
    calibration,
    apply(y, label) {
      checkPair(y, label);
      return tf.tidy(() => ({
        full: o.weight > 0 ? term(y, label, false) : tf.scalar(0),
        half: o.halfWeight > 0 ? term(y, label, true) : tf.scalar(0),
      }));
    },
    distance(a, b) {
      checkPair(a, b);
      return distance(a, b);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      net.dispose();
      norm.dispose();
    },
  };
}

function checkPair(y: tf.Tensor, label: tf.Tensor): void {
  if (y.rank !== 4 || y.shape[3] !== 3 || !tf.util.arraysEqual(y.shape, label.shape)) {
    throw new RangeError(
      `perceptual: expected two [n, h, w, 3] tensors of the same shape, got [${y.shape.join(', ')}] and [${label.shape.join(', ')}]`,
    );
  }
}

/** Loads the LayersModel at `file` (model.json or its directory), refusing graph models clearly. */
async function loadLayersFile(file: string): Promise<LayersModel> {
  const artifacts = await fileModelIO(file).load!();
  const topo = artifacts.modelTopology as Record<string, unknown> | undefined;
  const cfg = (topo?.model_config ?? topo) as Record<string, unknown> | undefined;
  if (artifacts.format === 'graph-model' || Array.isArray(topo?.node)) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `${file}: is a tfjs graph model, not a LayersModel (see docs/perceptual.md for producing one)`,
    );
  }
  if (typeof cfg?.class_name !== 'string' || typeof cfg.config !== 'object') {
    throw new SrganError('SRGAN_ERR_CONFIG', `${file}: is not a tfjs LayersModel (its modelTopology has no Keras class_name/config)`);
  }
  try {
    return await loadLayersModel({ load: async () => artifacts });
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_CONFIG', `${file}: tfjs cannot build this LayersModel: ${(cause as Error).message}`, { cause });
  }
}

/** The VGG16 file's first 7 Conv2D layers: 1–6 after ReLU, the 7th before it (see the header). */
async function loadVgg16(file: string): Promise<FrozenFeatureNet> {
  const model = await loadLayersFile(file);
  try {
    const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D');
    if (convs.length < VGG_CONVS) {
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `${file}: has ${convs.length} Conv2D layers; the VGG16 features need ${VGG_CONVS} (block1_conv1 … block3_conv3)`,
      );
    }
    const inShape = model.inputs[0]?.shape ?? [];
    const inChannels = inShape[inShape.length - 1];
    const kernel = convs[0].getWeights()[0];
    if (inChannels !== 3 || kernel?.shape[2] !== 3) {
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `${file}: takes ${String(inChannels ?? kernel?.shape[2])} input channels; an RGB VGG16 takes 3 (input shape [${inShape.join(', ')}])`,
      );
    }
    const taps: FeatureTap[] = convs.slice(0, VGG_CONVS).map((l, i) => ({ layer: l.name, at: i < VGG_CONVS - 1 ? 'relu' : 'linear' }));
    return freezeFeatureNet(model, taps, file);
  } finally {
    model.dispose();
  }
}

interface BundledDefinition {
  modelJson: () => Promise<{ default: unknown }>;
  weightBundles: Array<() => Promise<{ default: unknown }>>;
}

/**
 * nsfwjs's MobileNetV2 (a Keras LayersModel, uint8-quantised weights, base64 in browserify bundles
 * under dist/models/), read through the package's public `nsfwjs/models/mobilenet_v2` export.
 */
async function loadBundled(): Promise<FrozenFeatureNet> {
  const source = 'nsfwjs MobileNetV2';
  const fail = (what: string, cause?: unknown): SrganError =>
    new SrganError('SRGAN_ERR_CONFIG', `perceptual.kind "bundled": ${what}`, cause === undefined ? undefined : { cause });
  let def: BundledDefinition;
  let json: { modelTopology?: unknown; weightsManifest?: unknown };
  let shards: unknown[];
  try {
    const mod = (await import('nsfwjs/models/mobilenet_v2')) as unknown as { MobileNetV2Model: BundledDefinition };
    def = mod.MobileNetV2Model;
    json = (await def.modelJson()).default as typeof json;
    shards = await Promise.all(def.weightBundles.map(async (load) => (await load()).default));
  } catch (cause) {
    throw fail('cannot load the MobileNetV2 bundled in the nsfwjs package (is it installed? `npm install`)', cause);
  }
  const manifest = json?.weightsManifest as tf.io.WeightsManifestConfig | undefined;
  if (typeof json?.modelTopology !== 'object' || !Array.isArray(manifest) || !shards.every((s) => typeof s === 'string')) {
    throw fail('the nsfwjs package does not hold the expected model.json and base64 weight shards');
  }
  // nsfwjs names its bundles group1-shard{i}of{n}, the manifest's paths, in order.
  const byPath = new Map(shards.map((s, i) => [`group1-shard${i + 1}of${shards.length}`, s]));
  const buffers = manifest
    .flatMap((g) => g.paths)
    .map((p) => {
      const b64 = byPath.get(p);
      if (b64 === undefined) throw fail(`the nsfwjs package lacks weight shard ${p}`);
      return Buffer.from(b64, 'base64');
    });
  const data = Buffer.concat(buffers);
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology as object,
    weightSpecs: manifest.flatMap((g) => g.weights),
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
  };
  let model: LayersModel;
  try {
    model = await loadLayersModel({ load: async () => artifacts });
  } catch (cause) {
    throw fail(`tfjs cannot build the nsfwjs MobileNetV2: ${(cause as Error).message}`, cause);
  }
  try {
    return freezeFeatureNet(
      model,
      BUNDLED_LAYERS.map((layer) => ({ layer })),
      source,
    );
  } finally {
    model.dispose();
  }
}
