// The "wasm + native oneDNN kernels" rung (docs/backends.md, the compute backend ladder): Conv2D, its two
// gradients and FusedConv2D for the tfjs `wasm` backend, run by oneDNN through our N-API addon
// (native/, built at install when Debian's libdnnl-dev is present; addon.ts loads and calls it),
// plus the kernel of conv2dBiasAct (fused.ts), a conv + bias + activation op whose gradient gets dW
// and db in one call. The small training ops around the convolutions (batch norm, activations,
// pooling, Adam) are in train-ops.ts and adam.ts, data movement in copy.ts;
// registerNativeKernels installs them all together.
//
// Nothing here runs unless a caller registers the kernels (backend.ts decides the ladder): call
// loadNativeKernels(), then registerNativeKernels() AFTER initBackend('wasm'), which registers the JS
// conv-gradient kernels (../conv-gradient-kernels.ts) that ours replace and that unregisterNativeKernels() restores.

import * as tf from '@tensorflow/tfjs-core';
// Side effect: upstream's wasm kernels must be registered before we replace (and remember) them.
import '@tensorflow/tfjs-backend-wasm';

import { SrganError } from '../../../util/errors.js';
import { CONV2D_BIAS_ACT } from '../../archs/fused.js';
import { ADAM_KERNEL, installNativeAdam, uninstallNativeAdam } from './adam.js';
import { COPY_KERNELS } from './copy.js';
import { fallback, previousKernels } from './replaced-kernels.js';
import { LEAKY_RELU_GRAD, registerTrainGradients, TRAIN_KERNELS, unregisterTrainGradients } from './train-ops.js';
import {
  addon,
  callAddon,
  convInfo,
  fillGeometry,
  setActivation,
  size,
  type ConvAttrs,
  type NativeActivation,
  type WasmBackend,
  ACTIVATIONS,
} from './addon.js';

export { conv2dBiasAct, CONV2D_BIAS_ACT, type BiasActivation, type Conv2dBiasActOptions } from '../../archs/fused.js';
export { BATCH_NORM_ACT_GRAD, LEAKY_RELU_GRAD } from './train-ops.js';
export { ADAM_UPDATE } from './adam.js';
export {
  configureNative,
  loadNativeKernels,
  nativeAddonPath,
  nativeStats,
  probeNativeAddon,
  type NativeLoadResult,
  type NativeOptions,
  type NativeStats,
} from './addon.js';

// ---------------------------------------------------------------------------------------------------
// Kernels

let previousConv2DGrad: tf.GradConfig | undefined;

const nhwc = (attrs: ConvAttrs): boolean => attrs.dataFormat === undefined || attrs.dataFormat === 'NHWC';

/** Output of a conv whose input or output is empty: zeros (oneDNN rejects zero-sized dims). */
function zeros(backend: WasmBackend, out: tf.TensorInfo): tf.TensorInfo {
  if (size(out.shape) > 0) backend.typedArrayFromHeap(out).fill(0);
  return out;
}

const conv2d: tf.KernelFunc = (args) => {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as ConvAttrs;
  const x = inputs['x']!;
  const filter = inputs['filter']!;
  if (!nhwc(attrs) || x.dtype !== 'float32' || filter.dtype !== 'float32') return fallback(tf.Conv2D, args);
  return forward(backend as unknown as WasmBackend, x, filter, null, attrs, 'linear', 0) ?? fallback(tf.Conv2D, args);
};

/** Shared by Conv2D and FusedConv2D. Returns null when oneDNN cannot express the geometry. */
function forward(
  backend: WasmBackend,
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  bias: tf.TensorInfo | null,
  attrs: ConvAttrs,
  activation: NativeActivation,
  alpha: number,
): tf.TensorInfo | null {
  const info = convInfo(x.shape, filter.shape, attrs);
  const empty = size(x.shape) === 0 || size(info.outShape) === 0;
  if (!empty && !fillGeometry(info)) return null;
  const out = backend.makeOutput(info.outShape, 'float32');
  if (empty) return zeros(backend, out);
  setActivation(activation, alpha);
  callAddon(backend, 'conv2d', [x, filter, out, bias]);
  return out;
}

const conv2dBackpropInput: tf.KernelFunc = (args) => {
  const { inputs } = args;
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  if (!nhwc(attrs) || dy.dtype !== 'float32' || filter.dtype !== 'float32') return fallback(tf.Conv2DBackpropInput, args);
  const info = convInfo(attrs.inputShape, filter.shape, attrs);
  checkShape(tf.Conv2DBackpropInput, 'dy', dy.shape, info.outShape);
  const empty = size(dy.shape) === 0 || size(attrs.inputShape) === 0;
  if (!empty && !fillGeometry(info)) return fallback(tf.Conv2DBackpropInput, args);
  const out = backend.makeOutput([...attrs.inputShape], 'float32');
  if (empty) return zeros(backend, out);
  callAddon(backend, 'conv2dBackpropInput', [dy, filter, out, null]);
  return out;
};

const conv2dBackpropFilter: tf.KernelFunc = (args) => {
  const { inputs } = args;
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const x = inputs['x']!;
  const dy = inputs['dy']!;
  if (!nhwc(attrs) || x.dtype !== 'float32' || dy.dtype !== 'float32') return fallback(tf.Conv2DBackpropFilter, args);
  const filterInfo = backpropFilter(backend, x, dy, attrs, false);
  return filterInfo ?? fallback(tf.Conv2DBackpropFilter, args);
};

/**
 * dW (and db = Σ dy over N, H, W when `withBias`) in one oneDNN backward-weights call.
 * Returns null when oneDNN cannot express the geometry.
 */
function backpropFilter(
  backend: WasmBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  attrs: ConvAttrs & { filterShape: number[] },
  withBias: true,
): [tf.TensorInfo, tf.TensorInfo] | null;
function backpropFilter(
  backend: WasmBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  attrs: ConvAttrs & { filterShape: number[] },
  withBias: false,
): tf.TensorInfo | null;
function backpropFilter(
  backend: WasmBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  attrs: ConvAttrs & { filterShape: number[] },
  withBias: boolean,
): tf.TensorInfo | [tf.TensorInfo, tf.TensorInfo] | null {
  const name = tf.Conv2DBackpropFilter;
  const info = convInfo(x.shape, attrs.filterShape, attrs);
  checkShape(name, 'dy', dy.shape, info.outShape);
  const empty = size(x.shape) === 0 || size(dy.shape) === 0;
  if (!empty && !fillGeometry(info)) return null;
  const dw = backend.makeOutput([...attrs.filterShape], 'float32');
  const db = withBias ? backend.makeOutput([info.outChannels], 'float32') : null;
  if (empty) {
    zeros(backend, dw);
    if (db !== null) zeros(backend, db);
  } else {
    callAddon(backend, 'conv2dBackpropFilter', [x, dy, dw, db]);
  }
  return db === null ? dw : [dw, db];
}

function checkShape(kernelName: string, what: string, got: number[], want: number[]): void {
  if (!tf.util.arraysEqual(got, want)) {
    throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName} (wasm, native): ${what} has shape [${got}], expected [${want}]`);
  }
}

type FusedAttrs = ConvAttrs & { activation: string; leakyreluAlpha?: number };

const fusedConv2d: tf.KernelFunc = (args) => fusedConv2dOrNull(args, args.attrs as unknown as FusedAttrs) ?? fallback(tf.FusedConv2D, args);

/** FusedConv2D on oneDNN (bias and activation as post-ops); null when oneDNN cannot do it. */
function fusedConv2dOrNull(args: Parameters<tf.KernelFunc>[0], attrs: FusedAttrs): tf.TensorInfo | null {
  const { inputs } = args;
  const backend = args.backend as unknown as WasmBackend;
  const x = inputs['x']!;
  const filter = inputs['filter']!;
  const bias = inputs['bias'] ?? null;
  const activation = attrs.activation as NativeActivation;
  const supported =
    nhwc(attrs) &&
    Object.hasOwn(ACTIVATIONS, activation) &&
    inputs['preluActivationWeights'] == null &&
    x.dtype === 'float32' &&
    filter.dtype === 'float32' &&
    // Only a per-channel bias maps onto oneDNN's; upstream's wasm kernel accepts only that too.
    (bias === null || (bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === filter.shape[3]));
  if (!supported) return null;
  const alpha = activation === 'leakyrelu' ? (attrs.leakyreluAlpha ?? 0.2) : 0;
  return forward(backend, x, filter, bias, attrs, activation, alpha);
}

/**
 * A wasm-only kernel returning [dW, db] from one oneDNN backward-weights call (diff_bias comes
 * free with the weights gradient). Inputs x, dy; attrs as Conv2DBackpropFilter (+ dilations).
 * Used by conv2dBiasAct's gradient.
 */
export const CONV2D_BACKPROP_FILTER_BIAS = 'SrganConv2DBackpropFilterBias';

const conv2dBackpropFilterBias: tf.KernelFunc = (args) => {
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const x = args.inputs['x']!;
  const dy = args.inputs['dy']!;
  if (!nhwc(attrs)) throw new SrganError('SRGAN_ERR_BACKEND', `${CONV2D_BACKPROP_FILTER_BIAS}: only NHWC is supported`);
  const out = backpropFilter(backend, x, dy, attrs, true);
  if (out === null) {
    throw new SrganError('SRGAN_ERR_BACKEND', `${CONV2D_BACKPROP_FILTER_BIAS}: geometry not expressible in oneDNN`);
  }
  return out;
};

/**
 * conv2dBiasAct's forward kernel (CONV2D_BIAS_ACT, wasm only): FusedConv2D's arguments, with a
 * registered gradient (tfjs' own FusedConv2D has none: tf.fused.conv2d wraps it in a customGrad that
 * always computes dx).
 */
const conv2dBiasActKernel: tf.KernelFunc = (args) => {
  const attrs = args.attrs as unknown as FusedAttrs;
  const out = fusedConv2dOrNull(args, attrs);
  if (out === null) throw new SrganError('SRGAN_ERR_BACKEND', `${CONV2D_BIAS_ACT}: arguments not supported natively`);
  return out;
};

/** Kernels registerNativeKernels installs on the wasm backend. */
export const NATIVE_KERNELS: readonly tf.KernelConfig[] = [
  { kernelName: tf.Conv2D, backendName: 'wasm', kernelFunc: conv2d },
  { kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2dBackpropInput },
  { kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2dBackpropFilter },
  { kernelName: tf.FusedConv2D, backendName: 'wasm', kernelFunc: fusedConv2d },
  { kernelName: CONV2D_BACKPROP_FILTER_BIAS, backendName: 'wasm', kernelFunc: conv2dBackpropFilterBias },
  { kernelName: CONV2D_BIAS_ACT, backendName: 'wasm', kernelFunc: conv2dBiasActKernel },
  ...TRAIN_KERNELS,
  ...COPY_KERNELS,
  ADAM_KERNEL,
];

const isOurs = (config: tf.KernelConfig | undefined): boolean =>
  config !== undefined && NATIVE_KERNELS.some((k) => k.kernelFunc === config.kernelFunc);

/** True when the active backend runs our native conv-gradient kernels (so dilated gradients are safe). */
export function nativeKernelsActive(): boolean {
  const backendName = tf.getBackend();
  return (
    tf.getKernel(tf.Conv2DBackpropInput, backendName)?.kernelFunc === conv2dBackpropInput &&
    tf.getKernel(tf.Conv2DBackpropFilter, backendName)?.kernelFunc === conv2dBackpropFilter
  );
}

const same = (v: number | [number, number] | undefined): boolean =>
  v === undefined || (typeof v === 'number' ? v === 1 : v[0] === 1 && v[1] === 1);

/**
 * Conv2D's gradient: the two backprop kernels, with a `dilations` attr, which tfjs' own gradient
 * kernels lack and ours honour. Dilation > 1 is served here only while our kernels are the active
 * backend's; otherwise it goes to the gradient that was registered before ours (gradients.ts has one,
 * upstream's refuses). Dilation 1 is always served here, never delegated: a gradient that keeps us as
 * its own "previous" for dilation 1 (gradients.ts does) would otherwise bounce back and forth forever.
 */
const conv2dGrad: tf.GradConfig = {
  kernelName: tf.Conv2D,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const a = attrs as unknown as ConvAttrs;
    if (!same(a.dilations) && !nativeKernelsActive()) {
      if (previousConv2DGrad === undefined) {
        throw new SrganError('SRGAN_ERR_BACKEND', 'Conv2D gradient with dilation > 1 needs the native kernels');
      }
      return previousConv2DGrad.gradFunc(dy, saved, attrs);
    }
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const common = { strides: a.strides, pad: a.pad, dataFormat: a.dataFormat, dimRoundingMode: a.dimRoundingMode, dilations: a.dilations };
    const run = (name: string, inputs: tf.NamedTensorMap, extra: object) =>
      tf.engine().runKernel(name, inputs, { ...common, ...extra } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return {
      x: () => run(tf.Conv2DBackpropInput, { dy: dy as tf.Tensor, filter }, { inputShape: x.shape }),
      filter: () => run(tf.Conv2DBackpropFilter, { x, dy: dy as tf.Tensor }, { filterShape: filter.shape }),
    };
  },
};

// ---------------------------------------------------------------------------------------------------
// conv2dBiasAct's gradient: dW + db in one backward-weights call

/**
 * The bias gradient that a filter thunk computed together with dW, kept until the bias thunk of the
 * same node claims it. The engine runs all thunks of one node before the next node's gradFunc, so
 * one still pending at the next gradFunc (or after the synchronous backward pass, via a microtask)
 * was not wanted (the bias was off the gradient path) and is dropped.
 */
let pendingBiasGrad: tf.Tensor | null = null;

function dropPendingBiasGrad(): void {
  if (pendingBiasGrad !== null && !pendingBiasGrad.isDisposed) pendingBiasGrad.dispose();
  pendingBiasGrad = null;
}

const conv2dBiasActGrad: tf.GradConfig = {
  kernelName: CONV2D_BIAS_ACT,
  inputsToSave: ['x', 'filter'],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    dropPendingBiasGrad();
    const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const a = attrs as unknown as FusedAttrs;
    const dyT = dy as tf.Tensor4D;
    // dy through the activation, from the saved output (its sign is the pre-activation's for slopes
    // ≥ 0). Made here, in the backward pass's scope, so that all three thunks can share it.
    // One kernel (y > 0 ? dy : α·dy) where ours is registered, tf.step's two ops elsewhere.
    let g: tf.Tensor4D = dyT;
    if (a.activation === 'relu' || a.activation === 'leakyrelu') {
      const alpha = a.activation === 'relu' ? 0 : (a.leakyreluAlpha ?? 0.2);
      g =
        tf.getKernel(LEAKY_RELU_GRAD, tf.getBackend()) != null
          ? (tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: dyT, x: y }, { alpha }) as tf.Tensor4D)
          : tf.mul(dyT, tf.step(y, alpha));
    }
    const common = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dimRoundingMode: a.dimRoundingMode, dilations: a.dilations };
    const run = (name: string, inputs: tf.NamedTensorMap, extra: object) =>
      tf.engine().runKernel(name, inputs, { ...common, ...extra } as unknown as tf.NamedAttrMap);
    return {
      x: () => run(tf.Conv2DBackpropInput, { dy: g, filter }, { inputShape: x.shape }) as tf.Tensor,
      filter: () => {
        const [dw, db] = run(CONV2D_BACKPROP_FILTER_BIAS, { x, dy: g }, { filterShape: filter.shape }) as tf.Tensor[];
        pendingBiasGrad = tf.keep(db);
        queueMicrotask(dropPendingBiasGrad);
        return dw;
      },
      bias: () => {
        if (pendingBiasGrad === null) return tf.sum(g, [0, 1, 2]);
        // A clone shares the data and is tracked like any gradient; the kept original is released.
        const db = pendingBiasGrad.clone();
        dropPendingBiasGrad();
        return db;
      },
    };
  },
};

/**
 * Loads the addon and (re)registers our wasm kernels (NATIVE_KERNELS: the convolutions,
 * conv2dBiasAct's, and the small ops of train-ops.ts, copy.ts and adam.ts), with
 * conv2dBiasAct's and the batch norm's gradients, a Conv2D gradient that allows dilation > 1 on our
 * kernels, Relu / LeakyRelu gradients on our kernel, and the native Adam update. Remembers what it
 * replaced (unregisterNativeKernels restores it). Idempotent. Throws SrganError SRGAN_ERR_BACKEND
 * when the addon is unavailable (see loadNativeKernels).
 */
export function registerNativeKernels(): void {
  addon();
  for (const config of NATIVE_KERNELS) {
    const current = tf.getKernel(config.kernelName, config.backendName);
    if (!isOurs(current)) previousKernels.set(config.kernelName, current);
    if (current !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  }
  if (tf.getGradient(CONV2D_BIAS_ACT)?.gradFunc !== conv2dBiasActGrad.gradFunc) {
    if (tf.getGradient(CONV2D_BIAS_ACT) !== undefined) tf.unregisterGradient(CONV2D_BIAS_ACT);
    tf.registerGradient(conv2dBiasActGrad);
  }
  const grad = tf.getGradient(tf.Conv2D);
  if (grad?.gradFunc !== conv2dGrad.gradFunc) {
    previousConv2DGrad = grad;
    if (grad !== undefined) tf.unregisterGradient(tf.Conv2D);
    tf.registerGradient(conv2dGrad);
  }
  registerTrainGradients();
  installNativeAdam();
}

/**
 * Puts back the kernels, the Conv2D, Relu and LeakyRelu gradients and Adam's update that
 * registerNativeKernels replaced. Idempotent.
 */
export function unregisterNativeKernels(): void {
  for (const config of NATIVE_KERNELS) {
    const current = tf.getKernel(config.kernelName, config.backendName);
    if (!isOurs(current)) continue;
    tf.unregisterKernel(config.kernelName, config.backendName);
    const before = previousKernels.get(config.kernelName);
    if (before !== undefined) tf.registerKernel(before);
  }
  if (tf.getGradient(tf.Conv2D)?.gradFunc === conv2dGrad.gradFunc) {
    tf.unregisterGradient(tf.Conv2D);
    if (previousConv2DGrad !== undefined) tf.registerGradient(previousConv2DGrad);
  }
  unregisterTrainGradients();
  uninstallNativeAdam();
}
