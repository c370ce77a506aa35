// The small training ops of the "wasm + native" rung: after the convolutions moved to oneDNN, half of a
// step was these (docs/backends.md, "The reference step"). Kernels for the tfjs `wasm` backend over our
// addon's loops (native/src/train_ops.h), and the gradients that use them; kernels.ts registers them
// with the conv kernels and removes them again.
//
//  - SrganBatchNormAct (fused.ts's batchNormActTraining) and its gradient kernel: training-mode batch
//    norm + LeakyReLU, forward in two passes, backward (dx, dγ, dβ) in two, replacing ~25 tf ops
//    (moments, scale/shift, LeakyReLU, and all their gradients) per layer.
//  - LeakyRelu (replaces wasm's, a scalar loop) and Relu, and SrganLeakyReluGrad, which the Relu and LeakyRelu
//    gradients use while it is registered (upstream's are 2–3 full-size ops each).
//  - MaxPoolGrad (replaces wasm's: ~35 ms for a [4, 128, 128, 32] input).
// Data movement (transposes, slices, concatenation, Identity) is in copy.ts.
//
// Kernel-call invariants, as in kernels.ts: outputs are allocated with makeOutput before the addon call
// reads the heap; inputs are never written; unsupported arguments go to the kernel ours replaced.

import * as tf from '@tensorflow/tfjs-core';

import { SrganError } from '../../../util/errors.js';
import { BATCH_NORM_ACT } from '../../archs/fused.js';
import { callOp, size, type WasmBackend } from './addon.js';
import { fallback } from './replaced-kernels.js';

/** Inputs dy, x, gamma, beta, mean, variance (BATCH_NORM_ACT's attrs) → dx, dgamma, dbeta. */
export const BATCH_NORM_ACT_GRAD = 'SrganBatchNormActGrad';
/** Inputs dy, x; attr alpha → dx = x > 0 ? dy : alpha·dy. */
export const LEAKY_RELU_GRAD = 'SrganLeakyReluGrad';

interface NormAttrs {
  eps: number;
  activation: 'linear' | 'leakyrelu';
  alpha: number;
}

/** [rows, c, act] and the float words of the batch-norm parameter block (addon.cc). */
function normBlock(x: tf.TensorInfo, attrs: NormAttrs, kernelName: string): { ints: number[]; floats: Array<[number, number]> } {
  if (attrs.activation !== 'linear' && attrs.activation !== 'leakyrelu') {
    throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: activation must be 'linear' or 'leakyrelu', got ${String(attrs.activation)}`);
  }
  const c = x.shape[x.shape.length - 1] ?? 1;
  const rows = c === 0 ? 0 : size(x.shape) / c;
  return {
    ints: [rows, c, attrs.activation === 'leakyrelu' ? 1 : 0],
    floats: [
      [3, attrs.alpha],
      [4, attrs.eps],
    ],
  };
}

function checkNormInputs(kernelName: string, x: tf.TensorInfo, perChannel: Array<[string, tf.TensorInfo]>): void {
  const c = x.shape[x.shape.length - 1];
  if (x.shape.length < 1) throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: x must have a channel axis`);
  for (const [name, t] of [['x', x] as [string, tf.TensorInfo], ...perChannel]) {
    if (t.dtype !== 'float32') throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: ${name} must be float32, got ${t.dtype}`);
  }
  for (const [name, t] of perChannel) {
    if (t.shape.length !== 1 || t.shape[0] !== c) {
      throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: ${name} must have shape [${c}], got [${t.shape}]`);
    }
  }
}

const batchNormAct: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackend;
  const { x, gamma, beta } = inputs as Record<'x' | 'gamma' | 'beta', tf.TensorInfo>;
  checkNormInputs(BATCH_NORM_ACT, x, [
    ['gamma', gamma],
    ['beta', beta],
  ]);
  const { ints, floats } = normBlock(x, attrs as unknown as NormAttrs, BATCH_NORM_ACT);
  const c = ints[1];
  const y = b.makeOutput([...x.shape], 'float32');
  const mean = b.makeOutput([c], 'float32');
  const variance = b.makeOutput([c], 'float32');
  if (ints[0] === 0 || c === 0) {
    // Statistics of nothing, as tf.moments gives them.
    b.typedArrayFromHeap(mean).fill(NaN);
    b.typedArrayFromHeap(variance).fill(NaN);
  } else {
    callOp(b, 'batchNormForward', ints, floats, 5, [x, gamma, beta, y, mean, variance]);
  }
  return [y, mean, variance];
};

const batchNormActGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackend;
  const { dy, x, gamma, beta, mean, variance } = inputs as Record<'dy' | 'x' | 'gamma' | 'beta' | 'mean' | 'variance', tf.TensorInfo>;
  checkNormInputs(BATCH_NORM_ACT_GRAD, x, [
    ['gamma', gamma],
    ['beta', beta],
    ['mean', mean],
    ['variance', variance],
  ]);
  if (!tf.util.arraysEqual(dy.shape, x.shape) || dy.dtype !== 'float32') {
    throw new SrganError('SRGAN_ERR_BACKEND', `${BATCH_NORM_ACT_GRAD}: dy must be float32 of x's shape [${x.shape}], got [${dy.shape}]`);
  }
  const { ints, floats } = normBlock(x, attrs as unknown as NormAttrs, BATCH_NORM_ACT_GRAD);
  const c = ints[1];
  const dx = b.makeOutput([...x.shape], 'float32');
  const dgamma = b.makeOutput([c], 'float32');
  const dbeta = b.makeOutput([c], 'float32');
  if (ints[0] === 0 || c === 0) {
    b.typedArrayFromHeap(dgamma).fill(0);
    b.typedArrayFromHeap(dbeta).fill(0);
  } else {
    callOp(b, 'batchNormBackward', ints, floats, 5, [x, dy, gamma, beta, mean, variance, dx, dgamma, dbeta]);
  }
  return [dx, dgamma, dbeta];
};

/**
 * One kernel gives all three gradients, so it runs when the engine asks for them (not in a thunk):
 * x always needs its gradient (it is a conv's output), and dγ, dβ are the sums dx needs anyway. A
 * result no thunk claims is disposed with the backward pass's scope.
 */
const batchNormActGrad: tf.GradConfig = {
  kernelName: BATCH_NORM_ACT,
  inputsToSave: ['x', 'gamma', 'beta'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    // dys[1] and dys[2] (the statistics') are zeros unless a caller differentiated through them,
    // which fused.ts rules out.
    const dy = Array.isArray(dys) ? dys[0] : dys;
    const [x, gamma, beta, mean, variance] = saved;
    const [dx, dgamma, dbeta] = tf
      .engine()
      .runKernel(BATCH_NORM_ACT_GRAD, { dy, x: x, gamma: gamma, beta: beta, mean: mean, variance: variance }, attrs) as tf.Tensor[];
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
  },
};

const leakyRelu: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  if (x.dtype !== 'float32') return fallback(tf.LeakyRelu, args);
  const { alpha } = args.attrs as unknown as { alpha: number };
  const y = b.makeOutput([...x.shape], 'float32');
  if (size(x.shape) > 0) callOp(b, 'leakyRelu', [size(x.shape)], [[1, alpha]], 5, [x, y]);
  return y;
};

const relu: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  if (x.dtype !== 'float32') return fallback(tf.Relu, args);
  const y = b.makeOutput([...x.shape], 'float32');
  if (size(x.shape) > 0) callOp(b, 'leakyRelu', [size(x.shape)], [[1, 0]], 5, [x, y]);
  return y;
};

const leakyReluGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as unknown as WasmBackend;
  const { dy, x } = inputs as Record<'dy' | 'x', tf.TensorInfo>;
  if (!tf.util.arraysEqual(dy.shape, x.shape) || dy.dtype !== 'float32' || x.dtype !== 'float32') {
    throw new SrganError(
      'SRGAN_ERR_BACKEND',
      `${LEAKY_RELU_GRAD}: dy and x must be float32 of one shape, got [${dy.shape}] and [${x.shape}]`,
    );
  }
  const dx = b.makeOutput([...x.shape], 'float32');
  if (size(x.shape) > 0) callOp(b, 'leakyReluGrad', [size(x.shape)], [[1, (attrs as unknown as { alpha: number }).alpha]], 5, [x, dy, dx]);
  return dx;
};

/** The Relu / LeakyRelu gradients that ours replaced; used whenever our gradient kernel is not active. */
const previousGrads = new Map<string, tf.GradConfig | undefined>();

const gradKernelActive = (): boolean => tf.getKernel(LEAKY_RELU_GRAD, tf.getBackend()) != null;

/** dx = x > 0 ? dy : alpha·dy in one kernel (alpha 0 for Relu), upstream's gradient elsewhere. */
function activationGrad(kernelName: string, alphaOf: (attrs: tf.NamedAttrMap) => number): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      if (!gradKernelActive() || x.dtype !== 'float32') {
        const before = previousGrads.get(kernelName);
        if (before === undefined) throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: no gradient to fall back to`);
        return before.gradFunc(dy, saved, attrs);
      }
      return {
        x: () => tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: dy as tf.Tensor, x }, { alpha: alphaOf(attrs) }) as tf.Tensor,
      };
    },
  };
}

const ACTIVATION_GRADS: readonly tf.GradConfig[] = [
  activationGrad(tf.Relu, () => 0),
  activationGrad(tf.LeakyRelu, (attrs) => (attrs as unknown as { alpha: number }).alpha),
];

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const maxPoolGrad: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const { dy, input } = args.inputs as Record<'dy' | 'input', tf.TensorInfo>;
  if (dy.dtype !== 'float32' || input.dtype !== 'float32' || input.shape.length !== 4) return fallback(tf.MaxPoolGrad, args);
  const a = args.attrs as unknown as PoolAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new SrganError('SRGAN_ERR_BACKEND', `${tf.MaxPoolGrad} (wasm, native): dy has shape [${dy.shape}], expected [${info.outShape}]`);
  }
  const dx = b.makeOutput([...input.shape], 'float32');
  if (size(input.shape) === 0) return dx;
  if (size(dy.shape) === 0) {
    b.typedArrayFromHeap(dx).fill(0);
    return dx;
  }
  callOp(
    b,
    'maxPoolGrad',
    [
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.padInfo.top,
      info.padInfo.left,
    ],
    [],
    12,
    [input, dy, dx],
  );
  return dx;
};

/** Kernels kernels.ts registers (and unregisters) with the conv kernels. */
export const TRAIN_KERNELS: readonly tf.KernelConfig[] = [
  { kernelName: BATCH_NORM_ACT, backendName: 'wasm', kernelFunc: batchNormAct },
  { kernelName: BATCH_NORM_ACT_GRAD, backendName: 'wasm', kernelFunc: batchNormActGradKernel },
  { kernelName: tf.LeakyRelu, backendName: 'wasm', kernelFunc: leakyRelu },
  { kernelName: tf.Relu, backendName: 'wasm', kernelFunc: relu },
  { kernelName: LEAKY_RELU_GRAD, backendName: 'wasm', kernelFunc: leakyReluGradKernel },
  { kernelName: tf.MaxPoolGrad, backendName: 'wasm', kernelFunc: maxPoolGrad },
];

/** Installs the batch-norm gradient and our Relu / LeakyRelu gradients (remembering upstream's). Idempotent. */
export function registerTrainGradients(): void {
  if (tf.getGradient(BATCH_NORM_ACT)?.gradFunc !== batchNormActGrad.gradFunc) {
    if (tf.getGradient(BATCH_NORM_ACT) !== undefined) tf.unregisterGradient(BATCH_NORM_ACT);
    tf.registerGradient(batchNormActGrad);
  }
  for (const config of ACTIVATION_GRADS) {
    const current = tf.getGradient(config.kernelName);
    if (current?.gradFunc === config.gradFunc) continue;
    previousGrads.set(config.kernelName, current);
    if (current !== undefined) tf.unregisterGradient(config.kernelName);
    tf.registerGradient(config);
  }
}

/** Puts back the Relu / LeakyRelu gradients registerTrainGradients replaced. Idempotent. */
export function unregisterTrainGradients(): void {
  for (const config of ACTIVATION_GRADS) {
    if (tf.getGradient(config.kernelName)?.gradFunc !== config.gradFunc) continue;
    tf.unregisterGradient(config.kernelName);
    const before = previousGrads.get(config.kernelName);
    if (before !== undefined) tf.registerGradient(before);
  }
}
