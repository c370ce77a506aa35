// Convolution-gradient kernels for the tfjs `wasm` backend, written as ordinary tf ops so that all
// heavy work lands on XNNPACK's forward convolution (20–25 GFLOP/s on one thread). See
// docs/backends.md, "Fast formulations".
//
//  - wasm has no Conv2DBackpropFilter at all, and its Conv2DBackpropInput is a naive C++ loop
//    (~1 GFLOP/s). Both are replaced here.
//  - Scope: NHWC, dilation 1 (the attrs of these two kernels carry no dilations: tfjs-core's Conv2D
//    gradient refuses dilation > 1 before calling them), any strides, 'same' / 'valid' / numeric /
//    explicit padding, any dimRoundingMode.
//
// Kernel-call invariants: a kernelFunc runs with the tape off (the engine bumps kernelDepth), so the
// ops below are not recorded; everything but the result is created and freed inside one tf.tidy, and
// the result is returned as a Tensor, which the engine passes through unchanged.

import * as tf from '@tensorflow/tfjs-core';
import { SrganError } from '../../util/errors.js';
import { spreadOnGrid } from '../archs/ops.js';

type PadAttr = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type RoundingAttr = 'floor' | 'round' | 'ceil' | undefined;

interface ConvGradAttrs {
  strides: number | [number, number];
  pad: PadAttr;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode: RoundingAttr;
}

/** Geometry of the forward convolution whose gradient is asked for. */
interface ForwardGeometry {
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  kH: number;
  kW: number;
  sH: number;
  sW: number;
  top: number;
  left: number;
}

function forwardGeometry(
  kernelName: string,
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: ConvGradAttrs,
): ForwardGeometry {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName} (wasm, srgan): only NHWC is supported, got ${attrs.dataFormat}`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    inH: info.inHeight,
    inW: info.inWidth,
    outH: info.outHeight,
    outW: info.outWidth,
    kH: info.filterHeight,
    kW: info.filterWidth,
    sH: info.strideHeight,
    sW: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

/**
 * The engine passes Tensors. Accept a bare TensorInfo too (backends' own kernels call each other
 * that way): wrap it with a reference of our own, pushed on `owned` for the caller to drop.
 */
function asTensor(info: tf.TensorInfo | undefined, name: string, kernelName: string, owned: tf.Tensor[]): tf.Tensor {
  if (info == null) throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName}: missing input '${name}'`);
  if (info instanceof tf.Tensor) return info as tf.Tensor; // instanceof narrows to Tensor<any>
  const backend = tf.backend() as unknown as { incRef(dataId: tf.DataId): void };
  backend.incRef(info.dataId);
  const t = tf.engine().makeTensorFromTensorInfo(info);
  owned.push(t);
  return t;
}

/** Runs `fn` in a tidy and then drops the references asTensor took. */
function withOwned<T extends tf.Tensor>(owned: tf.Tensor[], fn: () => T): T {
  try {
    return tf.tidy(fn);
  } finally {
    for (const t of owned) t.dispose();
  }
}

/**
 * A stride-1 'valid' convolution of `x` after padding it spatially by (top, bottom, left, right).
 * Positive pads are handed to the convolution itself (no copy); a negative pad means "this many
 * rows/cols are not needed". Those are not cut from the (large) input: the convolution then yields
 * extra output rows/cols, and the (smaller) output is cut instead.
 */
function convPadded(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  pads: { top: number; bottom: number; left: number; right: number },
  dilations: [number, number],
  outH: number,
  outW: number,
): tf.Tensor4D {
  const explicit: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(pads.top, 0), Math.max(pads.bottom, 0)],
    [Math.max(pads.left, 0), Math.max(pads.right, 0)],
    [0, 0],
  ];
  const y = tf.conv2d(x, filter, 1, explicit, 'NHWC', dilations);
  const offH = Math.max(-pads.top, 0);
  const offW = Math.max(-pads.left, 0);
  if (offH === 0 && offW === 0 && y.shape[1] === outH && y.shape[2] === outW) return y;
  return tf.slice(y, [0, offH, offW, 0], [-1, outH, outW, -1]);
}

/**
 * dW = one forward convolution with the batch as the channel axis:
 * input pad(x) as [Cin, Hp, Wp, N], filter dy as [OH, OW, N, Cout], strides 1, dilations = forward
 * strides; the [Cin, KH, KW, Cout] result is transposed to [KH, KW, Cin, Cout].
 */
const backpropFilter: tf.KernelFunc = ({ inputs, attrs }) => {
  const name = tf.Conv2DBackpropFilter;
  const owned: tf.Tensor[] = [];
  const x = asTensor(inputs['x'], 'x', name, owned) as tf.Tensor4D;
  const dy = asTensor(inputs['dy'], 'dy', name, owned) as tf.Tensor4D;
  const a = attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
  const g = forwardGeometry(name, x.shape, a.filterShape, a);
  return withOwned(owned, () => {
    const xT = tf.transpose(x, [3, 1, 2, 0]);
    const dyT = tf.transpose(dy, [1, 2, 0, 3]);
    // Rows the forward pass touched: -top .. (OH-1)*sH + KH - 1 - top.
    const pads = {
      top: g.top,
      bottom: (g.outH - 1) * g.sH + g.kH - g.top - g.inH,
      left: g.left,
      right: (g.outW - 1) * g.sW + g.kW - g.left - g.inW,
    };
    const dw = convPadded(xT, dyT, pads, [g.sH, g.sW], g.kH, g.kW);
    return tf.transpose(dw, [1, 2, 0, 3]);
  });
};

/**
 * dx = forward convolution of dy (zero-inserted when stride > 1) with the filter reversed in both
 * spatial axes and in/out channels swapped, padded by (KH − 1 − top) before and the rest after.
 */
const backpropInput: tf.KernelFunc = ({ inputs, attrs }) => {
  const name = tf.Conv2DBackpropInput;
  const owned: tf.Tensor[] = [];
  const dy = asTensor(inputs['dy'], 'dy', name, owned) as tf.Tensor4D;
  const filter = asTensor(inputs['filter'], 'filter', name, owned) as tf.Tensor4D;
  const a = attrs as unknown as ConvGradAttrs & { inputShape: [number, number, number, number] };
  const g = forwardGeometry(name, a.inputShape, filter.shape, a);
  return withOwned(owned, () => {
    const wT = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    // Zero-inserted dy has length (O-1)*s + 1. Output row i reads rows i + top - (K-1) .. i + top.
    let top = g.kH - 1 - g.top;
    let bottom = g.inH + g.top - ((g.outH - 1) * g.sH + 1);
    let left = g.kW - 1 - g.left;
    let right = g.inW + g.left - ((g.outW - 1) * g.sW + 1);
    let z: tf.Tensor4D = dy;
    if (g.sH > 1 || g.sW > 1) {
      // Interleave s-1 zeros per element with one pad of a 6-D view. Each element gets `lead`
      // zeros before and s-1-lead after; put as many as the padding allows in front, so the
      // zeros that stick out beyond (O-1)*s + 1 replace padding instead of adding rows.
      const leadH = Math.min(Math.max(top, 0), g.sH - 1);
      const leadW = Math.min(Math.max(left, 0), g.sW - 1);
      z = spreadOnGrid(dy, [g.sH, g.sW], [leadH, leadW]);
      top -= leadH;
      bottom -= g.sH - 1 - leadH;
      left -= leadW;
      right -= g.sW - 1 - leadW;
    }
    return convPadded(z, wT, { top, bottom, left, right }, [1, 1], g.inH, g.inW);
  });
};

/** Kernels this module registers for the wasm backend. */
export const WASM_KERNELS: readonly tf.KernelConfig[] = [
  { kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: backpropFilter },
  { kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: backpropInput },
];

/**
 * Registers our wasm kernels, replacing any kernel already registered under the same name (tfjs
 * warns and keeps the old one otherwise). Idempotent.
 */
export function registerWasmKernels(): void {
  for (const config of WASM_KERNELS) {
    if (tf.getKernel(config.kernelName, config.backendName) != null) {
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
    tf.registerKernel(config);
  }
}
