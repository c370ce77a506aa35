// The commands that use a trained generator: `srgan upscale` (the user's own images, enlarged) and
// `srgan eval` (PSNR-Y / SSIM-Y on a folder of HR images, against bicubic and other models, stored on
// the run). Usage and --help live with their entries in main.ts, which imports this module lazily:
// it loads tfjs and sharp, which the other commands do not need.
//
// The CLI process owns its tfjs runtime (one backend, chosen once, before any variable is made) and
// opens the runs database only briefly: read-only to find a checkpoint, and for one short write
// transaction to store evaluations, so it can run beside a training daemon (WAL, busy_timeout).

import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import { listImages } from '../data/image/files.js';
import { EVAL_LR_SYNTHESES, lrSynthesisName, parseLrSynthesis, type LrSynthesis } from '../data/image/degrade.js';
import { openDb, recordEval, resolveRun, type RunRow } from '../store/db.js';
import { homePaths, type HomePaths } from '../store/home.js';
import { SrganError } from '../util/errors.js';
import { signedDb } from './format.js';
import { verifyCheckpoint } from '../models/train/checkpoint.js';
import { evaluate, type EvaluateResult, type Score } from '../models/infer/evaluate.js';
import { BACKEND_NAMES, selectBackend, type BackendRequest, type BackendSelection } from '../models/backend/ladder.js';
import { fileModelIO } from '../models/io/layers-io.js';
import { checkpointForRun, loadGenerator, type ChosenCheckpoint, type LoadedGenerator } from '../models/io/load-generator.js';
import type { Generator } from '../models/archs/network.js';
import type { GeneratorConfig } from '../config/presets.js';
import { DEFAULT_TILE_OPTIONS, receptiveRadius, type TileOptions } from '../models/infer/tiling.js';
import { upscaleFile } from '../models/infer/upscale.js';

export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * The default overlap is the receptive-field radius, capped: it makes tiled output exact for the ESPCN
 * presets (radius 4–19), while the deep presets' radii (349–484) cannot be covered at any useful tile
 * size; beyond 32 a wider margin costs more stride than it removes error (which the blend fades).
 */
const MAX_DEFAULT_OVERLAP = 32;

/** What `--format` may ask for, and the extension it writes. */
const FORMAT_EXT: Readonly<Record<string, string>> = Object.freeze({ png: '.png', jpeg: '.jpg', webp: '.webp' });
/** Input extensions writeUpscaled can also write (kept as they are when no --format is given). */
const WRITABLE_EXT: Readonly<Record<string, 'png' | 'jpeg' | 'webp'>> = Object.freeze({ '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' });

// ---- srgan upscale -------------------------------------------------------------------------------

interface Job {
  in: string;
  /** Output path relative to --out (shown in progress lines). */
  rel: string;
  out: string;
}

type FileReport =
  | { in: string; out: string; width: number; height: number; outWidth: number; outHeight: number; ms: number }
  | { in: string; error: string; code?: string };

/** `srgan upscale IN... --out DIR [--run RUN | --checkpoint PATH] [--best] [tiling] [--format F] [--backend B] [--json]` */
export async function upscaleCommand(v: Values, args: string[]): Promise<number> {
  if (args.length === 0) throw new SrganError('SRGAN_ERR_CONFIG', 'expected at least one IN file or folder');
  const out = str(v.out);
  if (out === undefined) throw new SrganError('SRGAN_ERR_CONFIG', '--out DIR is required: where the upscaled images go');
  const format = str(v.format);
  if (format !== undefined && !(format in FORMAT_EXT)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--format must be one of ${Object.keys(FORMAT_EXT).join(', ')}, got "${format}"`);
  }
  const tiling = parseTiling(v);
  const backend = parseBackend(v.backend);
  const asJson = Boolean(v.json);
  const outDir = path.resolve(out);
  // Everything about the inputs is checked before the model is loaded: a typo fails in milliseconds.
  const jobs = collectJobs(args, outDir, format);

  const warn = (line: string) => console.error(`srgan upscale: ${line}`);
  const source = await openSource(v, homePaths(), backend, warn);
  const { gen } = source.loaded;
  const opts = tileOptions(source.loaded.config, source.loaded.scale, tiling);
  console.error(`srgan upscale: ${source.describe}; ${jobs.length} file${jobs.length === 1 ? '' : 's'} → ${outDir} (backend ${source.backend.name})`);

  const reports: FileReport[] = [];
  const tty = Boolean(process.stderr.isTTY) && !asJson;
  const t0 = performance.now();
  try {
    for (const job of jobs) {
      const onTile = tty
        ? (done: number, total: number) => {
            if (total > 1) process.stderr.write(`\r  ${job.rel}: tile ${done}/${total}\x1b[K`);
          }
        : undefined;
      try {
        fs.mkdirSync(path.dirname(job.out), { recursive: true });
        const r = await upscaleFile(gen, job.in, job.out, { ...opts, ...(onTile ? { onTile } : {}) });
        const ms = Math.round(r.ms);
        reports.push({ in: job.in, out: job.out, width: r.width, height: r.height, outWidth: r.outWidth, outHeight: r.outHeight, ms });
        if (tty) process.stderr.write('\r\x1b[K');
        if (!asJson) console.log(`${job.rel}  ${r.width}×${r.height} → ${r.outWidth}×${r.outHeight}  ${ms} ms`);
      } catch (err) {
        // One bad file (corrupt, unwritable) must not cost the others: report it and go on.
        const e = err as Error & { code?: string };
        if (tty) process.stderr.write('\r\x1b[K');
        reports.push({ in: job.in, error: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) });
        console.error(`srgan upscale: ${job.in}: skipped: ${e.code ? `${e.code}: ` : ''}${e.message}`);
      }
    }
  } finally {
    gen.dispose();
  }
  const failed = reports.filter((r) => 'error' in r).length;
  if (asJson) {
    console.log(JSON.stringify({ ...sourceJson(source), backend: source.backend.name, tiling: opts, files: reports }));
  } else {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${reports.length - failed} of ${reports.length} file${reports.length === 1 ? '' : 's'} upscaled ×${source.loaded.scale} into ${outDir} in ${s} s`);
  }
  if (failed > 0) console.error(`srgan upscale: ${failed} file${failed === 1 ? '' : 's'} failed (see above); the others were written`);
  return failed > 0 ? 1 : 0;
}

/**
 * The files to upscale and where each goes: a folder argument is walked recursively for the training
 * extensions (listImages) and keeps its relative paths under `outDir`; a file argument is taken as it
 * is (whatever its extension) and written as its base name. Throws SRGAN_ERR_CONFIG for a missing
 * input, an empty folder, an output that would overwrite an input, or two inputs with the same output.
 * Files are compared as the file system resolves them, not as spelled: an --out reached through a
 * symlink, or an output path that is a link to an input, is caught like a plain path (writing follows
 * links, so the input would be lost).
 */
function collectJobs(args: string[], outDir: string, format: string | undefined): Job[] {
  const realOut = realTarget(outDir);
  const jobs: Job[] = [];
  for (const arg of args) {
    const abs = path.resolve(arg);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(abs);
    } catch {
      throw new SrganError('SRGAN_ERR_CONFIG', `${arg}: no such file or folder`);
    }
    if (stat.isDirectory()) {
      // Earlier outputs inside an input folder (`--out photos/big`) are not inputs.
      const files = listImages(abs).filter((f) => !isInside(realTarget(f), realOut));
      if (files.length === 0) throw new SrganError('SRGAN_ERR_CONFIG', `${arg}: no images (png, jpg, jpeg, webp, tif, tiff, gif, avif) in this folder`);
      for (const f of files) jobs.push(job(f, path.relative(abs, f), outDir, format));
    } else {
      jobs.push(job(abs, path.basename(abs), outDir, format));
    }
  }
  // One job per input file (named twice, by a folder and by itself, the later naming wins), keyed by
  // device and inode so that a link to an input is that input.
  const byInput = new Map<string, Job>();
  for (const j of jobs) byInput.set(fileId(j.in) ?? j.in, j);
  const byOut = new Map<string, Job>();
  for (const j of byInput.values()) {
    const target = realTarget(j.out);
    const other = byOut.get(target);
    if (other !== undefined) {
      throw new SrganError('SRGAN_ERR_CONFIG', `${other.in} and ${j.in} would both be written to ${j.out}; upscale them into separate --out folders`);
    }
    byOut.set(target, j);
  }
  for (const j of byInput.values()) {
    // Follows links; null while nothing is there, which cannot be an input.
    const id = fileId(j.out);
    const victim = id === null ? undefined : byInput.get(id);
    if (victim === j) throw new SrganError('SRGAN_ERR_CONFIG', `${j.in} would be overwritten by its own output; choose another --out folder`);
    if (victim !== undefined) throw new SrganError('SRGAN_ERR_CONFIG', `${victim.in} would be overwritten by the output of ${j.in}; choose another --out folder`);
  }
  return [...byInput.values()];
}

/** Device and inode of the file `p` names, links followed; null when there is none. */
function fileId(p: string): string | null {
  try {
    const s = fs.statSync(p);
    return `${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

/** The real path `p` names, or will name once created: its deepest existing ancestor with links resolved, the rest appended. */
function realTarget(p: string): string {
  const rest: string[] = [];
  let cur = path.resolve(p);
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return path.join(cur, ...rest.reverse());
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

function job(input: string, rel: string, outDir: string, format: string | undefined): Job {
  const ext = path.extname(rel);
  const kept = WRITABLE_EXT[ext.toLowerCase()];
  // The input's own extension when it names the format wanted (a.jpeg stays a.jpeg), else the format's.
  const want = format ?? kept ?? 'png';
  const outExt = kept === want ? ext : (FORMAT_EXT[want] as string);
  const outRel = rel.slice(0, rel.length - ext.length) + outExt;
  return { in: input, rel: outRel, out: path.join(outDir, outRel) };
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

// ---- srgan eval ----------------------------------------------------------------------------------

/**
 * The standard protocol's LR synthesis. Rows measured with it keep the plain labels (`model`,
 * `bicubic`, a path), as every row did before `--lr-filter` existed, so stored rows stay comparable.
 */
const STANDARD_LR = 'bicubic-aa';

interface ResultRow {
  /**
   * 'model', 'bicubic', or the path of a --compare model, with `@LR` appended when measured with any LR
   * synthesis but the standard protocol's (what the evals table stores, so a label never mixes protocols).
   */
  model: string;
  /** The LR synthesis, as --lr-filter names it (lrSynthesisName). */
  lr: string;
  psnr: number;
  ssim: number;
  /** PSNR-Y minus bicubic's on the same LR, dB (0 for the bicubic row). */
  gain: number;
  images: number;
}

/** One --lr-filter's scores: the table's row, and `filters[i]` in --json. */
interface FilterReport {
  lr: string;
  lrSynthesis: LrSynthesis;
  model: Score;
  bicubic: Score;
  /** model PSNR-Y − bicubic PSNR-Y, dB. */
  gain: number;
  compare: { model: string; psnr: number; ssim: number; gain: number }[];
  files: { file: string; model: Score | null; bicubic: Score; compare: (Score | null)[] }[];
}

/** `srgan eval --data DIR [--run RUN | --checkpoint PATH] [--best] [--compare M ...] [--lr-filter F ...] [--border N] [--limit N] [--json] [--no-save]` */
export async function evalCommand(v: Values): Promise<number> {
  const data = str(v.data);
  if (data === undefined) throw new SrganError('SRGAN_ERR_CONFIG', '--data DIR is required: a folder of high-resolution images to score on');
  const border = v.border === undefined ? undefined : intFlag('--border', v.border, 0);
  const limit = v.limit === undefined ? undefined : intFlag('--limit', v.limit, 1);
  const filters = parseLrFilters(v['lr-filter']);
  const compares = list(v.compare);
  const backend = parseBackend(v.backend);
  const asJson = Boolean(v.json);
  const save = !v['no-save'];

  const dataDir = path.resolve(data);
  let files: string[];
  try {
    files = fs.statSync(dataDir).isDirectory() ? listImages(dataDir) : [dataDir];
  } catch {
    throw new SrganError('SRGAN_ERR_CONFIG', `--data ${data}: no such file or folder`);
  }
  if (limit !== undefined) files = files.slice(0, limit);
  if (files.length === 0) throw new SrganError('SRGAN_ERR_DATA', `--data ${data}: no images (png, jpg, jpeg, webp, tif, tiff, gif, avif) in this folder`);

  const paths = homePaths();
  const warn = (line: string) => console.error(`srgan eval: ${line}`);
  const source = await openSource(v, paths, backend, warn);
  const { gen, scale, config } = source.loaded;
  const lrNote = filters.length === 1 ? `LR ${filters[0]!.name}` : `${filters.length} LR syntheses`;
  console.error(`srgan eval: ${source.describe}; ${files.length} image${files.length === 1 ? '' : 's'} from ${dataDir}, ${lrNote} (backend ${source.backend.name})`);

  const measured: { name: string; main: EvaluateResult; others: EvaluateResult[] }[] = [];
  const loaded: { path: string; gen: Generator }[] = [];
  try {
    // Every --compare model is loaded and probed first: a wrong one fails before minutes of scoring.
    for (const c of compares) loaded.push(await loadCompareModel(c, scale));
    for (const [k, f] of filters.entries()) {
      if (filters.length > 1) console.error(`srgan eval: LR ${f.name} (${k + 1}/${filters.length})`);
      const main = await evaluate(gen, files, { scale, lr: f.lr, ...(border === undefined ? {} : { border }), ...tileOptions(config, scale, {}) });
      const others: EvaluateResult[] = [];
      // Unknown networks get the general tiling defaults (one tile up to 512 LR pixels a side).
      for (const other of loaded) others.push(await evaluate(other.gen, files, { scale, border: main.border, lr: f.lr }));
      measured.push({ name: f.name, main, others });
    }
  } finally {
    gen.dispose();
    for (const other of loaded) other.gen.dispose();
  }

  const n = files.length;
  const label = (model: string, lr: string): string => (lr === STANDARD_LR ? model : `${model}@${lr}`);
  const results: ResultRow[] = [];
  // Per-image scores of each row of `results`, in the same order (stored with the row).
  const perModel: (Score | null)[][] = [];
  const reports: FilterReport[] = [];
  for (const { name, main, others } of measured) {
    const bic = main.bicubic;
    const row = (model: string, s: Score): ResultRow => ({ model: label(model, name), lr: name, psnr: s.psnr, ssim: s.ssim, gain: s.psnr - bic.psnr, images: n });
    results.push(row('model', main.model!), { ...row('bicubic', bic), gain: 0 }, ...others.map((o, k) => row(loaded[k]!.path, o.model!)));
    perModel.push(main.rows.map((r) => r.model), main.rows.map((r) => r.bicubic), ...others.map((o) => o.rows.map((r) => r.model)));
    reports.push({
      lr: name,
      lrSynthesis: main.lr,
      model: main.model!,
      bicubic: bic,
      gain: main.gain!,
      compare: others.map((o, k) => ({ model: loaded[k]!.path, psnr: o.model!.psnr, ssim: o.model!.ssim, gain: o.gain! })),
      files: main.rows.map((r, i) => ({ file: r.file, model: r.model, bicubic: r.bicubic, compare: others.map((o) => o.rows[i]?.model ?? null) })),
    });
  }
  const first = measured[0]!;
  // The first --lr-filter's per-image scores (the standard protocol's by default), as before --lr-filter.
  const perImage = first.main.rows.map((r, i) => ({
    file: r.file,
    width: r.width,
    height: r.height,
    model: r.model,
    bicubic: r.bicubic,
    compare: first.others.map((o) => o.rows[i]?.model ?? null),
  }));
  const report = {
    ...sourceJson(source),
    backend: source.backend.name,
    border: first.main.border,
    dataDir,
    images: n,
    results,
    files: perImage,
    filters: reports,
  };

  let saved = 0;
  let notSaved: string | null = save ? null : '--no-save';
  if (save && source.run === null) notSaved = 'the model is not tied to a run in the database (give --run RUN to store it on one)';
  if (notSaved === null && source.run !== null) {
    const { results: _r, files: _f, filters: _l, ...context } = report;
    saved = storeEvals(paths, source.run.id, dataDir, results, perModel, files, context);
  }

  if (asJson) {
    console.log(JSON.stringify({ ...report, saved }));
    return 0;
  }
  const compareCols = loaded.flatMap((_, k) => [`#${k + 1} PSNR-Y`, 'SSIM-Y', 'GAIN']);
  printTable(
    ['LR FILTER', 'MODEL PSNR-Y', 'SSIM-Y', 'BICUBIC PSNR-Y', 'SSIM-Y', 'GAIN', ...compareCols],
    reports.map((r) => [
      r.lr,
      formatDb(r.model.psnr),
      r.model.ssim.toFixed(4),
      formatDb(r.bicubic.psnr),
      r.bicubic.ssim.toFixed(4),
      formatGain(r.gain),
      ...r.compare.flatMap((c) => [formatDb(c.psnr), c.ssim.toFixed(4), formatGain(c.gain)]),
    ]),
  );
  console.log(`×${scale}, Y channel (BT.601), ${first.main.border} px border cropped, means over ${n} image${n === 1 ? '' : 's'} from ${dataDir}`);
  console.log(`GAIN: PSNR-Y minus bicubic's on the same LR, dB. model: ${source.loaded.source}${source.step === null ? '' : ` (step ${source.step})`}`);
  loaded.forEach((o, k) => console.log(`#${k + 1}: ${o.path}`));
  if (saved > 0) console.log(`stored ${saved} rows in ${paths.db} (evals, run ${source.run?.id})`);
  else if (notSaved !== null && save) console.error(`srgan eval: not stored: ${notSaved}`);
  return 0;
}

/**
 * The LR syntheses --lr-filter asks for, in order, each once (by its canonical name, so blur0.80 and
 * blur0.8 are one); `all` stands for EVAL_LR_SYNTHESES; none given is the standard protocol alone.
 * Throws SRGAN_ERR_CONFIG naming the value and the accepted forms.
 */
function parseLrFilters(v: Values[string]): { name: string; lr: LrSynthesis }[] {
  const given = list(v);
  const names = given.length === 0 ? [STANDARD_LR] : given.flatMap((n) => (n === 'all' ? [...EVAL_LR_SYNTHESES] : [n]));
  const out = new Map<string, LrSynthesis>();
  for (const name of names) {
    let lr: LrSynthesis;
    try {
      lr = parseLrSynthesis(name);
    } catch (err) {
      const accepted = (err as Error).message.replace(/^LR filter: /, '');
      throw new SrganError('SRGAN_ERR_CONFIG', `--lr-filter: ${accepted}; or all, for ${EVAL_LR_SYNTHESES.join(', ')}`);
    }
    out.set(lrSynthesisName(lr), lr);
  }
  return [...out].map(([name, lr]) => ({ name, lr }));
}

/**
 * One row per model and LR synthesis in the evals table, each with its per-image scores, the LR
 * synthesis and the run's context in json, in one short IMMEDIATE transaction (busy_timeout waits out
 * a daemon's write). Returns the row count.
 */
function storeEvals(paths: HomePaths, runId: string, dataDir: string, results: ResultRow[], perImage: (Score | null)[][], files: string[], context: object): number {
  const time = Date.now() / 1000;
  const db = openDb(paths.db);
  try {
    db.transaction(() => {
      results.forEach((r, k) => {
        const scores = files.map((file, i) => ({ file, ...(perImage[k]?.[i] ?? {}) }));
        const json = { ...context, model: r.model, lr: r.lr, lrSynthesis: parseLrSynthesis(r.lr), gain: r.gain, files: scores };
        recordEval(db, { run_id: runId, time, data_dir: dataDir, model: r.model, psnr: r.psnr, ssim: r.ssim, images: r.images, json });
      });
    }).immediate();
  } finally {
    db.close();
  }
  return results.length;
}

/**
 * Loads any tfjs LayersModel (a model.json, a folder holding one, or a checkpoint folder) as a
 * Generator-like object evaluate() can run: input [n, h, w, 3] in [0, 1] of any size, output
 * [n, s·h, s·w, 3]. The scale is measured on a probe and must be 2 or 4 and equal `scale`.
 */
async function loadCompareModel(p: string, scale: 2 | 4): Promise<{ path: string; gen: Generator }> {
  const abs = path.resolve(p);
  let location = abs;
  const bad = (what: string): SrganError => new SrganError('SRGAN_ERR_CONFIG', `--compare ${p}: ${what}`);
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory() && !fs.existsSync(path.join(abs, 'model.json'))) {
    if (!fs.existsSync(path.join(abs, 'generator', 'model.json'))) throw bad('not a model: no model.json, and not a checkpoint folder (no generator/model.json)');
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
    if (model.inputs.length !== 1 || model.outputs.length !== 1) throw bad(`has ${model.inputs.length} inputs and ${model.outputs.length} outputs; expected one image in, one out`);
    const shape = model.inputs[0]!.shape;
    if (shape.length !== 4 || shape[3] !== 3) throw bad(`takes input [${shape.map(String)}]; expected [n, h, w, 3]`);
    if (shape[1] !== null || shape[2] !== null) throw bad(`takes only ${shape[2]}×${shape[1]} inputs; images and tiles need any size (input [null, null, null, 3])`);
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
      throw bad(`turns a ${pw}×${ph} RGB probe into [${out.join(', ')}]; expected a ×2 or ×4 RGB upscaler ([1, ${2 * ph}, ${2 * pw}, 3] or [1, ${4 * ph}, ${4 * pw}, 3])`);
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

// ---- the model to use ----------------------------------------------------------------------------

interface Source {
  loaded: LoadedGenerator;
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
async function openSource(v: Values, paths: HomePaths, backend: BackendRequest, warn: (line: string) => void): Promise<Source> {
  const runRef = str(v.run);
  const checkpoint = str(v.checkpoint);
  if (runRef !== undefined && checkpoint !== undefined) {
    throw new SrganError('SRGAN_ERR_CONFIG', '--run and --checkpoint cannot be used together: --checkpoint names the model itself');
  }
  if (checkpoint !== undefined && v.best) {
    throw new SrganError('SRGAN_ERR_CONFIG', "--best picks among a run's checkpoints; use it with --run RUN (or alone for the newest run), not with --checkpoint");
  }
  const chosen = checkpoint === undefined ? checkpointForRun(paths, runRef ?? null, v.best ? 'best' : 'latest', { onWarning: warn }) : null;
  // Production mode silences tfjs' console banners (the cpu backend's "install tfjs-node" notice),
  // which would otherwise land among our progress lines; this process only runs inference.
  tf.env().set('PROD', true);
  const selection = await selectBackend(backend);
  const loaded = await loadGenerator(chosen?.dir ?? checkpoint!, { onWarning: warn });
  let run = chosen?.run ?? null;
  if (run === null && loaded.runId !== undefined && fs.existsSync(paths.db)) run = findRun(paths.db, loaded.runId);
  const step = loaded.step ?? null;
  const what = `${loaded.config.kind} ×${loaded.scale}`;
  let describe: string;
  if (chosen !== null) {
    const why = chosen.picked === 'best' ? `best checkpoint (${describeBest(chosen)})` : 'latest checkpoint';
    const which = runRef === undefined ? `newest run with a checkpoint, ${chosen.run.id} (${chosen.run.name})` : `run ${chosen.run.id} (${chosen.run.name})`;
    describe = `using the ${which}, ${why} at step ${chosen.step}: ${loaded.source} [${what}]`;
  } else {
    describe = `using ${loaded.source}${step === null ? '' : ` (step ${step}${run ? `, run ${run.id}` : ''})`} [${what}]`;
  }
  return { loaded, run, step, backend: selection, describe };
}

/** What a 'best' checkpoint was best by: its gain over bicubic (and PSNR), or its PSNR for an older run. */
function describeBest(c: ChosenCheckpoint): string {
  if (c.bestBy === 'psnr' || c.gain === null) return `val PSNR ${formatDb(c.psnr ?? Number.NaN)} dB`;
  return `val gain ${signedDb(c.gain)} over bicubic${c.psnr === null ? '' : `, PSNR ${formatDb(c.psnr)} dB`}`;
}

/** The run with exactly this id, or null (a checkpoint copied from another home). */
function findRun(dbFile: string, id: string): RunRow | null {
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

function sourceJson(s: Source): { source: string; run: { id: string; name: string } | null; step: number | null; scale: number; generator: GeneratorConfig } {
  return { source: s.loaded.source, run: s.run && { id: s.run.id, name: s.run.name }, step: s.step, scale: s.loaded.scale, generator: s.loaded.config };
}

// ---- options -------------------------------------------------------------------------------------

interface TilingRequest {
  tile?: number | 'auto';
  overlap?: number;
  blend?: number;
}

function parseTiling(v: Values): TilingRequest {
  const out: TilingRequest = {};
  const tile = str(v.tile);
  if (tile !== undefined) out.tile = tile === 'auto' ? 'auto' : intFlag('--tile', tile, 1);
  if (v.overlap !== undefined) out.overlap = intFlag('--overlap', v.overlap, 0);
  if (v.blend !== undefined) out.blend = intFlag('--blend', v.blend, 0);
  return out;
}

/**
 * Tiling for a generator: overlap min(receptive radius, 32) and, when that covers the radius (tiled
 * output then equals untiled), no cross-fade; otherwise DEFAULT_TILE_OPTIONS' blend. Tile 'auto'.
 */
function tileOptions(config: GeneratorConfig, scale: 2 | 4, req: TilingRequest): Pick<TileOptions, 'tile' | 'overlap' | 'blend'> {
  const radius = receptiveRadius(config, scale);
  const overlap = req.overlap ?? Math.min(radius, MAX_DEFAULT_OVERLAP);
  const blend = req.blend ?? (overlap >= radius ? 0 : DEFAULT_TILE_OPTIONS.blend);
  const tile = req.tile ?? DEFAULT_TILE_OPTIONS.tile;
  if (tile !== 'auto' && tile <= 2 * overlap + blend) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--tile must be more than 2·overlap + blend = ${2 * overlap + blend} (overlap ${overlap}, blend ${blend}), got ${tile}`);
  }
  return { tile, overlap, blend };
}

function parseBackend(v: Values[string]): BackendRequest {
  const b = str(v) ?? 'auto';
  if (b !== 'auto' && !(BACKEND_NAMES as readonly string[]).includes(b)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--backend must be auto or one of ${BACKEND_NAMES.join(', ')}, got "${b}"`);
  }
  return b as BackendRequest;
}

function str(v: Values[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function list(v: Values[string]): string[] {
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

function intFlag(flag: string, v: Values[string], min: number): number {
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new SrganError('SRGAN_ERR_CONFIG', `${flag} must be an integer >= ${min}, got "${String(v)}"`);
  }
  return n;
}

function formatDb(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : v > 0 ? 'inf' : '-';
}

/** A signed difference in dB: +1.55, -0.30, and +0.00 for anything that rounds to zero. */
function formatGain(v: number): string {
  if (!Number.isFinite(v)) return formatDb(v);
  const t = Math.abs(v).toFixed(2);
  return `${v < 0 && t !== '0.00' ? '-' : '+'}${t}`;
}

// Same layout as main.ts's table (which cannot be imported: main.ts runs the CLI when loaded).
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
