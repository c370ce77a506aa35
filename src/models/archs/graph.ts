// One description per generator (docs/architecture.md, "One description per network"). Each generator
// is written once, as a forward function over GraphOps<T>, and that one function is read three ways:
//
//  - on shapes (traceGraph): which conv layers exist, in forward order, with their input channels
//    inferred; which of them each recomputable block reads; FLOPs at a given input size;
//  - on tensors (generatorFromGraph): the variables those layers need, and apply();
//  - on Keras layers (models/io/export-layers.ts): the LayersModel a browser loads.
//
// So the exporter cannot drift from the network: a layer added to a generator is in its export too.

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

/** A symbolic NHWC tensor of one image. */
interface Shape {
  h: number;
  w: number;
  ch: number;
}

export interface GraphTrace {
  /** Every conv layer, in forward order. */
  convs: Array<{ name: string; spec: ConvSpec }>;
  /** Each block's conv layers, in forward order. */
  blocks: Map<string, string[]>;
  /** FLOPs (2 × conv multiply-adds) of one forward pass at the traced size. */
  flops: number;
}

/** Runs `graph` on the shape of one h×w RGB image. Throws RangeError where the shapes do not fit. */
export function traceGraph(graph: GeneratorGraph, h: number, w: number): GraphTrace {
  const convs: GraphTrace['convs'] = [];
  const blocks = new Map<string, string[]>();
  const names = new Set<string>();
  let current: string[] | null = null;
  let flops = 0;
  const sameSize = (op: string, xs: readonly Shape[]): void => {
    if (xs.some((s) => s.h !== xs[0].h || s.w !== xs[0].w)) throw new RangeError(`${op}: inputs of different sizes`);
  };
  const o: GraphOps<Shape> = {
    conv(name, x, k, cout, dilation = 1) {
      if (names.has(name)) throw new RangeError(`duplicate layer name '${name}'`);
      names.add(name);
      const spec: ConvSpec = { k, cin: x.ch, cout, dilation };
      convs.push({ name, spec });
      current?.push(name);
      flops += convFlops(spec, x.h, x.w);
      const [oh, ow] = convOutSize(spec, x.h, x.w);
      return { h: oh, w: ow, ch: cout };
    },
    leaky: (x) => x,
    add(a, b) {
      sameSize('add', [a, b]);
      if (a.ch !== b.ch) throw new RangeError(`add: ${a.ch} vs ${b.ch} channels`);
      return a;
    },
    residual(x, y) {
      return o.add(x, y);
    },
    concat(xs) {
      sameSize('concat', xs);
      return { ...xs[0], ch: xs.reduce((a, s) => a + s.ch, 0) };
    },
    pixelShuffle(x, r) {
      if (x.ch % (r * r) !== 0) throw new RangeError(`pixel shuffle: ${x.ch} channels cannot be shuffled by ${r}`);
      return { h: x.h * r, w: x.w * r, ch: x.ch / (r * r) };
    },
    upsampleNearest2x: (x) => ({ h: 2 * x.h, w: 2 * x.w, ch: x.ch }),
    resizeBilinear(x, r) {
      if (x.ch !== 3) throw new RangeError(`resizeBilinear: the skip takes the 3-channel input, got ${x.ch} channels`);
      return { h: r * x.h, w: r * x.w, ch: x.ch };
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
  const out = graph.forward(o, { h, w, ch: 3 });
  if (out.ch !== 3 || out.h !== h * graph.scale || out.w !== w * graph.scale) {
    throw new RangeError(`the network maps ${h}×${w}×3 to ${out.h}×${out.w}×${out.ch}, not ×${graph.scale} RGB`);
  }
  return { convs, blocks, flops };
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
  const layers = new Map<string, ConvLayer>();
  trace.convs.forEach(({ name, spec }, i) => {
    layers.set(name, createConv(variables, name, spec, graph.seeding === 'index' ? deriveSeed(seed, i) : nameSeed(seed, name)));
  });
  const blockWeights = new Map([...trace.blocks].map(([block, convs]) => [block, layerWeights(convs.map((c) => layers.get(c)!))]));

  const o: GraphOps<tf.Tensor4D> = {
    conv: (name, x) => applyConv(layers.get(name)!, x),
    leaky: (x, alpha) => tf.leakyRelu(x, alpha),
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

  return {
    variables,
    apply: (x) => tf.tidy(() => graph.forward(o, x)),
    scale: graph.scale,
    paramCount: countParams(variables),
    flopsPerForward: (h, w) => traceGraph(graph, h, w).flops,
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
