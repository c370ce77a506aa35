// Finding and loading a trained generator for `srgan upscale` and `srgan eval`: from a path the user
// gives (an exported generator folder, a checkpoint folder, or a run's checkpoints folder), or from a
// run in the database (its newest or its best checkpoint).
//
// Everything read here is untrusted (docs/style.md §2): a checkpoint is verified against its checksums
// before its generator is read, and a model.json's metadata and manifest are checked against the
// topology they claim before any variable is allocated, so a lying file cannot make us build a huge
// network. Problems are SrganError SRGAN_ERR_CHECKPOINT naming the path and the file.

import fs from 'node:fs';
import path from 'node:path';

import type Database from 'better-sqlite3';

import { listCheckpoints as listRunCheckpointRows, listRuns, openDb, resolveRun, type RunRow } from '../../store/db.js';
import { runCheckpointDir, type HomePaths } from '../../store/home.js';
import { SrganError } from '../../util/errors.js';
import {
  latestValidCheckpoint,
  checkpointFolders,
  rankByValidation,
  readCheckpointState,
  stateScores,
  verifyCheckpoint,
  type CheckpointState,
} from '../train/checkpoint.js';
import { loadGeneratorWeights, readGeneratorExport } from '../io/export-layers.js';
import type { Generator } from '../archs/network.js';
import type { GeneratorConfig } from '../../config/presets.js';
import { buildGenerator } from '../archs/build.js';
import { readStateDictFile, STATE_DICT_FILE } from '../io/model-file.js';
import { describeStateDict, loadStateDict } from '../io/state-dict.js';

export interface LoadedGenerator {
  /** Owned by the caller: dispose() after use. */
  gen: Generator;
  config: GeneratorConfig;
  scale: 2 | 4;
  /** The path the generator was loaded from: the checkpoint folder when it came from one, else the model folder. */
  source: string;
  /** The checkpoint's step, when it came from a checkpoint. */
  step?: number;
  /** The run id recorded in the checkpoint, when it came from one. */
  runId?: string;
}

export interface LoadOptions {
  /** Called with one line per checkpoint passed over (damaged, unreadable). Default: ignored. */
  onWarning?: (line: string) => void;
}

const MODEL_JSON = 'model.json';
const GENERATOR_DIR = 'generator';

const fail = (where: string, what: string, cause?: unknown): SrganError =>
  new SrganError('SRGAN_ERR_CHECKPOINT', `${where}: ${what}`, cause === undefined ? undefined : { cause });

/** What a path the user gave is, decided from the files in it. */
type ModelLocation =
  | { kind: 'model'; modelDir: string }
  | { kind: 'checkpoint'; dir: string }
  | { kind: 'run'; dir: string }
  | { kind: 'safetensors'; file: string };

function locate(p: string): ModelLocation {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch (err) {
    throw fail(p, 'no such file or folder', err);
  }
  if (stat.isFile()) {
    if (path.basename(p).toLowerCase() === MODEL_JSON) return { kind: 'model', modelDir: path.dirname(p) };
    if (STATE_DICT_FILE.test(p)) return { kind: 'safetensors', file: p };
    throw fail(
      p,
      `is a file; expected a .safetensors or .pth state dict, a generator folder (with ${MODEL_JSON}), a checkpoint folder or a run's checkpoints folder`,
    );
  }
  const has = (...parts: string[]): boolean => fs.existsSync(path.join(p, ...parts));
  if (has(MODEL_JSON)) return { kind: 'model', modelDir: p };
  if (has(GENERATOR_DIR) || has('checksums.json') || has('state.json')) return { kind: 'checkpoint', dir: p };
  if (checkpointFolders(p).length > 0) return { kind: 'run', dir: p };
  throw fail(
    p,
    `not a model folder: it has no ${MODEL_JSON} (a generator folder), no ${GENERATOR_DIR}/ (a checkpoint folder) and no step-NNNNNNNN/ folders (a run's checkpoints folder)`,
  );
}

/**
 * A .safetensors or .pth state dict (docs/export.md): ESRGAN's or Real-ESRGAN Compact's names, or an srgan
 * export; the generator it holds is built and loaded. Step and run come from an export's metadata.
 */
function loadStateDictFile(file: string): LoadedGenerator {
  const sd = readStateDictFile(file);
  const { config, scale } = describeStateDict(sd, file);
  const gen = buildGenerator(config, scale, 0);
  try {
    loadStateDict(gen, config, sd.tensors, file);
  } catch (err) {
    gen.dispose();
    throw err;
  }
  const out: LoadedGenerator = { gen, config, scale, source: file };
  const step = Number(sd.metadata.step);
  if (sd.metadata.step && Number.isInteger(step)) out.step = step;
  if (sd.metadata.run_id) out.runId = sd.metadata.run_id;
  return out;
}

/**
 * Loads the generator at `p`: a .safetensors state dict, a generator folder (model.json written by saveGeneratorLayersModel, or
 * that model.json itself), a checkpoint folder (verified, then its generator/ loaded: the EMA weights
 * when the run has an EMA), or a run's checkpoints folder (its newest checkpoint that verifies; damaged
 * ones are passed over with a warning). A generator folder inside a checkpoint is verified as part of
 * that checkpoint. Throws SrganError SRGAN_ERR_CHECKPOINT.
 */
export async function loadGenerator(p: string, opts: LoadOptions = {}): Promise<LoadedGenerator> {
  const abs = path.resolve(p);
  const where = locate(abs);
  if (where.kind === 'safetensors') return loadStateDictFile(where.file);
  let checkpoint: string | null = null;
  let modelDir: string;
  switch (where.kind) {
    case 'model': {
      modelDir = where.modelDir;
      // generator/ of a checkpoint: verify the checkpoint it belongs to, which covers its shards.
      const parent = path.dirname(modelDir);
      if (path.basename(modelDir) === GENERATOR_DIR && fs.existsSync(path.join(parent, 'checksums.json'))) checkpoint = parent;
      break;
    }
    case 'checkpoint':
      checkpoint = where.dir;
      modelDir = path.join(where.dir, GENERATOR_DIR);
      break;
    case 'run': {
      const found = latestValidCheckpoint(where.dir);
      for (const s of found?.skipped ?? []) opts.onWarning?.(`skipped damaged checkpoint: ${s.reason}`);
      if (found === null) throw fail(where.dir, 'none of its checkpoints verifies (all are damaged or incomplete)');
      checkpoint = found.dir;
      modelDir = path.join(found.dir, GENERATOR_DIR);
      break;
    }
  }
  let state: CheckpointState | null = null;
  if (checkpoint !== null) {
    state = readCheckpointState(checkpoint);
    if (!fs.existsSync(path.join(modelDir, MODEL_JSON))) {
      throw fail(`checkpoint ${checkpoint}`, `has no ${GENERATOR_DIR}/${MODEL_JSON} (written by an srgan without generator export?)`);
    }
  }
  const found = await readGeneratorExport(modelDir);
  const { config, scale } = found.meta;
  const gen = buildGenerator(config, scale, 0);
  try {
    await loadGeneratorWeights(gen, found);
  } catch (err) {
    gen.dispose();
    throw err;
  }
  const out: LoadedGenerator = { gen, config, scale, source: checkpoint ?? modelDir };
  if (state !== null && Number.isInteger(state.step)) out.step = state.step;
  if (state !== null && typeof state.runId === 'string') out.runId = state.runId;
  return out;
}

// ---- choosing a run's checkpoint -----------------------------------------------------------------

export interface ChosenCheckpoint {
  /** The checkpoint folder (verified). */
  dir: string;
  step: number;
  run: RunRow;
  /** Its validation PSNR (state.json, else the database), when measured. */
  psnr: number | null;
  /** Its validation gain over bicubic in dB (state.json, else the database), when measured. */
  gain: number | null;
  /** Why this one: 'latest', 'best', or 'latest' after 'best' found no measured checkpoint. */
  picked: 'latest' | 'best';
  /** With 'best': what it was best by: the gain, or the PSNR for a run from before gains were measured. */
  bestBy?: 'gain' | 'psnr';
}

/**
 * The checkpoint of run `runRef` (id, unique id prefix or name; null: the newest run that has a usable
 * checkpoint) to load: its newest folder that verifies ('latest'), or the one with the highest
 * validation gain over bicubic ('best': state.json's valGain, else checkpoints.gain in the database;
 * for a run from before gains were measured, the highest validation PSNR the same way), falling back
 * to the latest when none was measured. Damaged folders are skipped with a warning line. Opens the
 * database read-only. Throws SRGAN_ERR_CONFIG for an unknown run or a missing database,
 * SRGAN_ERR_CHECKPOINT when the run has no usable checkpoint.
 */
export function checkpointForRun(
  paths: Pick<HomePaths, 'db' | 'checkpoints' | 'root'>,
  runRef: string | null,
  which: 'latest' | 'best',
  opts: LoadOptions = {},
): ChosenCheckpoint {
  if (which !== 'latest' && which !== 'best') throw new RangeError(`which: expected 'latest' or 'best', got ${JSON.stringify(which)}`);
  if (!fs.existsSync(paths.db)) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `no runs database at ${paths.db}: no run has trained in ${paths.root} yet; give a model with --checkpoint PATH`,
    );
  }
  const db = openDb(paths.db, { readonly: true });
  try {
    if (runRef !== null) {
      const run = resolveRun(db, runRef);
      const chosen = chooseFor(db, runCheckpointDir(paths, run.id, run.config), run, which, opts);
      if (chosen === null)
        throw new SrganError(
          'SRGAN_ERR_CHECKPOINT',
          `run ${run.id} has no usable checkpoint in ${runCheckpointDir(paths, run.id, run.config)}`,
        );
      return chosen;
    }
    const runs = listRuns(db);
    if (runs.length === 0)
      throw new SrganError('SRGAN_ERR_CONFIG', `the runs database ${paths.db} has no runs; give a model with --checkpoint PATH`);
    for (const run of runs) {
      const chosen = chooseFor(db, runCheckpointDir(paths, run.id, run.config), run, which, opts);
      if (chosen !== null) return chosen;
    }
    throw new SrganError(
      'SRGAN_ERR_CHECKPOINT',
      `no run in ${paths.db} has a usable checkpoint (under ${paths.checkpoints} or its checkpointRoot)`,
    );
  } finally {
    db.close();
  }
}

function chooseFor(
  db: Database.Database,
  /** The run's checkpoint folder. */
  dir: string,
  run: RunRow,
  which: 'latest' | 'best',
  opts: LoadOptions,
): ChosenCheckpoint | null {
  const folders = checkpointFolders(dir).reverse(); // newest first
  if (folders.length === 0) return null;
  const bad = new Set<string>();
  const usable = (dir: string): boolean => {
    if (bad.has(dir)) return false;
    try {
      verifyCheckpoint(dir);
      return true;
    } catch (err) {
      bad.add(dir);
      opts.onWarning?.(`skipped damaged checkpoint: ${(err as Error).message}`);
      return false;
    }
  };
  // The database has what a state.json may lack: scores of checkpoints written before state.json held them.
  const rows = new Map(listRunCheckpointRows(db, run.id).map((r) => [path.resolve(r.path), r]));
  const scored = folders.map((f) => {
    // Read before verifying: a damaged folder may rank anywhere, but usable() passes it over.
    const state = stateScores(f.dir);
    const row = rows.get(path.resolve(f.dir));
    return { ...f, gain: state.gain ?? row?.gain ?? null, psnr: state.psnr ?? row?.psnr ?? null };
  });
  if (which === 'best') {
    const { by, ranked } = rankByValidation(scored);
    for (const f of ranked)
      if (usable(f.dir)) return { dir: f.dir, step: f.step, run, psnr: f.psnr, gain: f.gain, picked: 'best', bestBy: by ?? 'gain' };
    opts.onWarning?.(
      `run ${run.id} has no usable checkpoint with a validation ${by === 'psnr' ? 'PSNR' : 'gain over bicubic'}; taking its latest`,
    );
  }
  for (const f of scored) {
    if (usable(f.dir)) return { dir: f.dir, step: f.step, run, psnr: f.psnr, gain: f.gain, picked: 'latest' };
  }
  return null;
}
