// Which model `srgan upscale` and `srgan eval` use: a run's checkpoint (latest or --best), a checkpoint
// or exported folder, a state dict, an ONNX model (run in onnxruntime-node, docs/export.md), or for
// eval's --compare any tfjs LayersModel adapted to our Generator shape.
//
// The CLI process owns its tfjs runtime (one backend, chosen once, before any variable is made) and
// opens the runs database only briefly: read-only to find a checkpoint, and for one short write
// transaction to store evaluations, so it can run beside a training daemon (WAL, busy_timeout).

import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import { openDb, resolveRun, type RunRow } from '../store/db.js';
import { type HomePaths } from '../store/home.js';
import { SrganError } from '../util/errors.js';
import { formatDb, signedDb } from './format.js';
import { str, type Values } from './flags.js';
import { verifyCheckpoint } from '../models/train/checkpoint.js';
import { BACKEND_NAMES, selectBackend, type BackendRequest, type BackendSelection } from '../models/backend/ladder.js';
import { fileModelIO } from '../models/io/layers-io.js';
import { STATE_DICT_FILE } from '../models/io/model-file.js';
import { checkpointForRun, loadGenerator, type ChosenCheckpoint, type LoadedGenerator } from '../models/infer/load-generator.js';
import { generatorOnnxModel, loadOnnxModel, onnxRuntime, type OnnxModel } from '../models/infer/onnx-model.js';
import type { UpscaleModel } from '../models/infer/tiling.js';
import type { Generator } from '../models/archs/network.js';
import type { GeneratorConfig } from '../config/presets.js';

/** An ONNX model file, loaded the way LoadedGenerator describes a tfjs one. */
export interface LoadedOnnx {
  format: 'onnx';
  /** Owned by the caller: dispose() after use. */
  gen: OnnxModel;
  /** Not known: the network is not ours to read (its metadata's config is untrusted text). */
  config: null;
  scale: 2 | 4;
  source: string;
  /** From the metadata our exports write. */
  step?: number;
  runId?: string;
}

/** A model file ONNX Runtime runs rather than tfjs. */
export const ONNX_FILE = /\.onnx$/i;

export interface Source<L extends LoadedGenerator | LoadedOnnx = LoadedGenerator> {
  loaded: L;
  /** The run the model belongs to, when it is one in the database. */
  run: RunRow | null;
  step: number | null;
  backend: BackendSelection;
  /** One line: which model, and why this one. */
  describe: string;
}

/**
 * Picks the model: --checkpoint PATH (any path loadGenerator takes), else run --run RUN's (or, with
 * neither, the newest run's) latest checkpoint, or its best with --best. Selects the backend before
 * any variable is made.
 */
export async function openSource(v: Values, paths: HomePaths, backend: BackendRequest, warn: (line: string) => void): Promise<Source> {
  const { runRef, checkpoint } = modelFlags(v);
  // An ONNX file's weights are not read back (openRunnableSource runs it instead).
  if (checkpoint !== undefined && ONNX_FILE.test(checkpoint)) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `${checkpoint}: an ONNX model can be run (srgan upscale, srgan eval) but not read as weights here`,
    );
  }
  const chosen = checkpoint === undefined ? checkpointForRun(paths, runRef ?? null, v.best ? 'best' : 'latest', { onWarning: warn }) : null;
  // Production mode silences tfjs' console banners (the cpu backend's "install tfjs-node" notice),
  // which would otherwise land among our progress lines; this process only runs inference.
  tf.env().set('PROD', true);
  const selection = await selectBackend(backend);
  const loaded = await loadGenerator(chosen?.dir ?? checkpoint!, { onWarning: warn });
  let run = chosen?.run ?? null;
  if (run === null && loaded.runId !== undefined && fs.existsSync(paths.db)) run = runById(paths.db, loaded.runId);
  const step = loaded.step ?? null;
  const what = `${loaded.config.kind} ×${loaded.scale}`;
  let describe: string;
  if (chosen !== null) {
    const why = chosen.picked === 'best' ? `best checkpoint (${describeBest(chosen)})` : 'latest checkpoint';
    const which =
      runRef === undefined
        ? `newest run with a checkpoint, ${chosen.run.id} (${chosen.run.name})`
        : `run ${chosen.run.id} (${chosen.run.name})`;
    describe = `using the ${which}, ${why} at step ${chosen.step}: ${loaded.source} [${what}]`;
  } else {
    describe = `using ${loaded.source}${step === null ? '' : ` (step ${step}${run ? `, run ${run.id}` : ''})`} [${what}]`;
  }
  return { loaded, run, step, backend: selection, describe };
}

/**
 * openSource for the commands that only run the model (upscale, eval): also takes an .onnx file as
 * --model or --checkpoint, loaded into onnxruntime-node (onnx-model.ts). The tfjs backend is selected
 * all the same: --compare models and the rest of eval run on it.
 */
export async function openRunnableSource(
  v: Values,
  paths: HomePaths,
  backend: BackendRequest,
  warn: (line: string) => void,
): Promise<Source<LoadedGenerator | LoadedOnnx>> {
  const { checkpoint } = modelFlags(v);
  if (checkpoint === undefined || !ONNX_FILE.test(checkpoint)) return openSource(v, paths, backend, warn);
  tf.env().set('PROD', true);
  const selection = await selectBackend(backend);
  const gen = await loadOnnxModel(checkpoint);
  const loaded: LoadedOnnx = { format: 'onnx', gen, config: null, scale: gen.scale, source: gen.file };
  const step = Number(gen.metadata.step);
  if (gen.metadata.step && Number.isInteger(step) && step >= 0) loaded.step = step;
  if (gen.metadata.run_id) loaded.runId = gen.metadata.run_id;
  const run = loaded.runId !== undefined && fs.existsSync(paths.db) ? runById(paths.db, loaded.runId) : null;
  const stepNote = loaded.step === undefined ? '' : ` (step ${loaded.step}${run ? `, run ${run.id}` : ''})`;
  const arch = gen.metadata.arch ? `${gen.metadata.arch} ` : '';
  return {
    loaded,
    run,
    step: loaded.step ?? null,
    backend: selection,
    describe: `using ${loaded.source}${stepNote} [ONNX ${arch}×${loaded.scale}, onnxruntime-node]`,
  };
}

/** --run and --checkpoint / --model, checked for conflicts. */
function modelFlags(v: Values): { runRef: string | undefined; checkpoint: string | undefined } {
  const runRef = str(v.run);
  if (v.checkpoint !== undefined && v.model !== undefined) {
    throw new SrganError('SRGAN_ERR_CONFIG', '--model and --checkpoint name the same thing; give one');
  }
  const checkpoint = str(v.checkpoint) ?? str(v.model);
  if (runRef !== undefined && checkpoint !== undefined) {
    throw new SrganError('SRGAN_ERR_CONFIG', '--run and --checkpoint cannot be used together: --checkpoint names the model itself');
  }
  if (checkpoint !== undefined && v.best) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      "--best picks among a run's checkpoints; use it with --run RUN (or alone for the newest run), not with --checkpoint",
    );
  }
  return { runRef, checkpoint };
}

/** What a 'best' checkpoint was best by: its gain over bicubic (and PSNR), or its PSNR for an older run. */
function describeBest(c: ChosenCheckpoint): string {
  if (c.bestBy === 'psnr' || c.gain === null) return `val PSNR ${formatDb(c.psnr ?? Number.NaN)} dB`;
  return `val gain ${signedDb(c.gain)} over bicubic${c.psnr === null ? '' : `, PSNR ${formatDb(c.psnr)} dB`}`;
}

/** The run with exactly this id, or null (a checkpoint copied from another home). */
function runById(dbFile: string, id: string): RunRow | null {
  const db = openDb(dbFile, { readonly: true });
  try {
    const run = resolveRun(db, id);
    return run.id === id ? run : null;
  } catch {
    return null;
  } finally {
    db.close();
  }
}

/**
 * The model part of --json: `generator` is null for an ONNX model, which also has format 'onnx';
 * `runtime` is where it runs (an ONNX model, or with `runtime` given, what runnableModel chose).
 */
export function sourceJson(
  s: Source<LoadedGenerator | LoadedOnnx>,
  runtime?: Runtime,
): {
  source: string;
  run: { id: string; name: string } | null;
  step: number | null;
  scale: number;
  generator: GeneratorConfig | null;
  format?: 'onnx';
  runtime?: Runtime;
} {
  const onnx = 'format' in s.loaded;
  const rt = runtime ?? (onnx ? 'onnxruntime-node' : undefined);
  return {
    source: s.loaded.source,
    run: s.run && { id: s.run.id, name: s.run.name },
    step: s.step,
    scale: s.loaded.scale,
    generator: s.loaded.config,
    ...(onnx ? { format: 'onnx' as const } : {}),
    ...(rt === undefined ? {} : { runtime: rt }),
  };
}

/** Where `srgan upscale` runs the model: ONNX Runtime (onnxruntime-node, CPU) or tfjs on the selected backend. */
export type Runtime = 'onnxruntime-node' | 'tfjs';
export type RuntimeRequest = 'auto' | 'onnx' | 'tfjs';

export function parseRuntime(v: Values[string]): RuntimeRequest {
  const r = str(v) ?? 'auto';
  if (r !== 'auto' && r !== 'onnx' && r !== 'tfjs')
    throw new SrganError('SRGAN_ERR_CONFIG', `--runtime must be auto, onnx or tfjs, got "${r}"`);
  return r;
}

/** tfjs backends on a GPU: faster than ONNX Runtime's CPU provider, so 'auto' keeps them. */
const GPU_BACKENDS: ReadonlySet<string> = new Set(['tfjs-node-gpu', 'webgpu']);

export interface RunnableModel {
  model: UpscaleModel & { dispose(): void };
  runtime: Runtime;
  /** Why this runtime, for the start line: 'ONNX Runtime (CPU)' or 'tfjs, backend NAME[: why not ONNX Runtime]'. */
  describe: string;
}

/**
 * The runtime that runs `source` (docs/export.md, "Running it in srgan"). An .onnx file runs in ONNX
 * Runtime ('tfjs' refused). A generator of ours: 'onnx' exports it in memory to ONNX Runtime (refused
 * when onnxruntime-node is missing); 'tfjs' keeps it on the tfjs backend; 'auto' takes ONNX Runtime
 * (faster on CPU, bench/upscale-onnx.mjs) unless --backend named a tfjs backend, the backend selected is
 * a GPU, onnxruntime-node is not installed, or the session fails to open (then warns and stays on tfjs).
 * On ONNX Runtime the tfjs generator is disposed; the caller disposes `model`.
 */
export async function runnableModel(
  source: Source<LoadedGenerator | LoadedOnnx>,
  req: RuntimeRequest,
  backendGiven: boolean,
  warn: (line: string) => void,
): Promise<RunnableModel> {
  const { loaded } = source;
  const onTfjs = (why: string): RunnableModel => ({
    model: loaded.gen,
    runtime: 'tfjs',
    describe: `tfjs, backend ${source.backend.name}${why === '' ? '' : `; ${why}`}`,
  });
  if ('format' in loaded) {
    if (req === 'tfjs') {
      loaded.gen.dispose();
      throw new SrganError('SRGAN_ERR_CONFIG', `${loaded.source}: an ONNX model runs in ONNX Runtime only; leave out --runtime tfjs`);
    }
    return { model: loaded.gen, runtime: 'onnxruntime-node', describe: 'ONNX Runtime (CPU)' };
  }
  if (req === 'tfjs') return onTfjs('');
  if (req === 'auto') {
    if (backendGiven) return onTfjs('');
    if (GPU_BACKENDS.has(source.backend.name)) return onTfjs('a GPU backend, kept over ONNX Runtime on the CPU');
    if ((await onnxRuntime()) === null) return onTfjs('onnxruntime-node is not installed (faster on CPU, docs/export.md)');
  }
  let model: OnnxModel;
  try {
    model = await generatorOnnxModel(loaded.gen, loaded.config, loaded.source);
  } catch (err) {
    if (req === 'onnx') {
      loaded.gen.dispose();
      throw err;
    }
    warn(`ONNX Runtime could not run this generator, staying on tfjs: ${(err as Error).message}`);
    return onTfjs('ONNX Runtime failed (see above)');
  }
  loaded.gen.dispose();
  return { model, runtime: 'onnxruntime-node', describe: 'ONNX Runtime (CPU)' };
}

export function parseBackend(v: Values[string]): BackendRequest {
  const b = str(v) ?? 'auto';
  if (b !== 'auto' && !(BACKEND_NAMES as readonly string[]).includes(b)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--backend must be auto or one of ${BACKEND_NAMES.join(', ')}, got "${b}"`);
  }
  return b as BackendRequest;
}

/**
 * Loads an .onnx model (run in onnxruntime-node), a .safetensors state dict (the generator it holds), or any tfjs LayersModel (a model.json, a
 * folder holding one, or a checkpoint folder) as a
 * Generator-like object evaluate() can run: input [n, h, w, 3] in [0, 1] of any size, output
 * [n, s·h, s·w, 3]. The scale is measured on a probe and must be 2 or 4 and equal `scale`.
 */
export async function loadCompareModel(p: string, scale: 2 | 4): Promise<{ path: string; gen: UpscaleModel & { dispose(): void } }> {
  const abs = path.resolve(p);
  if (ONNX_FILE.test(abs)) {
    try {
      const gen = await loadOnnxModel(abs, scale);
      return { path: abs, gen };
    } catch (err) {
      if (err instanceof SrganError) throw new SrganError(err.code, `--compare ${err.message}`, { cause: err });
      throw err;
    }
  }
  if (STATE_DICT_FILE.test(abs)) {
    // A state dict: the generator it holds (docs/export.md).
    const loaded = await loadGenerator(abs);
    if (loaded.scale !== scale) {
      loaded.gen.dispose();
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `--compare ${p}: upscales ×${loaded.scale}, but the model being evaluated upscales ×${scale}`,
      );
    }
    return { path: abs, gen: loaded.gen };
  }
  let location = abs;
  const bad = (what: string): SrganError => new SrganError('SRGAN_ERR_CONFIG', `--compare ${p}: ${what}`);
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory() && !fs.existsSync(path.join(abs, 'model.json'))) {
    if (!fs.existsSync(path.join(abs, 'generator', 'model.json')))
      throw bad('not a model: no model.json, and not a checkpoint folder (no generator/model.json)');
    verifyCheckpoint(abs);
    location = path.join(abs, 'generator');
  }
  let model: tfl.LayersModel;
  try {
    model = await tfl.loadLayersModel(fileModelIO(location, { errorCode: 'SRGAN_ERR_CONFIG' }));
  } catch (err) {
    if (err instanceof SrganError) throw new SrganError(err.code, `--compare: ${err.message}`, { cause: err });
    // tfjs-layers' own complaints (an unknown layer class, a graph model): say which flag and file.
    throw new SrganError('SRGAN_ERR_CONFIG', `--compare ${p}: not a loadable tfjs LayersModel: ${(err as Error).message}`, { cause: err });
  }
  try {
    if (model.inputs.length !== 1 || model.outputs.length !== 1)
      throw bad(`has ${model.inputs.length} inputs and ${model.outputs.length} outputs; expected one image in, one out`);
    const shape = model.inputs[0].shape;
    if (shape.length !== 4 || shape[3] !== 3) throw bad(`takes input [${shape.map(String)}]; expected [n, h, w, 3]`);
    if (shape[1] !== null || shape[2] !== null)
      throw bad(`takes only ${shape[2]}×${shape[1]} inputs; images and tiles need any size (input [null, null, null, 3])`);
    // Different sides on the probe: a model that is not a uniform integer upscaler shows it.
    const [ph, pw] = [12, 20];
    let probe: tf.Tensor;
    try {
      probe = tf.tidy(() => model.predict(tf.zeros([1, ph, pw, 3])) as tf.Tensor);
    } catch (err) {
      throw bad(`fails on a ${pw}×${ph} RGB probe: ${(err as Error).message}`);
    }
    const out = probe.shape;
    probe.dispose();
    const sy = (out[1] ?? 0) / ph;
    const sx = (out[2] ?? 0) / pw;
    if (out.length !== 4 || out[3] !== 3 || sy !== sx || (sy !== 2 && sy !== 4)) {
      throw bad(
        `turns a ${pw}×${ph} RGB probe into [${out.join(', ')}]; expected a ×2 or ×4 RGB upscaler ([1, ${2 * ph}, ${2 * pw}, 3] or [1, ${4 * ph}, ${4 * pw}, 3])`,
      );
    }
    if (sy !== scale) throw bad(`upscales ×${sy}, but the model being evaluated upscales ×${scale}`);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const gen: Generator = {
    variables: {},
    scale,
    paramCount: model.countParams(),
    flopsPerForward: () => Number.NaN, // unknown for a foreign network; nothing here needs it
    apply: (x) => model.predict(x) as tf.Tensor4D,
    dispose: () => model.dispose(),
  };
  return { path: location === abs ? abs : location, gen };
}
