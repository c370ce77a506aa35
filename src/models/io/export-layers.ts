// Exports a generator as a plain tfjs LayersModel (model.json + 4 MiB weight shards) that a browser
// loads with `tf.loadLayersModel(url)` and no custom layers, and reads such a folder back into our own
// Generator. docs/checkpoints.md describes the format.
//
// Our generators are hand-written graphs over tf.Variables. Their Keras topology is not written here:
// it is read from the same description the generator is built from (archs/graph.ts), by running that
// description on Keras layers instead of tensors. test/unit/export-layers.test.ts checks each kind and
// layout against gen.apply. Only layer classes tfjs-layers 4.22 registers by default are used.
// Ops without a layer of their own:
//
//  pixel shuffle r   Conv2DTranspose r×r, strides r, no bias, fixed 0/1 kernel
//                    K[i, j, c, (i·r + j)·C + c] = 1: out[r·h+i, r·w+j, c] = in[h, w, (i·r+j)·C + c],
//                    tf.depthToSpace's order. Exact (one 1·x term plus 0·x terms per output).
//  residual ×s       Rescaling(s) then Add (default): the same float ops as ours, and the shards hold
//                    our weights unchanged, so loading them back is bit-exact. `residualScale: 'fold'`
//                    folds s into the kernel and bias of the conv whose output is scaled, where there
//                    is one (one op fewer; loading back divides by s, exact to ~1 ulp). A block-level
//                    ×0.2 (MyRRDB, RRDB) scales a sum, not a conv output, so it is always a Rescaling.
//                    Folding assumes that conv's output feeds only the residual, true of every
//                    generator here (the round-trip tests would see otherwise).
//  bilinear skip     tf.image.resizeBilinear(x, [r·h, r·w], false, true) clamps its source coordinate
//                    to the image, which equals the interior formula applied to x edge-replicated by
//                    one pixel. Replication from standard layers: Z = ZeroPadding2D(1)(x); a ones map
//                    (Conv2D 1×1, zero kernel, bias 1); border masks from it (Conv2D 3×1 / 1×3 with a
//                    −1 tap and bias 1: 1 − ones[i∓1] is 1 on the first/last row or column only); then
//                    P = Z + top·shiftUp(Z) + bottom·shiftDown(Z), and the same on columns of P (shift =
//                    Cropping2D + ZeroPadding2D; masks multiply exactly by 0 or 1). The interpolation
//                    is a fixed Conv2DTranspose (kernel 2r, strides r, valid, per-channel separable
//                    w[t] = 1 − |(t + ½)/r − 1|) followed by Cropping2D(3r/2) on every side. Exact up
//                    to float rounding order (tfjs computes a + (b − a)·f, we sum w·a + w·b).
//  nearest ×2        UpSampling2D(2, 'nearest'): resizeNearestNeighbor without half-pixel centres,
//                    out[i] = in[⌊i/2⌋], our upsampleNearest2x exactly.
//  block             nothing: recomputing is a training matter.

import * as tf from '@tensorflow/tfjs-core';

import { SrganError } from '../../util/errors.js';
import { fileModelIO } from './layers-io.js';
import type { Generator } from '../archs/network.js';
import type { GraphOps } from '../archs/graph.js';
import { generatorGraph } from '../archs/build.js';
import type { GeneratorConfig } from '../../config/presets.js';

/** Where the value of one exported weight comes from. */
export type WeightSource =
  /** Our variable `variable`, multiplied by `factor` (1, or 0.2 where a residual scale is folded). */
  | {
      kind: 'variable';
      variable: string;
      factor: number;
      /** The variable holds the weight's values in another shape of the same size (PReLU: [C] for Keras' [1, 1, C]). */
      reshaped?: true;
    }
  /** A constant of the formulation (pixel shuffle, bilinear skip); not trainable. */
  | { kind: 'fixed'; values: Float32Array };

/** One weight of the exported model, in manifest order. */
export interface ExportedWeight {
  /** Keras weight name, `layer/kernel` or `layer/bias`; a conv keeps our layer name (`rrdb1.dil1.conv1`). */
  name: string;
  shape: number[];
  source: WeightSource;
}

export interface GeneratorTopology {
  /** Keras functional-model JSON (`class_name: 'Model'`), input [null, null, null, 3]. */
  modelTopology: KerasModelJson;
  /** Every weight of the model, variables and constants, in manifest order. */
  weights: ExportedWeight[];
}

export interface ExportOptions {
  /** How a residual ×0.2 after a conv is written: a Rescaling layer (default, exact round trip) or folded into the conv. */
  residualScale?: 'rescaling' | 'fold';
  /** Largest weight shard in bytes. Default 4 MiB, tfjs' own. */
  shardBytes?: number;
}

/** What saveGeneratorLayersModel stores in model.json's userDefinedMetadata, under `srganGenerator`. */
export interface ExportMetadata {
  version: 1;
  config: GeneratorConfig;
  scale: 2 | 4;
  residualScale: 'rescaling' | 'fold';
}

interface KerasLayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: Array<Array<[string, number, number, Record<string, never>]>>;
}

export interface KerasModelJson {
  class_name: 'Model';
  config: { name: string; layers: KerasLayerJson[]; input_layers: [string, number, number][]; output_layers: [string, number, number][] };
  keras_version: string;
  backend: string;
}

const ZEROS = { class_name: 'Zeros', config: {} };
/** The Keras conv fields our exports never use (initializers only matter before weights are loaded). */
const CONV_FIXED_FIELDS = {
  kernel_initializer: ZEROS,
  bias_initializer: ZEROS,
  kernel_regularizer: null,
  bias_regularizer: null,
  activity_regularizer: null,
  kernel_constraint: null,
  bias_constraint: null,
} as const;

/** A symbolic tensor: the layer producing it and its channel count; `conv` when that layer is our conv. */
interface Sym {
  name: string;
  ch: number;
  conv?: true;
}

type Pads = [[number, number], [number, number]];

/** Accumulates Keras layer JSON and the weights they need, in order. */
class Graph {
  readonly layers: KerasLayerJson[] = [];
  readonly weights: ExportedWeight[] = [];
  readonly #counters = new Map<string, number>();
  readonly #names = new Set<string>();

  constructor(readonly residualScale: 'rescaling' | 'fold') {}

  /** A fresh helper-layer name `${prefix}_${n}` (no conv of ours is named like that; layer() checks). */
  auto(prefix: string): string {
    const n = (this.#counters.get(prefix) ?? 0) + 1;
    this.#counters.set(prefix, n);
    return `${prefix}_${n}`;
  }

  layer(className: string, name: string, config: Record<string, unknown>, inputs: Sym[], ch: number, trainable = true): Sym {
    if (this.#names.has(name)) throw new Error(`export-layers: duplicate layer name '${name}'`);
    this.#names.add(name);
    this.layers.push({
      name,
      class_name: className,
      config: { name, trainable, ...config },
      inbound_nodes: inputs.length === 0 ? [] : [inputs.map((s): [string, number, number, Record<string, never>] => [s.name, 0, 0, {}])],
    });
    return { name, ch };
  }

  input(name: string): Sym {
    return this.layer('InputLayer', name, { batch_input_shape: [null, null, null, 3], dtype: 'float32', sparse: false }, [], 3);
  }

  /** Conv2D 'same', stride 1; weights from `kernel` (and `bias`, when given). */
  conv(x: Sym, name: string, kh: number, kw: number, cout: number, dilation: number, kernel: WeightSource, bias: WeightSource | null): Sym {
    const out = this.layer(
      'Conv2D',
      name,
      {
        filters: cout,
        kernel_size: [kh, kw],
        strides: [1, 1],
        padding: 'same',
        data_format: 'channels_last',
        dilation_rate: [dilation, dilation],
        activation: 'linear',
        use_bias: bias !== null,
        ...CONV_FIXED_FIELDS,
      },
      [x],
      cout,
      kernel.kind === 'variable',
    );
    this.weights.push({ name: `${name}/kernel`, shape: [kh, kw, x.ch, cout], source: kernel });
    if (bias !== null) this.weights.push({ name: `${name}/bias`, shape: [cout], source: bias });
    return out;
  }

  /** Our conv layer `name` (variables `${name}.w`, `${name}.b`), square k. */
  ourConv(x: Sym, name: string, k: number, cout: number, dilation = 1): Sym {
    const out = this.conv(
      x,
      name,
      k,
      k,
      cout,
      dilation,
      { kind: 'variable', variable: `${name}.w`, factor: 1 },
      { kind: 'variable', variable: `${name}.b`, factor: 1 },
    );
    return { ...out, conv: true };
  }

  /** Conv2DTranspose with a fixed kernel [k, k, cout, x.ch], strides s, 'valid', no bias. */
  fixedTransposed(x: Sym, prefix: string, k: number, s: number, cout: number, values: Float32Array): Sym {
    const name = this.auto(prefix);
    const out = this.layer(
      'Conv2DTranspose',
      name,
      {
        filters: cout,
        kernel_size: [k, k],
        strides: [s, s],
        padding: 'valid',
        data_format: 'channels_last',
        activation: 'linear',
        use_bias: false,
        ...CONV_FIXED_FIELDS,
      },
      [x],
      cout,
      false,
    );
    this.weights.push({ name: `${name}/kernel`, shape: [k, k, cout, x.ch], source: { kind: 'fixed', values } });
    return out;
  }

  /** PReLU `name` with one slope per channel (variable `${name}.alpha`, [C]; Keras' alpha is [1, 1, C]). */
  prelu(x: Sym, name: string): Sym {
    const out = this.layer(
      'PReLU',
      name,
      { alpha_initializer: ZEROS, alpha_regularizer: null, alpha_constraint: null, shared_axes: [1, 2] },
      [x],
      x.ch,
    );
    this.weights.push({
      name: `${name}/alpha`,
      shape: [1, 1, x.ch],
      source: { kind: 'variable', variable: `${name}.alpha`, factor: 1, reshaped: true },
    });
    return out;
  }

  leaky(x: Sym, alpha: number): Sym {
    return this.layer('LeakyReLU', this.auto('lrelu'), { alpha }, [x], x.ch);
  }

  rescale(x: Sym, scale: number): Sym {
    return this.layer('Rescaling', this.auto('scale'), { scale, offset: 0 }, [x], x.ch);
  }

  add(xs: Sym[]): Sym {
    return this.layer('Add', this.auto('add'), {}, xs, Math.max(...xs.map((s) => s.ch)));
  }

  mul(a: Sym, b: Sym): Sym {
    return this.layer('Multiply', this.auto('mul'), {}, [a, b], Math.max(a.ch, b.ch));
  }

  concat(xs: Sym[]): Sym {
    if (xs.length === 1) return xs[0];
    return this.layer(
      'Concatenate',
      this.auto('concat'),
      { axis: -1 },
      xs,
      xs.reduce((a, s) => a + s.ch, 0),
    );
  }

  pad(x: Sym, padding: Pads, prefix = 'pad'): Sym {
    return this.layer('ZeroPadding2D', this.auto(prefix), { padding, data_format: 'channels_last' }, [x], x.ch);
  }

  crop(x: Sym, cropping: Pads, prefix = 'crop'): Sym {
    return this.layer('Cropping2D', this.auto(prefix), { cropping, data_format: 'channels_last' }, [x], x.ch);
  }

  upNearest(x: Sym): Sym {
    return this.layer(
      'UpSampling2D',
      this.auto('upsample'),
      { size: [2, 2], interpolation: 'nearest', data_format: 'channels_last' },
      [x],
      x.ch,
    );
  }

  /** x + s·y: Rescaling(s) then Add, or s folded into the weights of y's conv (see the header). */
  residual(x: Sym, y: Sym, s: number): Sym {
    if (this.residualScale === 'fold' && y.conv === true) {
      for (const w of this.weights) {
        if ((w.name === `${y.name}/kernel` || w.name === `${y.name}/bias`) && w.source.kind === 'variable') {
          w.source = { ...w.source, factor: w.source.factor * s };
        }
      }
      return this.add([x, y]);
    }
    return this.add([x, this.rescale(y, s)]);
  }

  /** The generator description's ops on Keras layers. */
  ops(): GraphOps<Sym> {
    return {
      conv: (name, x, k, cout, dilation) => this.ourConv(x, name, k, cout, dilation),
      leaky: (x, alpha) => this.leaky(x, alpha),
      prelu: (name, x) => this.prelu(x, name),
      add: (a, b) => this.add([a, b]),
      residual: (x, y, s) => this.residual(x, y, s),
      concat: (xs) => this.concat([...xs]),
      pixelShuffle: (x, r) => this.pixelShuffle(x, r),
      upsampleNearest2x: (x) => this.upNearest(x),
      resizeBilinear: (x, r) => this.bilinear(x, r),
      block: (_name, x, f) => f(x),
    };
  }

  /** tf.depthToSpace(x, r) as a fixed Conv2DTranspose. */
  pixelShuffle(x: Sym, r: number): Sym {
    const c = x.ch / (r * r);
    if (!Number.isInteger(c)) throw new RangeError(`export-layers: ${x.ch} channels cannot be shuffled by ${r}`);
    return this.fixedTransposed(x, 'pixel_shuffle', r, r, c, pixelShuffleKernel(r, c));
  }

  /** tf.image.resizeBilinear(x, [r·h, r·w], false, true) of a 3-channel x, edge-clamped (see the header). */
  bilinear(x: Sym, r: number): Sym {
    const fixed = (values: number[]): WeightSource => ({ kind: 'fixed', values: Float32Array.from(values) });
    const z = this.pad(
      x,
      [
        [1, 1],
        [1, 1],
      ],
      'skip_pad',
    );
    const ones = this.conv(z, this.auto('skip_ones'), 1, 1, 1, 1, fixed([0, 0, 0]), fixed([1]));
    // 1 − ones[i−1] (tap 0 of a 3-tap 'same' conv reads i−1): 1 on the first row only, and so on.
    const mask = (prefix: string, kh: number, kw: number, tap: number): Sym =>
      this.conv(ones, this.auto(prefix), kh, kw, 1, 1, fixed([0, 1, 2].map((t) => (t === tap ? -1 : 0))), fixed([1]));
    const top = mask('skip_mask_top', 3, 1, 0);
    const bottom = mask('skip_mask_bottom', 3, 1, 2);
    const left = mask('skip_mask_left', 1, 3, 0);
    const right = mask('skip_mask_right', 1, 3, 2);
    // shift(t, [[a, b], …]): crop a/b, then zero-pad b/a: a pure move by one row or column.
    const shift = (t: Sym, crop: Pads): Sym =>
      this.pad(
        this.crop(t, crop, 'skip_shift_crop'),
        [
          [crop[0][1], crop[0][0]],
          [crop[1][1], crop[1][0]],
        ],
        'skip_shift_pad',
      );
    const rows = this.add([
      z,
      this.mul(
        top,
        shift(z, [
          [1, 0],
          [0, 0],
        ]),
      ),
      this.mul(
        bottom,
        shift(z, [
          [0, 1],
          [0, 0],
        ]),
      ),
    ]);
    const p = this.add([
      rows,
      this.mul(
        left,
        shift(rows, [
          [0, 0],
          [1, 0],
        ]),
      ),
      this.mul(
        right,
        shift(rows, [
          [0, 0],
          [0, 1],
        ]),
      ),
    ]);
    const up = this.fixedTransposed(p, 'skip_bilinear', 2 * r, r, 3, bilinearKernel(r, 3));
    const c = (3 * r) / 2;
    return this.crop(
      up,
      [
        [c, c],
        [c, c],
      ],
      'skip_crop',
    );
  }
}

/** K[i, j, c, (i·r + j)·C + c] = 1, shape [r, r, C, C·r²]. */
function pixelShuffleKernel(r: number, c: number): Float32Array {
  const cin = c * r * r;
  const k = new Float32Array(r * r * c * cin);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      for (let co = 0; co < c; co++) k[((i * r + j) * c + co) * cin + (i * r + j) * c + co] = 1;
    }
  }
  return k;
}

/** Separable half-pixel bilinear taps w[ty]·w[tx], w[t] = 1 − |(t + ½)/r − 1|, per channel; shape [2r, 2r, ch, ch]. */
function bilinearKernel(r: number, ch: number): Float32Array {
  const w = Array.from({ length: 2 * r }, (_, t) => 1 - Math.abs((t + 0.5) / r - 1));
  const k = new Float32Array(4 * r * r * ch * ch);
  for (let y = 0; y < 2 * r; y++) {
    for (let x = 0; x < 2 * r; x++) {
      for (let c = 0; c < ch; c++) k[((y * 2 * r + x) * ch + c) * ch + c] = w[y] * w[x];
    }
  }
  return k;
}

/**
 * The Keras functional topology of the generator `config` at `scale`, input [null, null, null, 3] (any
 * image size), built from layer classes tfjs-layers registers by default, plus its weights in manifest
 * order. Default residualScale 'rescaling'. Pure: no tensors are made.
 */
export function generatorTopology(config: GeneratorConfig, scale: 2 | 4, opts: ExportOptions = {}): GeneratorTopology {
  if (scale !== 2 && scale !== 4) throw new RangeError(`scale must be 2 or 4, got ${JSON.stringify(scale)}`);
  const residualScale = opts.residualScale ?? 'rescaling';
  if (residualScale !== 'rescaling' && residualScale !== 'fold') {
    throw new RangeError(`residualScale must be 'rescaling' or 'fold', got ${JSON.stringify(residualScale)}`);
  }
  const graph = generatorGraph(config, scale);
  const g = new Graph(residualScale);
  const x = g.input('lr');
  const out = graph.forward(g.ops(), x);
  return {
    modelTopology: {
      class_name: 'Model',
      config: {
        name: `srgan_${config.kind}_x${scale}`,
        layers: g.layers,
        input_layers: [[x.name, 0, 0]],
        output_layers: [[out.name, 0, 0]],
      },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weights: g.weights,
  };
}

/**
 * Writes `gen` (built from `config`) to `dir` as a tfjs LayersModel: model.json (format 'layers-model',
 * our config in userDefinedMetadata.srganGenerator) and weight shards of ≤ 4 MiB, through layers-io's
 * crash-safe handler. Throws RangeError when `config` does not describe `gen`.
 */
export async function saveGeneratorLayersModel(
  gen: Generator,
  config: GeneratorConfig,
  dir: string,
  opts: ExportOptions = {},
): Promise<void> {
  const scale = gen.scale;
  if (scale !== 2 && scale !== 4) throw new RangeError(`gen.scale must be 2 or 4, got ${scale}`);
  const topo = generatorTopology(config, scale, opts);
  const used = new Set<string>();
  for (const w of topo.weights) {
    if (w.source.kind !== 'variable') continue;
    const v = gen.variables[w.source.variable];
    if (v === undefined) throw new RangeError(`config does not describe gen: it has no variable '${w.source.variable}' (for ${w.name})`);
    if (!fits(v, w)) {
      throw new RangeError(
        `config does not describe gen: variable '${w.source.variable}' has shape [${v.shape}], the config's ${w.name} has [${w.shape}]`,
      );
    }
    used.add(w.source.variable);
  }
  const unused = Object.keys(gen.variables).filter((k) => !used.has(k));
  if (unused.length > 0) throw new RangeError(`config does not describe gen: variables ${unused.join(', ')} are not in its topology`);

  const owned: tf.Tensor[] = [];
  const named = topo.weights.map((w): { name: string; tensor: tf.Tensor } => {
    if (w.source.kind === 'fixed') {
      const t = tf.tensor(w.source.values, w.shape, 'float32');
      owned.push(t);
      return { name: w.name, tensor: t };
    }
    const v = gen.variables[w.source.variable];
    if (w.source.factor === 1 && !w.source.reshaped) return { name: w.name, tensor: v };
    const t = tf.tidy(() => tf.mul(tf.reshape(v, w.shape), w.source.kind === 'variable' ? w.source.factor : 1));
    owned.push(t);
    return { name: w.name, tensor: t };
  });
  try {
    const { data, specs } = await tf.io.encodeWeights(named);
    const metadata: ExportMetadata = { version: 1, config, scale, residualScale: opts.residualScale ?? 'rescaling' };
    const io = fileModelIO(dir, {
      errorCode: 'SRGAN_ERR_CHECKPOINT',
      ...(opts.shardBytes === undefined ? {} : { shardBytes: opts.shardBytes }),
    });
    await io.save!({
      modelTopology: topo.modelTopology,
      weightSpecs: specs,
      weightData: data,
      format: 'layers-model',
      generatedBy: `srgan-daemon export-layers (TensorFlow.js tfjs-core v${tf.version_core})`,
      convertedBy: null,
      userDefinedMetadata: { srganGenerator: metadata as unknown as Record<string, unknown> },
    });
  } finally {
    tf.dispose(owned);
  }
}

/** A folder written by saveGeneratorLayersModel, read and checked (readGeneratorExport). */
export interface GeneratorExport {
  dir: string;
  meta: ExportMetadata;
  topology: GeneratorTopology;
  artifacts: tf.io.ModelArtifacts;
}

/** Bounds on an untrusted srganGenerator.config, those a run config may have (config/resolve.ts). */
const CONFIG_BOUNDS = [
  ['channels', 1024],
  ['growth', 1024],
  ['blocks', 64],
] as const;

/**
 * Reads model.json and its shards (layers-io checks the shards hold the bytes the manifest asks for)
 * and checks that the srganGenerator metadata describes the manifest weight for weight: every weight
 * of its topology present, unquantised float32, with its shape, and nothing else. Only then may a
 * generator be built from the config (its variables are then no larger than the files). Problems are
 * SrganError SRGAN_ERR_CHECKPOINT naming the model.json and what is wrong.
 */
export async function readGeneratorExport(dir: string): Promise<GeneratorExport> {
  const artifacts = await fileModelIO(dir, { errorCode: 'SRGAN_ERR_CHECKPOINT' }).load!();
  const where = `${dir}: model.json`;
  const fail = (what: string, cause?: unknown): SrganError =>
    new SrganError('SRGAN_ERR_CHECKPOINT', `${where}: ${what}`, cause === undefined ? undefined : { cause });
  const meta = parseMetadata(artifacts.userDefinedMetadata?.['srganGenerator'], fail);
  const specs = artifacts.weightSpecs ?? [];
  // Untrusted sizes: generatorTopology allocates the fixed kernels from them, so bound them first; and
  // every block has weights, so more blocks than weights is a lie.
  for (const [field, max] of CONFIG_BOUNDS) {
    const v = (meta.config as unknown as Record<string, unknown>)[field];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max)) {
      throw fail(`srganGenerator.config.${field} must be an integer in 1..${max}, got ${JSON.stringify(v)}`);
    }
  }
  const blocks = (meta.config as { blocks?: unknown }).blocks;
  if (typeof blocks === 'number' && blocks > specs.length) {
    throw fail(`srganGenerator.config.blocks (${blocks}) exceeds the manifest's ${specs.length} weights`);
  }

  let topology: GeneratorTopology;
  try {
    topology = generatorTopology(meta.config, meta.scale, { residualScale: meta.residualScale });
  } catch (err) {
    throw fail(`its srganGenerator metadata does not describe a generator (${(err as Error).message})`, err);
  }
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  const expected = new Set(topology.weights.map((w) => w.name));
  for (const name of byName.keys()) {
    if (!expected.has(name)) throw fail(`weight '${name}' is not part of a ${meta.config.kind} ×${meta.scale} generator`);
  }
  for (const w of topology.weights) {
    const spec = byName.get(w.name);
    if (spec === undefined) throw fail(`weight '${w.name}' of a ${meta.config.kind} ×${meta.scale} generator is missing from the manifest`);
    if (spec.dtype !== 'float32' || spec.quantization !== undefined) {
      throw fail(`weight '${w.name}' is stored as ${spec.quantization?.dtype ?? spec.dtype}, expected unquantised float32`);
    }
    if (!sameShape(spec.shape, w.shape)) throw fail(`weight '${w.name}' has shape [${spec.shape}], its layer needs [${w.shape}]`);
  }
  if (artifacts.weightData === undefined) throw fail('has no weight data');
  return { dir, meta, topology, artifacts };
}

/**
 * Reads a folder written by saveGeneratorLayersModel (or one readGeneratorExport has read) into
 * `gen`'s variables, all or nothing. Every variable of `gen` must be in the manifest with its shape;
 * problems are SrganError SRGAN_ERR_CHECKPOINT naming the model.json and the weight.
 */
export async function loadGeneratorWeights(gen: Generator, from: string | GeneratorExport): Promise<void> {
  const { dir, topology, artifacts } = typeof from === 'string' ? await readGeneratorExport(from) : from;
  const fail = (what: string, cause?: unknown): SrganError =>
    new SrganError('SRGAN_ERR_CHECKPOINT', `${dir}: model.json: ${what}`, cause === undefined ? undefined : { cause });
  const plan: Array<{ variable: tf.Variable; name: string; factor: number }> = [];
  for (const w of topology.weights) {
    if (w.source.kind !== 'variable') continue;
    const v = gen.variables[w.source.variable];
    if (v === undefined)
      throw fail(`weight '${w.name}' has no variable '${w.source.variable}' in this generator (another kind or layout?)`);
    if (!fits(v, w)) {
      throw fail(`weight '${w.name}' has shape [${w.shape}], this generator's '${w.source.variable}' has [${v.shape}]`);
    }
    plan.push({ variable: v, name: w.name, factor: w.source.factor });
  }
  const covered = new Set(plan.map((p) => p.variable));
  const missing = Object.entries(gen.variables).filter(([, v]) => !covered.has(v));
  if (missing.length > 0) throw fail(`has no weight for this generator's ${missing.map(([k]) => `'${k}'`).join(', ')}`);

  let tensors: tf.NamedTensorMap;
  try {
    tensors = tf.io.decodeWeights(artifacts.weightData!, artifacts.weightSpecs ?? []);
  } catch (err) {
    throw fail('weight data cannot be decoded', err);
  }
  try {
    for (const p of plan) {
      const t = tensors[p.name];
      if (p.factor === 1 && sameShape(t.shape, p.variable.shape)) p.variable.assign(t);
      else tf.tidy(() => p.variable.assign(tf.reshape(tf.div(t, p.factor), p.variable.shape)));
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

function parseMetadata(raw: unknown, fail: (what: string) => SrganError): ExportMetadata {
  if (typeof raw !== 'object' || raw === null) {
    throw fail(
      'is a tfjs model but not an srgan generator (it has no userDefinedMetadata.srganGenerator); `srgan eval --compare` scores other models',
    );
  }
  const m = raw as Partial<Record<keyof ExportMetadata, unknown>>;
  if (m.version !== 1) throw fail(`srganGenerator.version must be 1, got ${JSON.stringify(m.version)}`);
  if (m.scale !== 2 && m.scale !== 4) throw fail(`srganGenerator.scale must be 2 or 4, got ${JSON.stringify(m.scale)}`);
  if (m.residualScale !== 'rescaling' && m.residualScale !== 'fold') {
    throw fail(`srganGenerator.residualScale must be 'rescaling' or 'fold', got ${JSON.stringify(m.residualScale)}`);
  }
  if (typeof m.config !== 'object' || m.config === null) throw fail('srganGenerator.config must be an object');
  return { version: 1, config: m.config as GeneratorConfig, scale: m.scale, residualScale: m.residualScale };
}

/** Whether variable `v` holds exported weight `w`: the same shape, or the same size where the weight says it is reshaped. */
function fits(v: tf.Variable, w: ExportedWeight): boolean {
  if (w.source.kind === 'variable' && w.source.reshaped) return v.size === w.shape.reduce((a, d) => a * d, 1);
  return sameShape(v.shape, w.shape);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
