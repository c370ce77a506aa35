// `srgan eval`: PSNR-Y / SSIM-Y on a folder of HR images under each LR synthesis, against bicubic and
// other models, stored on the run. Usage and --help live with its entry in use-commands.ts, which
// imports this module lazily (it loads tfjs and sharp, which the other commands do not need).

import fs from 'node:fs';
import path from 'node:path';

import { listImages } from '../data/image/files.js';
import { lrSynthesisName, parseLrSynthesis, type LrSynthesis } from '../data/image/degrade.js';
import { EVAL_LR_SYNTHESES } from '../config/lr-synthesis.js';
import { openDb, recordEval } from '../store/db.js';
import { homePaths, type HomePaths } from '../store/home.js';
import { SrganError } from '../util/errors.js';
import { formatDb, formatGain, printTable } from './format.js';
import { intFlag, list, str, type Values } from './flags.js';
import { evaluate, type EvaluateResult, type Score } from '../models/infer/evaluate.js';
import type { UpscaleModel } from '../models/infer/tiling.js';
import { loadCompareModel, openRunnableSource, parseBackend, sourceJson } from './model-source.js';
import { tileOptions } from './tiling-options.js';

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
  if (data === undefined)
    throw new SrganError('SRGAN_ERR_CONFIG', '--data DIR is required: a folder of high-resolution images to score on');
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
  if (files.length === 0)
    throw new SrganError('SRGAN_ERR_DATA', `--data ${data}: no images (png, jpg, jpeg, webp, tif, tiff, gif, avif) in this folder`);

  const paths = homePaths();
  const warn = (line: string) => console.error(`srgan eval: ${line}`);
  const source = await openRunnableSource(v, paths, backend, warn);
  const { gen, scale, config } = source.loaded;
  const lrNote = filters.length === 1 ? `LR ${filters[0].name}` : `${filters.length} LR syntheses`;
  console.error(
    `srgan eval: ${source.describe}; ${files.length} image${files.length === 1 ? '' : 's'} from ${dataDir}, ${lrNote} (backend ${source.backend.name})`,
  );

  const measured: { name: string; main: EvaluateResult; others: EvaluateResult[] }[] = [];
  const loaded: { path: string; gen: UpscaleModel & { dispose(): void } }[] = [];
  try {
    // Every --compare model is loaded and probed first: a wrong one fails before minutes of scoring.
    for (const c of compares) loaded.push(await loadCompareModel(c, scale));
    for (const [k, f] of filters.entries()) {
      if (filters.length > 1) console.error(`srgan eval: LR ${f.name} (${k + 1}/${filters.length})`);
      const main = await evaluate(gen, files, {
        scale,
        lr: f.lr,
        ...(border === undefined ? {} : { border }),
        ...tileOptions(config, scale, {}),
      });
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
    const row = (model: string, s: Score): ResultRow => ({
      model: label(model, name),
      lr: name,
      psnr: s.psnr,
      ssim: s.ssim,
      gain: s.psnr - bic.psnr,
      images: n,
    });
    results.push(row('model', main.model!), { ...row('bicubic', bic), gain: 0 }, ...others.map((o, k) => row(loaded[k].path, o.model!)));
    perModel.push(
      main.rows.map((r) => r.model),
      main.rows.map((r) => r.bicubic),
      ...others.map((o) => o.rows.map((r) => r.model)),
    );
    reports.push({
      lr: name,
      lrSynthesis: main.lr,
      model: main.model!,
      bicubic: bic,
      gain: main.gain!,
      compare: others.map((o, k) => ({ model: loaded[k].path, psnr: o.model!.psnr, ssim: o.model!.ssim, gain: o.gain! })),
      files: main.rows.map((r, i) => ({
        file: r.file,
        model: r.model,
        bicubic: r.bicubic,
        compare: others.map((o) => o.rows[i]?.model ?? null),
      })),
    });
  }
  const first = measured[0];
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
  console.log(
    `×${scale}, Y channel (BT.601), ${first.main.border} px border cropped, means over ${n} image${n === 1 ? '' : 's'} from ${dataDir}`,
  );
  console.log(
    `GAIN: PSNR-Y minus bicubic's on the same LR, dB. model: ${source.loaded.source}${source.step === null ? '' : ` (step ${source.step})`}`,
  );
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
function storeEvals(
  paths: HomePaths,
  runId: string,
  dataDir: string,
  results: ResultRow[],
  perImage: (Score | null)[][],
  files: string[],
  context: object,
): number {
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
