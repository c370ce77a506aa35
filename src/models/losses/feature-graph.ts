// The front of a loaded tfjs LayersModel, re-run as plain tf ops over frozen (constant) weights, that
// returns the activations at chosen layers: the feature extractor of the perceptual loss.
//
// Why not a tfjs-layers sub-model (tf.model({inputs, outputs})):
//  - Keras fuses the activation into Conv2D, so a sub-model cannot expose a conv's output before its
//    ReLU, and the seed's last VGG feature is exactly that (docs/seed.md §4.2);
//  - a sub-model's weights are trainable tf.Variables, which a tf.variableGrads() called without an
//    explicit list would update; constants can never be trained;
//  - the wasm backend has no DepthwiseConv2dNativeBackpropInput kernel, and MobileNetV2 needs one; the
//    depthwise convolution here carries its own input gradient made of forward ops.
// Only the layers the taps depend on are kept (and their weights copied); the model can be disposed.

import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

import { SrganError } from '../../util/errors.js';
import { spreadOnGrid } from '../archs/ops.js';

type Layer = LayersModel['layers'][number];
type Act = ((x: tf.Tensor4D) => tf.Tensor4D) | null;

/**
 * Where a feature is read: the layer's 'output'; 'linear', a Conv2D / DepthwiseConv2D output before
 * its fused activation (the output for other layers); or 'relu', relu of that linear output.
 */
export type TapPoint = 'output' | 'linear' | 'relu';

export interface FeatureTap {
  layer: string;
  /** Default 'output'. */
  at?: TapPoint;
}

export interface FrozenFeatureNet {
  /** One name per tap, in order, e.g. 'block3_conv3:linear'. */
  readonly tapNames: readonly string[];
  /**
   * The tapped activations of x (NHWC, the model's input channels), one per tap, in tap order.
   * Differentiable with respect to x; creates intermediates, so call it inside tf.tidy (or a tape).
   */
  forward(x: tf.Tensor4D): tf.Tensor4D[];
  /** Frees the copied weights. */
  dispose(): void;
}

interface Step {
  name: string;
  /** Indices into the value list: 0 is the model input, i + 1 the output of steps[i]. */
  inputs: number[];
  linear: (xs: tf.Tensor4D[]) => tf.Tensor4D;
  activation: Act;
}

/**
 * Compiles the layers of `model` that `taps` depend on into a frozen feature net. Supported layers:
 * InputLayer, Conv2D, DepthwiseConv2D (multiplier 1), BatchNormalization (inference: moving
 * statistics), ReLU, Activation, ZeroPadding2D, MaxPooling2D, AveragePooling2D, Add; channels-last.
 * Anything else on the way, a tap that names no layer, or a model with several inputs is SrganError
 * SRGAN_ERR_CONFIG, prefixed with `source` (the file, for the message).
 */
export function freezeFeatureNet(model: LayersModel, taps: readonly FeatureTap[], source: string): FrozenFeatureNet {
  const fail = (what: string): SrganError => new SrganError('SRGAN_ERR_CONFIG', `${source}: ${what}`);
  if (taps.length === 0) throw new RangeError('taps: expected at least one layer');
  // model.inputs, not model.inputLayers: a Sequential leaves the latter empty.
  if (model.inputs.length !== 1) throw fail(`expected a model with one input, found ${model.inputs.length}`);
  const inputLayer = model.inputs[0].sourceLayer;
  const byName = new Map(model.layers.map((l) => [l.name, l]));

  // Keep only the ancestors of the tapped layers, in the model's (topological) layer order.
  const needed = new Set<Layer>();
  const visit = (l: Layer): void => {
    if (needed.has(l) || l === inputLayer) return;
    needed.add(l);
    for (const p of inboundLayers(l, fail)) visit(p);
  };
  for (const t of taps) {
    const l = byName.get(t.layer);
    if (l === undefined) throw fail(`has no layer named "${t.layer}"`);
    visit(l);
  }
  const order = model.layers.filter((l) => needed.has(l) && l.getClassName() !== 'InputLayer');

  const owned: tf.Tensor[] = [];
  const index = new Map<Layer, number>([[inputLayer, 0]]);
  const steps: Step[] = [];
  try {
    for (const l of order) {
      const inputs = inboundLayers(l, fail).map((p) => {
        const i = index.get(p);
        if (i === undefined) throw fail(`layer "${l.name}" depends on "${p.name}", which comes later or is unsupported`);
        return i;
      });
      steps.push({ name: l.name, inputs, ...compileLayer(l, owned, fail) });
      index.set(l, steps.length);
    }
  } catch (err) {
    tf.dispose(owned);
    throw err;
  }

  const tapIdx = taps.map((t) => index.get(byName.get(t.layer)!)!);
  const tapAt = taps.map((t) => t.at ?? 'output');
  const tapNames = taps.map((t, i) => (tapAt[i] === 'output' ? t.layer : `${t.layer}:${tapAt[i]}`));
  const linearNeeded = new Set(tapIdx.filter((_, i) => tapAt[i] !== 'output'));
  let disposed = false;

  return {
    tapNames,
    forward(x: tf.Tensor4D): tf.Tensor4D[] {
      if (disposed) throw new SrganError('SRGAN_ERR_BAD_STATE', `${source}: feature net used after dispose`);
      const values: tf.Tensor4D[] = [x];
      const linears = new Map<number, tf.Tensor4D>();
      steps.forEach((s, i) => {
        const lin = s.linear(s.inputs.map((j) => values[j]));
        if (linearNeeded.has(i + 1)) linears.set(i + 1, lin);
        values.push(s.activation ? s.activation(lin) : lin);
      });
      return tapIdx.map((i, k) => {
        const at = tapAt[k];
        if (at === 'output') return values[i];
        const lin = linears.get(i) ?? values[i];
        return at === 'relu' ? tf.relu(lin) : lin;
      });
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      tf.dispose(owned);
    },
  };
}

function inboundLayers(l: Layer, fail: (what: string) => SrganError): Layer[] {
  if (l.inboundNodes.length !== 1) {
    throw fail(`layer "${l.name}" is used ${l.inboundNodes.length} times (shared layers and nested models are not supported)`);
  }
  return l.inboundNodes[0].inboundLayers;
}

type Config = Record<string, unknown>;

/** Turns one layer into its linear part and activation, copying its weights into `owned`. */
function compileLayer(l: Layer, owned: tf.Tensor[], fail: (what: string) => SrganError): { linear: Step['linear']; activation: Act } {
  const cls = l.getClassName();
  const cfg = l.getConfig() as Config;
  const what = `layer "${l.name}" (${cls})`;
  if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') {
    throw fail(`${what} is ${cfg.dataFormat as string}; only channels-last models are supported`);
  }
  // Copies, not the variables themselves: the model can be disposed, and nothing here is trainable.
  const weights = l.getWeights().map((w) => {
    const c = tf.clone(w);
    owned.push(c);
    return c;
  });
  const single = (xs: tf.Tensor4D[]): tf.Tensor4D => {
    if (xs.length !== 1) throw fail(`${what} expects one input, got ${xs.length}`);
    return xs[0];
  };
  switch (cls) {
    case 'Conv2D': {
      const [kernel, bias] = weights as [tf.Tensor4D, tf.Tensor1D?];
      const strides = pair(cfg.strides, what, fail);
      const dilation = pair(cfg.dilationRate ?? 1, what, fail);
      const pad = padding(cfg.padding, what, fail);
      const b = cfg.useBias === false ? null : (bias ?? null);
      return {
        linear: (xs) => {
          const y = tf.conv2d(single(xs), kernel, strides, pad, 'NHWC', dilation);
          return b ? tf.add(y, b) : y;
        },
        activation: activation(cfg.activation, what, fail),
      };
    }
    case 'DepthwiseConv2D': {
      const [kernel, bias] = weights as [tf.Tensor4D, tf.Tensor1D?];
      if (kernel.shape[3] !== 1) throw fail(`${what} has depth multiplier ${kernel.shape[3]}; only 1 is supported`);
      const strides = pair(cfg.strides, what, fail);
      const dilation = pair(cfg.dilationRate ?? 1, what, fail);
      const pad = padding(cfg.padding, what, fail);
      const b = cfg.useBias === false ? null : (bias ?? null);
      return {
        linear: (xs) => {
          const y = depthwiseConv2dFrozen(single(xs), kernel, strides, pad, dilation);
          return b ? tf.add(y, b) : y;
        },
        activation: activation(cfg.activation, what, fail),
      };
    }
    case 'BatchNormalization': {
      const axis = Array.isArray(cfg.axis) ? cfg.axis : [cfg.axis];
      if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) throw fail(`${what} normalises axis ${String(cfg.axis)}, not channels`);
      let k = 0;
      const gamma = cfg.scale === false ? null : weights[k++];
      const beta = cfg.center === false ? null : weights[k++];
      const mean = weights[k++];
      const variance = weights[k++];
      if (mean === undefined || variance === undefined) throw fail(`${what} lacks its moving statistics`);
      // Inference-mode BN folded into one affine map: x·scale + shift.
      const scale = tf.tidy(() => {
        const inv = tf.rsqrt(tf.add(variance, Number(cfg.epsilon ?? 1e-3)));
        return gamma ? tf.mul(gamma, inv) : inv;
      });
      const shift = tf.tidy(() => {
        const s = tf.neg(tf.mul(mean, scale));
        return beta ? tf.add(beta, s) : s;
      });
      owned.push(scale, shift);
      return { linear: (xs) => tf.add(tf.mul(single(xs), scale), shift), activation: null };
    }
    case 'ReLU': {
      if (cfg.maxValue == null) return { linear: single, activation: tf.relu };
      const max = Number(cfg.maxValue);
      return {
        linear: single,
        activation: max === 6 ? tf.relu6 : (x) => tf.minimum(tf.relu(x), max),
      };
    }
    case 'Activation':
      return { linear: single, activation: activation(cfg.activation, what, fail) };
    case 'ZeroPadding2D': {
      const p = cfg.padding as [[number, number], [number, number]];
      return { linear: (xs) => tf.pad(single(xs), [[0, 0], p[0], p[1], [0, 0]]), activation: null };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const size = pair(cfg.poolSize, what, fail);
      const strides = pair(cfg.strides ?? cfg.poolSize, what, fail);
      const pad = padding(cfg.padding, what, fail);
      const pool = cls === 'MaxPooling2D' ? tf.maxPool : tf.avgPool;
      return { linear: (xs) => pool(single(xs), size, strides, pad), activation: null };
    }
    case 'Add':
      return { linear: (xs) => (xs.length === 1 ? xs[0] : (tf.addN(xs) as tf.Tensor4D)), activation: null };
    default:
      throw fail(`${what} is not supported by the frozen feature extractor`);
  }
}

function pair(v: unknown, what: string, fail: (w: string) => SrganError): [number, number] {
  const p = Array.isArray(v) ? v : [v, v];
  if (p.length !== 2 || !p.every((n) => Number.isInteger(n) && n > 0)) throw fail(`${what} has a bad size/stride ${JSON.stringify(v)}`);
  return p as [number, number];
}

function padding(v: unknown, what: string, fail: (w: string) => SrganError): 'same' | 'valid' {
  if (v === 'same' || v === 'valid') return v;
  throw fail(`${what} has padding ${JSON.stringify(v)}; only 'same' and 'valid' are supported`);
}

function activation(name: unknown, what: string, fail: (w: string) => SrganError): Act {
  switch (name ?? 'linear') {
    case 'linear':
      return null;
    case 'relu':
      return tf.relu;
    case 'relu6':
      return tf.relu6;
    default:
      throw fail(`${what} has activation ${JSON.stringify(name)}; only linear, relu and relu6 are supported`);
  }
}

/**
 * Depthwise convolution (multiplier 1, NHWC) by a constant filter, with an input gradient made of
 * forward ops (a strided spread, then a depthwise convolution by the flipped filter), so it runs on
 * backends without DepthwiseConv2dNativeBackpropInput (wasm). No gradient flows to the filter.
 */
export function depthwiseConv2dFrozen(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: [number, number],
  pad: 'same' | 'valid',
  dilation: [number, number],
): tf.Tensor4D {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor4D;
    const value = tf.depthwiseConv2d(input, filter, strides, pad, 'NHWC', dilation);
    return {
      value,
      gradFunc: (dy: tf.Tensor4D) => depthwiseInputGrad(dy, filter, input.shape, strides, pad, dilation),
    };
  });
  return f(x);
}

/** ∂L/∂x of y = depthwiseConv2d(x, filter), given dy = ∂L/∂y. */
function depthwiseInputGrad(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  xShape: [number, number, number, number],
  [sh, sw]: [number, number],
  pad: 'same' | 'valid',
  dilation: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = xShape;
    const [, ho, wo] = dy.shape;
    const ekh = (filter.shape[0] - 1) * dilation[0] + 1;
    const ekw = (filter.shape[1] - 1) * dilation[1] + 1;
    // The forward pass read padded row i + top for input row i (TF 'same': the extra row goes last).
    const top = pad === 'same' ? Math.floor(Math.max((ho - 1) * sh + ekh - h, 0) / 2) : 0;
    const left = pad === 'same' ? Math.floor(Math.max((wo - 1) * sw + ekw - w, 0) / 2) : 0;
    // dy onto the stride grid: g[o·s] = dy[o], zeros between.
    let g: tf.Tensor4D = dy;
    if (sh > 1 || sw > 1) {
      g = tf.slice(spreadOnGrid(dy, [sh, sw]), 0, [n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, c]);
    }
    // Full correlation with the flipped filter gives ∂L/∂(padded input) at rows 0 … (ho−1)·s + ekh − 1.
    const full = tf.depthwiseConv2d(
      tf.pad(g, [
        [0, 0],
        [ekh - 1, ekh - 1],
        [ekw - 1, ekw - 1],
        [0, 0],
      ]),
      tf.reverse(filter, [0, 1]),
      1,
      'valid',
      'NHWC',
      dilation,
    );
    // Rows the forward pass never read (past the last window) get zero gradient.
    const padB = Math.max(0, top + h - full.shape[1]);
    const padR = Math.max(0, left + w - full.shape[2]);
    const covered =
      padB > 0 || padR > 0
        ? tf.pad(full, [
            [0, 0],
            [0, padB],
            [0, padR],
            [0, 0],
          ])
        : full;
    return tf.slice(covered, [0, top, left, 0], [n, h, w, c]);
  });
}
