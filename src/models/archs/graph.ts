// One description per generator (docs/architecture.md, "One description per network"). Each generator
// is written once, as a forward function over GraphOps<T>, and that one function is read four ways:
//
//  - on shapes (traceGraph): which conv layers exist, in forward order, with their input channels
//    inferred; which of them each recomputable block reads; FLOPs at a given input size;
//  - on tensors (generatorFromGraph): the variables those layers need, and apply();
//  - on Keras layers (models/io/export-layers.ts): the LayersModel a browser loads;
//  - on ONNX nodes (models/io/export-onnx.ts): the ONNX model.
//
// So the exporters cannot drift from the network: a layer added to a generator is in its export too.

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed } from '../../util/prng.js';
import type { Generator } from './network.js';
import { integerSeed } from './network.js';
import {
  applyConv,
  convFlops,
  convOutSize,
  countParams,
  createConv,
  nameSeed,
  pixelShuffle,
  upsampleNearest2x,
  type ConvLayer,
  type ConvSpec,
} from './ops.js';
import { layerWeights, recomputed } from './recompute.js';

/** What a generator is made of. T is a tensor, a shape or a Keras layer, depending on who reads it. */
export interface GraphOps<T> {
  /** Our conv layer `name`: k×k, 'same' padding, stride 1, bias; input channels are x's. */
  conv(name: string, x: T, k: number, cout: number, dilation?: number): T;
  leaky(x: T, alpha: number): T;
  /** PReLU `name`: a learned slope per channel (variable `${name}.alpha`, [channels], PyTorch's init 0.25). */
  prelu(name: string, x: T): T;
  add(a: T, b: T): T;
  /** x + s·y: a residual scale. */
  residual(x: T, y: T, s: number): T;
  /** Concatenation along channels, in order. */
  concat(xs: readonly T[]): T;
  /** Depth to space by r, block-major like tf.depthToSpace (ops.ts pixelShuffle). */
  pixelShuffle(x: T, r: number): T;
  /** Nearest-neighbour ×2, out[i] = in[⌊i/2⌋] (ops.ts upsampleNearest2x). */
  upsampleNearest2x(x: T): T;
  /** Half-pixel bilinear enlargement by r of a 3-channel input that needs no gradient (the network's own input). */
  resizeBilinear(x: T, r: number): T;
  /** A unit that training may recompute in the backward pass (recompute.ts). Names are unique; blocks do not nest. */
  block(name: string, x: T, f: (x: T) => T): T;
}

/** PyTorch's nn.PReLU initial slope. */
const PRELU_INIT = 0.25;

/** A generator described once. */
export interface GeneratorGraph {
  /** Upscaling factor: forward maps [h, w, 3] to [h·scale, w·scale, 3]. */
  scale: number;
  /**
   * How each conv's init seed derives from the network's: by its index in forward order (ESPCN, which
   * keeps the init it always had) or by its name (the deep networks: adding blocks leaves the rest alone).
   */
  seeding: 'index' | 'name';
  forward<T>(o: GraphOps<T>, x: T): T;
}

/** A symbolic NHWC tensor of one image: its size, and how far it reaches into the input. */
interface Shape {
  h: number;
  w: number;
  ch: number;
  /** Its pixels per input pixel (1 at the input; the shuffles and upsamplings multiply it). */
  s: number;
  /** Receptive radius in input pixels: a pixel depends on input pixels at most this far away. */
  r: number;
}

/** A shape as a value of the traced program: which op made it (-1: the input). */
interface TracedShape extends Shape {
  op: number;
}

/** A layer with variables. */
export type GraphLayer = { kind: 'conv'; name: string; spec: ConvSpec } | { kind: 'prelu'; name: string; channels: number };

export interface GraphTrace {
  /** Every layer with variables, in forward order. */
  layers: GraphLayer[];
  /** Each block's conv layers, in forward order. */
  blocks: Map<string, string[]>;
  /** FLOPs (2 × conv multiply-adds) of one forward pass at the traced size. */
  flops: number;
  /**
   * Receptive radius of the output in input pixels (convs use 'same' zero padding): output block x
   * depends on input pixels x − radius … x + radius. A conv of radius k at s× adds k/s.
   */
  radius: number;
  /**
   * Peak bytes of float32 activations alive at once in one forward pass at the traced size, input
   * included, when every value is freed right after the last op that reads it (what ONNX Runtime
   * does; tfjs keeps them all until apply returns). Each op is one value, as in the ONNX export,
   * where a residual x + s·y is a Mul then an Add.
   */
  peakLiveBytes: number;
}

/** Runs `graph` on the shape of one h×w RGB image. Throws RangeError where the shapes do not fit. */
export function traceGraph(graph: GeneratorGraph, h: number, w: number): GraphTrace {
  const layers: GraphLayer[] = [];
  const blocks = new Map<string, string[]>();
  const names = new Set<string>();
  let current: string[] | null = null;
  let flops = 0;
  // The program as run: for each op, the sizes (floats) of its output and the ops its inputs came from.
  const ops: { size: number; inputs: number[] }[] = [];
  const value = (inputs: readonly TracedShape[], s: Shape): TracedShape => {
    ops.push({ size: s.h * s.w * s.ch, inputs: inputs.map((x) => x.op) });
    return { h: s.h, w: s.w, ch: s.ch, s: s.s, r: s.r, op: ops.length - 1 };
  };
  const sameSize = (op: string, xs: readonly Shape[]): void => {
    if (xs.some((s) => s.h !== xs[0].h || s.w !== xs[0].w || s.s !== xs[0].s)) throw new RangeError(`${op}: inputs of different sizes`);
  };
  const named = (name: string): void => {
    if (names.has(name)) throw new RangeError(`duplicate layer name '${name}'`);
    names.add(name);
    current?.push(name);
  };
  const o: GraphOps<TracedShape> = {
    conv(name, x, k, cout, dilation = 1) {
      named(name);
      const spec: ConvSpec = { k, cin: x.ch, cout, dilation };
      layers.push({ kind: 'conv', name, spec });
      flops += convFlops(spec, x.h, x.w);
      const [oh, ow] = convOutSize(spec, x.h, x.w);
      return value([x], { h: oh, w: ow, ch: cout, s: x.s, r: x.r + (dilation * (k - 1)) / 2 / x.s });
    },
    leaky: (x) => value([x], x),
    prelu(name, x) {
      named(name);
      layers.push({ kind: 'prelu', name, channels: x.ch });
      return value([x], x);
    },
    add(a, b) {
      sameSize('add', [a, b]);
      if (a.ch !== b.ch) throw new RangeError(`add: ${a.ch} vs ${b.ch} channels`);
      return value([a, b], { ...a, r: Math.max(a.r, b.r) });
    },
    residual(x, y) {
      return o.add(x, value([y], y));
    },
    concat(xs) {
      sameSize('concat', xs);
      return value(xs, { ...xs[0], ch: xs.reduce((a, s) => a + s.ch, 0), r: Math.max(...xs.map((s) => s.r)) });
    },
    pixelShuffle(x, r) {
      if (x.ch % (r * r) !== 0) throw new RangeError(`pixel shuffle: ${x.ch} channels cannot be shuffled by ${r}`);
      return value([x], { h: x.h * r, w: x.w * r, ch: x.ch / (r * r), s: x.s * r, r: x.r });
    },
    // out[i] = in[⌊i/2⌋]: no wider reach.
    upsampleNearest2x: (x) => value([x], { ...x, h: 2 * x.h, w: 2 * x.w, s: 2 * x.s }),
    resizeBilinear(x, r) {
      if (x.ch !== 3) throw new RangeError(`resizeBilinear: the skip takes the 3-channel input, got ${x.ch} channels`);
      // Interpolates between an input pixel and its neighbour.
      return value([x], { h: r * x.h, w: r * x.w, ch: x.ch, s: r * x.s, r: x.r + 1 / x.s });
    },
    block(name, x, f) {
      if (current !== null) throw new RangeError(`block '${name}' inside another block`);
      if (blocks.has(name)) throw new RangeError(`duplicate block name '${name}'`);
      current = [];
      blocks.set(name, current);
      try {
        return f(x);
      } finally {
        current = null;
      }
    },
  };
  const out = graph.forward(o, { h, w, ch: 3, s: 1, r: 0, op: -1 });
  if (out.ch !== 3 || out.h !== h * graph.scale || out.w !== w * graph.scale) {
    throw new RangeError(`the network maps ${h}×${w}×3 to ${out.h}×${out.w}×${out.ch}, not ×${graph.scale} RGB`);
  }
  return { layers, blocks, flops, radius: out.r, peakLiveBytes: 4 * peakLive(ops, h * w * 3, out.op) };
}

/**
 * Peak of the summed sizes of live values when `ops` run in order: an op's output is alive from the op
 * until the last op that reads it (the input, size `inputSize`, until its last reader; the result to
 * the end), and each op's inputs are still alive while it writes its output.
 */
function peakLive(ops: readonly { size: number; inputs: number[] }[], inputSize: number, result: number): number {
  const lastRead = new Map<number, number>();
  ops.forEach((op, i) => {
    for (const v of op.inputs) lastRead.set(v, i);
  });
  lastRead.set(result, ops.length);
  const size = (v: number): number => (v < 0 ? inputSize : ops[v].size);
  let live = inputSize;
  let peak = live;
  ops.forEach((op, i) => {
    live += op.size;
    peak = Math.max(peak, live);
    for (const v of new Set(op.inputs)) if (lastRead.get(v) === i) live -= size(v);
    if (!lastRead.has(i)) live -= op.size; // read by nothing
  });
  return peak;
}

/**
 * The Generator `graph` describes, with PyTorch-default init (U(±1/√fan_in)) drawn from `seed`.
 * `recompute`: the graph's blocks keep only their inputs under a tape and run again in the backward
 * pass (recompute.ts); values and gradients are the same either way.
 */
export function generatorFromGraph(graph: GeneratorGraph, seed: number, recompute = false): Generator {
  integerSeed('seed', seed);
  if (typeof recompute !== 'boolean') throw new RangeError(`recompute must be a boolean, got ${JSON.stringify(recompute)}`);
  const trace = traceGraph(graph, 1, 1);
  const variables: Record<string, tf.Variable> = {};
  const convs = new Map<string, ConvLayer>();
  const slopes = new Map<string, tf.Variable>();
  let index = 0; // convs only: ESPCN's 'index' seeding predates other layers
  for (const l of trace.layers) {
    if (l.kind === 'conv') {
      const layerSeed = graph.seeding === 'index' ? deriveSeed(seed, index++) : nameSeed(seed, l.name);
      convs.set(l.name, createConv(variables, l.name, l.spec, layerSeed));
    } else {
      const init = tf.fill([l.channels], PRELU_INIT);
      const alpha = tf.variable(init, true);
      init.dispose();
      variables[`${l.name}.alpha`] = alpha;
      slopes.set(l.name, alpha);
    }
  }
  const blockWeights = new Map(
    [...trace.blocks].map(([block, names]) => [
      block,
      names.flatMap((n) => (convs.has(n) ? layerWeights([convs.get(n)!]) : [slopes.get(n)!])),
    ]),
  );

  const o: GraphOps<tf.Tensor4D> = {
    conv: (name, x) => applyConv(convs.get(name)!, x),
    leaky: (x, alpha) => tf.leakyRelu(x, alpha),
    prelu: (name, x) => tf.prelu(x, slopes.get(name)! as unknown as tf.Tensor4D),
    add: (a, b) => tf.add(a, b),
    residual: (x, y, s) => tf.add(x, tf.mul(y, s)),
    concat: (xs) => (xs.length === 1 ? xs[0] : tf.concat(xs as tf.Tensor4D[], 3)),
    pixelShuffle,
    upsampleNearest2x,
    resizeBilinear: (x, r) => {
      const [, h, w] = x.shape;
      return tf.image.resizeBilinear(x, [h * r, w * r], false, true);
    },
    block: (name, x, f) => (recompute ? recomputed(f, blockWeights.get(name)!)(x) : f(x)),
  };

  // For inference: a block's intermediates go when it returns (a tape would need them for gradients).
  const inferOps: GraphOps<tf.Tensor4D> = { ...o, block: (_name, x, f) => tf.tidy(() => f(x)) };

  return {
    variables,
    apply: (x) => tf.tidy(() => graph.forward(o, x)),
    infer: (x) => tf.tidy(() => graph.forward(inferOps, x)),
    scale: graph.scale,
    paramCount: countParams(variables),
    flopsPerForward: (h, w) => traceGraph(graph, h, w).flops,
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
