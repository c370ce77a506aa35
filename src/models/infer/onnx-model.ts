// An ONNX model run in ONNX Runtime (onnxruntime-node, CPU) as a TileModel, so `srgan upscale` and
// `srgan eval` can use what `srgan export --format onnx` writes, or any ONNX upscaler with the same
// interface (docs/export.md, "The ONNX model"): one input [N, 3, H, W] float32 RGB in [0, 1] of any
// size, one output [N, 3, H·s, W·s].
//
// onnxruntime-node is optional for users (a devDependency here: its install downloads native binaries
// most users never need), so it is imported only when an .onnx file is named. It is a native addon
// that, unlike ours (docs/native.md), is not made to be loaded per worker thread: it is loaded on the
// main thread only, where the CLI commands run, and refused elsewhere.
//
// The file is untrusted (docs/style.md §2): it is parsed as a ModelProto before ONNX Runtime sees it,
// its single input and output are checked, and a probe run on a small input with different sides
// must show a uniform ×2 or ×4 RGB upscaler. The probe always runs, also when the metadata names a
// scale (which our exports write): it is cheap, and it is what shows a fixed-size or wrong model.

import fs from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import onnxProto from 'onnx-proto';

import { SrganError } from '../../util/errors.js';
import { generatorGraph } from '../archs/build.js';
import { traceGraph } from '../archs/graph.js';
import type { Generator } from '../archs/network.js';
import { generatorOnnx } from '../io/export-onnx.js';
import type { GeneratorConfig } from '../../config/presets.js';
import type { TileModel } from './tiling.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

export interface OnnxModel extends TileModel {
  readonly scale: 2 | 4;
  /** Absolute path of the model file, or for a generator run in ONNX Runtime (generatorOnnxModel) its description. */
  readonly file: string;
  /** The file's metadata_props (our exports: arch, scale, config, run_id, step). Untrusted strings. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Releases the session (its native memory). */
  dispose(): void;
}

/** Sides of the probe (different, so a model that is not a uniform upscaler shows it). */
const PROBE_H = 12;
const PROBE_W = 20;

export const ONNXRUNTIME_INSTALL_HINT =
  'install it beside srgan with `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node` (CPU only; the skip avoids downloading the CUDA libraries)';

/**
 * How many times the peak of live activations (graph.ts peakLiveBytes) ONNX Runtime's CPU provider
 * holds while running one of our generators: its arena rounds allocations up, and convolutions take
 * working buffers. Measured as peak RSS growth per LR pixel on 128² and 256² tiles (docs/export.md,
 * "Running it in srgan"): 1.2–1.9× for espcn-x2-fast's generator, 1.8–2.0× for the seed's final and
 * esrgan-x4's RRDBNet, 2.0–2.1× for compact-x4's; rounded up.
 */
export const ORT_MEMORY_FACTOR = 2.25;

let ortModule: Promise<Ort | null> | undefined;

/** onnxruntime-node, imported once on first use; null when it is not installed or does not load here. */
export function onnxRuntime(): Promise<Ort | null> {
  if (!isMainThread) throw new Error('onnx-model: onnxruntime-node is a native addon; load ONNX models on the main thread only');
  ortModule ??= import('onnxruntime-node').then(
    (m) => {
      const mod = m as Ort & { default?: Ort };
      // CommonJS through ESM: the named exports or, depending on the loader, only a default.
      return mod.InferenceSession === undefined && mod.default !== undefined ? mod.default : mod;
    },
    () => null,
  );
  return ortModule;
}

/** onnxruntime-node, or SRGAN_ERR_CONFIG with install instructions naming `what` needed it. */
async function importOrt(what: string): Promise<Ort> {
  const ort = await onnxRuntime();
  if (ort === null)
    throw new SrganError('SRGAN_ERR_CONFIG', `${what} needs onnxruntime-node, which is not installed; ${ONNXRUNTIME_INSTALL_HINT}`);
  return ort;
}

/**
 * Loads the ONNX model `file` as a TileModel. With `expectedScale`, a model of another scale is refused.
 * Throws SrganError SRGAN_ERR_CHECKPOINT naming the file when it is missing or not a loadable ONNX
 * model, SRGAN_ERR_CONFIG when it loads but is not a ×2/×4 RGB upscaler of any size (or of the wrong
 * scale), or when onnxruntime-node is not installed.
 */
export async function loadOnnxModel(file: string, expectedScale?: 2 | 4): Promise<OnnxModel> {
  const abs = path.resolve(file);
  const broken = (what: string, cause?: unknown) =>
    new SrganError('SRGAN_ERR_CHECKPOINT', `${abs}: ${what}`, cause === undefined ? undefined : { cause });
  const bad = (what: string) => new SrganError('SRGAN_ERR_CONFIG', `${abs}: ${what}`);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(fs.readFileSync(abs));
  } catch (err) {
    throw broken((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read it: ${(err as Error).message}`, err);
  }
  // Parsed first: a truncated or random file gets a plain message instead of ONNX Runtime's C++ one.
  let metadata: Record<string, string>;
  try {
    const proto = onnxProto.onnx.ModelProto.decode(bytes);
    if (!proto.graph) throw new Error('no graph');
    metadata = Object.fromEntries(proto.metadataProps.map((p) => [String(p.key), String(p.value)]));
  } catch (err) {
    throw broken(`not an ONNX model (${(err as Error).message})`, err);
  }
  const ort = await importOrt(`${abs}: running an ONNX model`);
  return openSession(ort, bytes, abs, metadata, { broken, bad, expectedScale });
}

/**
 * A generator of ours run in ONNX Runtime: exported in memory (export-onnx.ts) and loaded like a file,
 * its tile memory estimated from its graph (ORT_MEMORY_FACTOR). Throws SRGAN_ERR_CONFIG when
 * onnxruntime-node is not installed; `label` names the model in errors and as `file`.
 */
export async function generatorOnnxModel(gen: Generator, config: GeneratorConfig, label: string): Promise<OnnxModel> {
  const ort = await importOrt(`${label}: running it in ONNX Runtime`);
  const scale = gen.scale as 2 | 4;
  const bytes = generatorOnnx(gen, config);
  const side = 64;
  const peak = traceGraph(generatorGraph(config, scale), side, side).peakLiveBytes;
  // Our own network: a failure here is the runtime's, not a file's (the caller may fall back to tfjs).
  const fail = (what: string, cause?: unknown) =>
    new SrganError('SRGAN_ERR_BACKEND', `${label}: in ONNX Runtime: ${what}`, cause === undefined ? undefined : { cause });
  return openSession(
    ort,
    bytes,
    label,
    { scale: String(scale) },
    { broken: fail, bad: fail, expectedScale: scale },
    (ORT_MEMORY_FACTOR * peak) / (side * side),
  );
}

/** An ONNX Runtime session on `bytes`, checked and probed (check), as an OnnxModel. */
async function openSession(
  ort: Ort,
  bytes: Uint8Array,
  file: string,
  metadata: Record<string, string>,
  errors: { broken: (what: string, cause?: unknown) => SrganError; bad: (what: string) => SrganError; expectedScale: 2 | 4 | undefined },
  bytesPerPixel?: number,
): Promise<OnnxModel> {
  const { broken, bad, expectedScale } = errors;
  let session: Session;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (err) {
    throw broken(`ONNX Runtime cannot load this model: ${(err as Error).message}`, err);
  }
  try {
    const scale = await check(ort, session, metadata, bad, broken);
    if (expectedScale !== undefined && scale !== expectedScale)
      throw bad(`upscales ×${scale}, but the model being evaluated upscales ×${expectedScale}`);
    const inputName = session.inputNames[0];
    const outputName = session.outputNames[0];
    return {
      scale,
      file,
      metadata,
      ...(bytesPerPixel === undefined ? {} : { bytesPerPixel }),
      run: async (hwc, width, height) => {
        const out = await runNchw(ort, session, inputName, outputName, toNchw(hwc, width, height), width, height);
        if (out.dims.join() !== [1, 3, height * scale, width * scale].join()) {
          throw bad(
            `returned [${out.dims.join(', ')}] for a ${width}×${height} input, expected [1, 3, ${height * scale}, ${width * scale}]`,
          );
        }
        return toHwc(out.data, width * scale, height * scale);
      },
      dispose: () => void session.release().catch(() => undefined),
    };
  } catch (err) {
    await session.release().catch(() => undefined);
    throw err;
  }
}

/** Checks the model's interface and probes it; returns its scale. */
async function check(
  ort: Ort,
  session: Session,
  metadata: Record<string, string>,
  bad: (what: string) => SrganError,
  broken: (what: string) => SrganError,
): Promise<2 | 4> {
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1)
    throw bad(`has ${session.inputNames.length} inputs and ${session.outputNames.length} outputs; expected one image in, one out`);
  const input = session.inputMetadata[0];
  if (!input.isTensor || input.type !== 'float32') throw bad('its input is not a float32 tensor; expected [N, 3, H, W] RGB in [0, 1]');
  const shape = input.shape;
  if (shape.length !== 4 || shape[1] !== 3) throw bad(`takes input [${shape.join(', ')}]; expected [N, 3, H, W] (NCHW RGB)`);
  if (typeof shape[2] === 'number' || typeof shape[3] === 'number')
    throw bad(`takes only ${shape[3]}×${shape[2]} inputs; images and tiles need any size (input [N, 3, H, W] with symbolic H and W)`);
  let out: { dims: readonly number[]; data: Float32Array };
  try {
    out = await runNchw(
      ort,
      session,
      session.inputNames[0],
      session.outputNames[0],
      new Float32Array(3 * PROBE_H * PROBE_W),
      PROBE_W,
      PROBE_H,
    );
  } catch (err) {
    throw bad(`fails on a ${PROBE_W}×${PROBE_H} RGB probe: ${(err as Error).message}`);
  }
  const d = out.dims;
  const sy = (d[2] ?? 0) / PROBE_H;
  const sx = (d[3] ?? 0) / PROBE_W;
  if (d.length !== 4 || d[0] !== 1 || d[1] !== 3 || sy !== sx || (sy !== 2 && sy !== 4)) {
    throw bad(
      `turns a ${PROBE_W}×${PROBE_H} RGB probe [1, 3, ${PROBE_H}, ${PROBE_W}] into [${d.join(', ')}]; expected a ×2 or ×4 RGB upscaler ([1, 3, ${2 * PROBE_H}, ${2 * PROBE_W}] or [1, 3, ${4 * PROBE_H}, ${4 * PROBE_W}])`,
    );
  }
  if (metadata.scale !== undefined && Number(metadata.scale) !== sy)
    throw broken(`its metadata says scale ${JSON.stringify(metadata.scale)}, but it upscales ×${sy}`);
  return sy;
}

async function runNchw(
  ort: Ort,
  session: Session,
  inputName: string,
  outputName: string,
  nchw: Float32Array,
  width: number,
  height: number,
): Promise<{ dims: readonly number[]; data: Float32Array }> {
  const feeds = { [inputName]: new ort.Tensor('float32', nchw, [1, 3, height, width]) };
  const result = await session.run(feeds);
  const y = result[outputName];
  if (y.type !== 'float32') throw new TypeError(`output ${outputName} is ${y.type}, expected float32`);
  const data = y.data as Float32Array;
  return { dims: [...y.dims], data };
}

/** HWC RGB → CHW (batch 1). */
function toNchw(hwc: Float32Array, width: number, height: number): Float32Array {
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let p = 0, q = 0; p < n; p++, q += 3) {
    out[p] = hwc[q];
    out[n + p] = hwc[q + 1];
    out[2 * n + p] = hwc[q + 2];
  }
  return out;
}

/** CHW (batch 1) → HWC RGB. */
function toHwc(chw: Float32Array, width: number, height: number): Float32Array {
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let p = 0, q = 0; p < n; p++, q += 3) {
    out[q] = chw[p];
    out[q + 1] = chw[n + p];
    out[q + 2] = chw[2 * n + p];
  }
  return out;
}
