// Data movement on the "wasm + native" rung: kernels for the tfjs `wasm` backend that move no more
// than they must. kernels.ts registers them with the other native kernels and removes them again.
//
//  - Transpose, Slice, SplitV, Concat and DepthToSpace for 4-byte types, each one native strided copy
//    per output (or per concatenated input): the pixel shuffle and its gradient, the generator's
//    channel concatenations and their gradients (SplitV), crops. wasm's Slice, which SplitV uses,
//    first copies its whole input out of the heap (readSync); its Concat and DepthToSpace are JS loops.
//  - Tile of rank ≤ 4, one native strided copy (each axis split into repeat × input, the input's
//    stride 0 along the repeats): the gradient of a mean over a batch tiles its scalar, and wasm's
//    Tile is a JS loop (6 ms of the 18 ms ESPCN reference step).
//  - Identity and same-dtype Cast share the input's buffer, as the cpu backend does, instead of copying
//    it: the engine clones every tensor a gradient saves, so on wasm every saved activation was copied.
//    Safe because tensors are immutable: no kernel writes its inputs, and a variable's assign swaps
//    its buffer rather than writing into it.
//
// Kernel-call invariants, as in kernels.ts: outputs are allocated with makeOutput before the addon call
// reads the heap; unsupported arguments (other dtypes, rank > 8, NCHW) go to the kernel ours replaced.

import * as tf from '@tensorflow/tfjs-core';

import { callOp, size, type WasmBackend } from './addon.js';
import { fallback } from './replaced-kernels.js';

const MAX_RANK = 8;

const copyable = (t: tf.TensorInfo): boolean =>
  (t.dtype === 'float32' || t.dtype === 'int32') && t.shape.length >= 1 && t.shape.length <= MAX_RANK;

/** Row-major strides of `shape`, in elements. */
function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    strides[k] = s;
    s *= shape[k];
  }
  return strides;
}

/**
 * y[yStart + Σ i_k·yStrides_k] = x[xStart + Σ i_k·xStrides_k] for every index i of `dims`, in one
 * native call (the addon checks that both sides stay inside their tensors).
 */
function stridedCopy(
  b: WasmBackend,
  x: tf.TensorInfo,
  xStart: number,
  xStrides: readonly number[],
  y: tf.TensorInfo,
  yStart: number,
  yStrides: readonly number[],
  dims: readonly number[],
): void {
  if (size(dims as number[]) === 0) return;
  const block = new Array<number>(29).fill(0);
  block[0] = dims.length;
  dims.forEach((d, k) => {
    block[1 + k] = d;
    block[9 + k] = xStrides[k]!;
    block[17 + k] = yStrides[k]!;
  });
  block[25] = xStart;
  block[26] = yStart;
  block[27] = size(x.shape);
  block[28] = size(y.shape);
  callOp(b, 'stridedCopy', block, [], 29, [x, y]);
}

const transpose: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  const { perm } = args.attrs as unknown as { perm: number[] };
  if (!copyable(x)) return fallback(tf.Transpose, args);
  const dims = perm.map((p) => x.shape[p]);
  const out = b.makeOutput(dims, x.dtype);
  const xStrides = stridesOf(x.shape);
  stridedCopy(
    b,
    x,
    0,
    perm.map((p) => xStrides[p]),
    out,
    0,
    stridesOf(dims),
    dims,
  );
  return out;
};

/** The part of x at `begin` of shape `dims` (resolved, no −1) as a new tensor. */
function sliceOf(b: WasmBackend, x: tf.TensorInfo, begin: readonly number[], dims: number[]): tf.TensorInfo {
  const out = b.makeOutput(dims, x.dtype);
  const xStrides = stridesOf(x.shape);
  const start = begin.reduce((acc, v, k) => acc + v * xStrides[k], 0);
  stridedCopy(b, x, start, xStrides, out, 0, stridesOf(dims), dims);
  return out;
}

const slice: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  if (!copyable(x)) return fallback(tf.Slice, args);
  const { begin, size: sizes } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
  const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, sizes);
  return sliceOf(b, x, begin_, size_);
};

const splitV: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  if (!copyable(x)) return fallback(tf.SplitV, args);
  const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, ax);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const dims = [...x.shape];
    dims[ax] = s;
    const part = sliceOf(b, x, begin, dims);
    begin[ax] += s;
    return part;
  });
};

const concat: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as SharingBackend;
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const first = inputs[0];
  if (!inputs.every((t) => copyable(t) && t.dtype === first.dtype && t.shape.length === first.shape.length)) {
    return fallback(tf.Concat, args);
  }
  const ax = tf.util.parseAxisParam((args.attrs as unknown as { axis: number | number[] }).axis, first.shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, ax);
  const outShape = tf.backend_util.computeOutShape(shapes, ax);
  const parts = inputs.filter((t) => size(t.shape) > 0);
  if (parts.length === 1) return share(b, parts[0], first.dtype);
  const out = b.makeOutput(outShape, first.dtype);
  const outStrides = stridesOf(outShape);
  let at = 0;
  for (const t of inputs) {
    stridedCopy(b, t, 0, stridesOf(t.shape), out, at * outStrides[ax], outStrides, t.shape);
    at += t.shape[ax];
  }
  return out;
};

const depthToSpace: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  const { blockSize: r, dataFormat } = args.attrs as unknown as { blockSize: number; dataFormat: 'NHWC' | 'NCHW' };
  if (!copyable(x) || x.shape.length !== 4 || dataFormat !== 'NHWC') return fallback(tf.DepthToSpace, args);
  const [n, h, w, cr2] = x.shape as [number, number, number, number];
  const c = cr2 / (r * r);
  const out = b.makeOutput([n, h * r, w * r, c], x.dtype);
  // out[n, h·r + i, w·r + j, ch] = x[n, h, w, (i·r + j)·C + ch]: out in order (n, h, i, w, j, ch).
  const dims = [n, h, r, w, r, c];
  const xStrides = [h * w * cr2, w * cr2, r * c, cr2, c, 1];
  stridedCopy(b, x, 0, xStrides, out, 0, stridesOf(dims), dims);
  return out;
};

const tile: tf.KernelFunc = (args) => {
  const b = args.backend as unknown as WasmBackend;
  const x = args.inputs['x']!;
  const { reps } = args.attrs as unknown as { reps: number[] };
  if (!copyable(x) || x.shape.length > MAX_RANK / 2 || reps.length !== x.shape.length) return fallback(tf.Tile, args);
  const outShape = x.shape.map((d, k) => d * reps[k]);
  const out = b.makeOutput(outShape, x.dtype);
  // out[.., r·d_k + i, ..] = x[.., i, ..]: out in order (r_0, i_0, r_1, i_1, ...).
  const xStrides = stridesOf(x.shape);
  const outStrides = stridesOf(outShape);
  const dims = x.shape.flatMap((d, k) => [reps[k], d]);
  const inStrides = x.shape.flatMap((_, k) => [0, xStrides[k]]);
  const yStrides = x.shape.flatMap((d, k) => [d * outStrides[k], outStrides[k]]);
  stridedCopy(b, x, 0, inStrides, out, 0, yStrides, dims);
  return out;
};

type SharingBackend = WasmBackend & { incRef(dataId: tf.DataId): void };

/** A new handle on the same buffer, as the cpu backend does (tensors are immutable). */
function share(backend: SharingBackend, x: tf.TensorInfo, dtype: tf.DataType): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype };
}

const identity: tf.KernelFunc = (args) => {
  const x = args.inputs['x']!;
  if (x.dtype === 'string') return fallback(tf.Identity, args);
  return share(args.backend as unknown as SharingBackend, x, x.dtype);
};

const cast: tf.KernelFunc = (args) => {
  const x = args.inputs['x']!;
  const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
  if (x.dtype !== dtype || dtype === 'string' || dtype === 'complex64') return fallback(tf.Cast, args);
  return share(args.backend as unknown as SharingBackend, x, dtype);
};

/** Kernels kernels.ts registers (and unregisters) with the conv kernels. */
export const COPY_KERNELS: readonly tf.KernelConfig[] = [
  { kernelName: tf.Transpose, backendName: 'wasm', kernelFunc: transpose },
  { kernelName: tf.Slice, backendName: 'wasm', kernelFunc: slice },
  { kernelName: tf.SplitV, backendName: 'wasm', kernelFunc: splitV },
  { kernelName: tf.Concat, backendName: 'wasm', kernelFunc: concat },
  { kernelName: tf.DepthToSpace, backendName: 'wasm', kernelFunc: depthToSpace },
  { kernelName: tf.Tile, backendName: 'wasm', kernelFunc: tile },
  { kernelName: tf.Identity, backendName: 'wasm', kernelFunc: identity },
  { kernelName: tf.Cast, backendName: 'wasm', kernelFunc: cast },
];
