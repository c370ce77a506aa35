// The native oneDNN addon (native/) as seen from JS: loading it into this thread, its settings, and
// the calling convention of its kernels. The tfjs kernels built on it are in kernels.ts.
//
// Zero-copy: tensors stay in the wasm heap. A kernel allocates its outputs with the backend's
// makeOutput FIRST, then calls callAddon, which reads `backend.wasm.HEAPU8` (allocation may grow the
// wasm memory, which detaches the old ArrayBuffer and makes Emscripten replace HEAPU8) and hands the
// addon that view plus the byte offsets of inputs and outputs. The addon uses the pointers only during
// the synchronous call and bounds-checks every offset against the view's length.
//
// Invariant: one addon instance per thread (N-API instance data: its own oneDNN engine, stream and
// plan cache), loaded lazily by loadNativeKernels; it loads in worker threads too (the trainer runs in
// one). The parameter block below is module state, which is per thread as well.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs-core';

import { SrganError } from '../../../util/errors.js';

/** Must equal kAbi in native/src/addon.cc; a mismatch means a stale build. */
const ADDON_ABI = 3;
/** Parameter block layout shared with native/src/addon.cc (see its header). */
const P = { geometry: 0, offsets: 17, activation: 21, alpha: 22, count: 24 } as const;

/** Activation codes of the parameter block; 'leakyrelu' is relu with a slope. */
export const ACTIVATIONS = { linear: 0, relu: 1, leakyrelu: 1, relu6: 2, elu: 3, sigmoid: 4 } as const;
export type NativeActivation = keyof typeof ACTIVATIONS;

export interface Addon {
  abi: number;
  version(): string;
  configure(threads: number, layout: 0 | 1, precision: 0 | 1): void;
  conv2d(heap: Uint8Array, params: Int32Array): void;
  conv2dBackpropInput(heap: Uint8Array, params: Int32Array): void;
  conv2dBackpropFilter(heap: Uint8Array, params: Int32Array): void;
  batchNormForward(heap: Uint8Array, params: Int32Array): void;
  batchNormBackward(heap: Uint8Array, params: Int32Array): void;
  leakyRelu(heap: Uint8Array, params: Int32Array): void;
  leakyReluGrad(heap: Uint8Array, params: Int32Array): void;
  maxPoolGrad(heap: Uint8Array, params: Int32Array): void;
  adam(heap: Uint8Array, params: Int32Array): void;
  stridedCopy(heap: Uint8Array, params: Int32Array): void;
  stats(): NativeStats;
  clear(): void;
}

/** What the addon has cached in this thread: plans (one per op and geometry) and their reorder buffers. */
export interface NativeStats {
  plans: number;
  innerBytes: number;
  threads: number;
  /** One line per plan: op, shapes, oneDNN implementation. */
  describe: string[];
}

/** The parts of tfjs-backend-wasm's BackendWasm we use (its typings are not exported from the package root). */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

export interface NativeOptions {
  /** oneDNN (OpenMP) threads for calls from this thread. Default os.availableParallelism(). */
  threads?: number;
  /**
   * How activations reach oneDNN: 'nhwc' (default) hands tfjs' NHWC buffers to the primitives as they
   * are; 'any' lets oneDNN pick blocked layouts and reorders in and out on every call (a bench knob).
   */
  layout?: 'nhwc' | 'any';
  /**
   * What convolutions compute in: 'fp32' (default), or 'bf16': inputs converted to bfloat16, fp32
   * accumulation and outputs (docs/native.md, "bf16"). bf16 is refused where the CPU has no bf16 units.
   */
  precision?: NativePrecision;
}

export type NativePrecision = 'fp32' | 'bf16';

/** This thread's settings, applied at load and by configureNative. */
let current: Required<NativeOptions> = { threads: availableParallelism(), layout: 'nhwc', precision: 'fp32' };

export type NativeLoadResult = { ok: true; version: string } | { ok: false; reason: string };

let loaded: { addon: Addon; version: string } | { reason: string } | undefined;
const params = new Int32Array(P.count);
const paramsF32 = new Float32Array(params.buffer);

/** Where the build puts the addon (relative to this module, so it holds for src/ and dist/ alike). */
export function nativeAddonPath(): string {
  return fileURLToPath(new URL('../../../../native/build/Release/srgan_dnnl.node', import.meta.url));
}

/**
 * Loads the addon into this thread (once; later calls return the first result) and sets oneDNN's
 * threads to os.availableParallelism(). Never throws: `reason` says why the rung is unavailable.
 */
export function loadNativeKernels(): NativeLoadResult {
  if (loaded === undefined) loaded = tryLoad(nativeAddonPath());
  return 'addon' in loaded ? { ok: true, version: loaded.version } : { ok: false, reason: loaded.reason };
}

/** loadNativeKernels' check on any path, without keeping the result (for tests of the failure reasons). */
export function probeNativeAddon(path: string): NativeLoadResult {
  const r = tryLoad(path);
  return 'addon' in r ? { ok: true, version: r.version } : { ok: false, reason: r.reason };
}

function tryLoad(path: string): { addon: Addon; version: string } | { reason: string } {
  if (!existsSync(path)) {
    return {
      reason: `native addon not built (${path} missing): needs libdnnl-dev at install, then \`npm run build:native\``,
    };
  }
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (err) {
    return { reason: `native addon failed to load (dlopen): ${err instanceof Error ? err.message : String(err)}` };
  }
  if (addon.abi !== ADDON_ABI) {
    return { reason: `native addon is stale (ABI ${String(addon.abi)}, expected ${ADDON_ABI}): run \`npm run build:native\`` };
  }
  try {
    addon.configure(current.threads, current.layout === 'any' ? 1 : 0, current.precision === 'bf16' ? 1 : 0);
    return { addon, version: addon.version() };
  } catch (err) {
    return { reason: `native addon failed to initialise: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The loaded addon; throws SrganError SRGAN_ERR_BACKEND with the load failure's reason otherwise. */
export function addon(): Addon {
  const r = loadNativeKernels();
  if (!r.ok) throw new SrganError('SRGAN_ERR_BACKEND', r.reason);
  return (loaded as { addon: Addon }).addon;
}

/** The addon's plan cache in this thread (for tests and the bench). Throws SRGAN_ERR_BACKEND when not loaded. */
export function nativeStats(): NativeStats {
  return addon().stats();
}

/**
 * Changes the addon's settings for this thread (unset fields keep their value). Throws SRGAN_ERR_BACKEND
 * when not loaded, or when bf16 is asked for on a CPU without bf16 units (naming the ISA oneDNN found);
 * the settings are unchanged then.
 */
export function configureNative(options: NativeOptions): void {
  const next = { ...current, ...options };
  if (!Number.isInteger(next.threads) || next.threads < 1) {
    throw new RangeError(`configureNative: threads must be a positive integer, got ${JSON.stringify(options.threads)}`);
  }
  if (next.layout !== 'nhwc' && next.layout !== 'any') {
    throw new RangeError(`configureNative: layout must be 'nhwc' or 'any', got ${JSON.stringify(options.layout)}`);
  }
  if (next.precision !== 'fp32' && next.precision !== 'bf16') {
    throw new RangeError(`configureNative: precision must be 'fp32' or 'bf16', got ${JSON.stringify(options.precision)}`);
  }
  try {
    addon().configure(next.threads, next.layout === 'any' ? 1 : 0, next.precision === 'bf16' ? 1 : 0);
  } catch (err) {
    if (err instanceof SrganError) throw err;
    throw new SrganError('SRGAN_ERR_BACKEND', err instanceof Error ? err.message : String(err), { cause: err });
  }
  current = next;
}

// ---------------------------------------------------------------------------------------------------
// Geometry

export type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

export interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: Rounding;
}

/**
 * Fills the geometry words of `params` from tfjs' conv info. Returns false when oneDNN cannot express
 * it (a rounding mode that shrinks the output below what the pads give), so the caller falls back.
 */
export function fillGeometry(info: tf.backend_util.Conv2DInfo): boolean {
  const ekh = (info.filterHeight - 1) * info.dilationHeight + 1;
  const ekw = (info.filterWidth - 1) * info.dilationWidth + 1;
  // oneDNN: out = floor((in + pads − dilated kernel) / stride) + 1. tfjs' pads satisfy it for
  // 'same', 'valid' and explicit pads; for a numeric pad with dimRoundingMode they may not.
  const fits = (inn: number, k: number, s: number, lo: number, hi: number, out: number) =>
    lo >= 0 && hi >= 0 && inn + lo + hi - k >= 0 && Math.floor((inn + lo + hi - k) / s) + 1 === out;
  const { top, left } = info.padInfo;
  let { bottom, right } = info.padInfo;
  if (!fits(info.inHeight, ekh, info.strideHeight, top, bottom, info.outHeight)) {
    bottom = (info.outHeight - 1) * info.strideHeight + ekh - info.inHeight - top;
  }
  if (!fits(info.inWidth, ekw, info.strideWidth, left, right, info.outWidth)) {
    right = (info.outWidth - 1) * info.strideWidth + ekw - info.inWidth - left;
  }
  if (
    !fits(info.inHeight, ekh, info.strideHeight, top, bottom, info.outHeight) ||
    !fits(info.inWidth, ekw, info.strideWidth, left, right, info.outWidth)
  ) {
    return false;
  }
  params.set(
    [
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.outChannels,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.dilationHeight,
      info.dilationWidth,
      top,
      left,
      bottom,
      right,
    ],
    P.geometry,
  );
  return true;
}

export function convInfo(xShape: number[], filterShape: number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

export const size = (shape: number[]): number => shape.reduce((a, d) => a * d, 1);

function offsetOf(backend: WasmBackend, info: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new SrganError('SRGAN_ERR_BACKEND', 'native kernel: input tensor is not on the wasm backend');
  return data.memoryOffset;
}

/** Sets the activation words of the parameter block (read by 'conv2d' only). */
export function setActivation(activation: NativeActivation, alpha: number): void {
  params[P.activation] = ACTIVATIONS[activation];
  paramsF32[P.alpha] = alpha;
}

/**
 * Writes the byte offsets (inputs first, outputs after), then calls the addon on the current heap.
 * Call it after every makeOutput of the kernel, with the geometry set by fillGeometry.
 * Throws SrganError SRGAN_ERR_BACKEND when oneDNN fails (the addon's error is the cause).
 */
export function callAddon(
  backend: WasmBackend,
  fn: 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter',
  tensors: Array<tf.TensorInfo | null>,
): void {
  for (let i = 0; i < 4; i++) {
    const t = tensors[i];
    // An offset ≥ 2 GiB wraps to a negative int32 here; the addon reads the same bits as uint32.
    params[P.offsets + i] = t == null ? 0 : offsetOf(backend, t);
  }
  // Read HEAPU8 now, after every makeOutput of this call: an allocation may have replaced it.
  try {
    addon()[fn](backend.wasm.HEAPU8, params);
  } catch (cause) {
    if (cause instanceof SrganError) throw cause;
    throw new SrganError('SRGAN_ERR_BACKEND', `${fn} (wasm, native): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

// ---------------------------------------------------------------------------------------------------
// The small training ops (native/src/train_ops.h; their parameter blocks are listed in addon.cc)

export type TrainOp = 'batchNormForward' | 'batchNormBackward' | 'leakyRelu' | 'leakyReluGrad' | 'maxPoolGrad' | 'adam' | 'stridedCopy';

/**
 * Their own block, so that a conv's geometry (set by fillGeometry) is never overwritten in between;
 * 32 words, the longest layout (stridedCopy's) needs 31.
 */
const opParams = new Int32Array(32);
const opParamsF32 = new Float32Array(opParams.buffer);

/**
 * Runs a small op: `ints` fill the block from word 0, `floats` are [word, value] pairs written as
 * float32 bits, and the tensors' byte offsets go to consecutive words from `firstOffset` (inputs
 * first, outputs after, as addon.cc lists them). Call it after every makeOutput of the kernel.
 * Throws SrganError SRGAN_ERR_BACKEND when the addon refuses the call.
 */
export function callOp(
  backend: WasmBackend,
  fn: TrainOp,
  ints: readonly number[],
  floats: ReadonlyArray<readonly [number, number]>,
  firstOffset: number,
  tensors: readonly tf.TensorInfo[],
): void {
  opParams.fill(0);
  opParams.set(ints, 0);
  for (const [word, value] of floats) opParamsF32[word] = value;
  tensors.forEach((t, i) => {
    opParams[firstOffset + i] = offsetOf(backend, t);
  });
  // Read HEAPU8 now, after every makeOutput of this call: an allocation may have replaced it.
  try {
    addon()[fn](backend.wasm.HEAPU8, opParams);
  } catch (cause) {
    if (cause instanceof SrganError) throw cause;
    throw new SrganError('SRGAN_ERR_BACKEND', `${fn} (wasm, native): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
