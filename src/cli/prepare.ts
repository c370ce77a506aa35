// `srgan prepare SRC_DIR... --out DATA_DIR`: argument parsing, the progress display and the summary.
// The work itself is src/data/prepare/pipeline.ts, loaded only when the command runs (it brings sharp, piscina
// and better-sqlite3 along).

import { availableParallelism } from 'node:os';

import { SrganError } from '../util/errors.js';
import { intFlag, type Values } from './flags.js';
import { clock } from './format.js';
import type { PrepareOptions, PrepareProgress, PrepareSummary } from '../data/prepare/pipeline.js';

const USAGE =
  'srgan prepare SRC_DIR... --out DATA_DIR [--patch N] [--levels 1,2,4,8] [--per-level N] [--seed N] [--alpha drop|flatten] ' +
  '[--predownscale] [--predownscale-models LIST] [--linear] [--max-pixels N] [--png-level N] [--workers N] [--quiet] [--json]';

/** Flag of each PrepareOptions field, so validation errors name what the user typed. */
const FLAGS: Record<string, string> = {
  out: '--out',
  patch: '--patch',
  levels: '--levels',
  perLevel: '--per-level',
  seed: '--seed',
  alpha: '--alpha',
  predownscaleModels: '--predownscale-models',
  maxPixels: '--max-pixels',
  pngLevel: '--png-level',
  workers: '--workers',
};

const str = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;

/** Plain progress lines when stderr is not a terminal: one every this many ms. */
const LINE_EVERY_MS = 10_000;
/** Redraws of the progress bar at most this often. */
const BAR_EVERY_MS = 100;

export const prepareCommand = {
  summary: 'cut a patch dataset (PNG patches + manifest.sqlite) from folders of photos; resumable',
  usage: USAGE,
  options: {
    out: str,
    patch: str,
    levels: str,
    'per-level': str,
    seed: str,
    alpha: str,
    predownscale: flag,
    'predownscale-models': str,
    linear: flag,
    'max-pixels': str,
    'png-level': str,
    workers: str,
    quiet: flag,
    json: flag,
  },
  positionals: [0, Number.POSITIVE_INFINITY] as const,
  help: {
    'SRC_DIR...': 'folders of photos (walked recursively: jpeg jpg png webp tiff tif gif avif, any case) or single files',
    '--out DATA_DIR': 'the dataset folder (new, empty, or an earlier run to resume): DATA_DIR/12/12678.png + manifest.sqlite',
    '--patch N': 'side of the square patches in px (default 256)',
    '--levels LIST': 'downscale factors to cut from, 1 = the photo itself (default 1,2,4,8)',
    '--per-level N': 'patches per level at most (default 8; a level of A px² gives at most ceil(2·A/patch²))',
    '--seed N': "seed of the crop positions, mixed with each file's sha256 (default 1)",
    '--alpha MODE': 'drop (default; as Pillow convert("RGB")) or flatten (composite on white)',
    '--predownscale': 'downscale every photo ×2 first (noisy sources)',
    '--predownscale-models LIST':
      'downscale ×2 first the photos whose EXIF camera model is in this comma-separated list, e.g. "Pixel 3,iPhone X"',
    '--linear': 'downscale in linear light instead of on sRGB values',
    '--max-pixels N': "skip images with more pixels than N (default 178956970, Pillow's decompression-bomb limit)",
    '--png-level N': "PNG zlib level 0..9 (default 4: files about 1% larger than at 6, Pillow's default, for about 22% less encoding CPU)",
    '--workers N': `decoding threads (default ${availableParallelism()}, the available cores)`,
    '--quiet': 'no progress display',
    '--json': 'print the summary as one JSON object on stdout',
  },
  async run(v: Values, positionals: string[]): Promise<number> {
    if (positionals.length === 0) {
      console.error(`srgan prepare: expected at least one SRC_DIR\n\nusage: ${USAGE}\n(srgan prepare --help for the options)`);
      return 2;
    }
    if (typeof v.out !== 'string') {
      console.error(`srgan prepare: --out DATA_DIR is required\n\nusage: ${USAGE}`);
      return 2;
    }
    const options = toOptions(v, positionals);
    const { prepare, checkPrepareOptions } = await import('../data/prepare/pipeline.js');
    try {
      checkPrepareOptions(options);
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError) {
        const m = /^(\w+)(\[\d+\])?: (.*)$/s.exec(err.message);
        const flag = m ? FLAGS[m[1]] : undefined;
        throw new SrganError('SRGAN_ERR_CONFIG', flag ? `${flag}: ${m![3]}` : err.message, { cause: err });
      }
      throw err;
    }

    const quiet = Boolean(v.quiet);
    const display = quiet ? null : new ProgressDisplay(process.stderr);
    const workers = options.workers ?? availableParallelism();
    const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    if (!quiet && workers > pool) {
      // sharp runs its decodes, resizes and PNG encodes on libuv's thread pool, sized once at start-up.
      process.stderr.write(
        `note: ${workers} workers share libuv's ${pool} threads for image work; run with UV_THREADPOOL_SIZE=${workers} to use them all\n`,
      );
    }

    const abort = new AbortController();
    let signals = 0;
    const onSignal = (): void => {
      signals++;
      if (signals === 1) {
        display?.clear();
        process.stderr.write('stopping after the sources in flight (Ctrl-C again to quit now; a rerun resumes either way)\n');
        abort.abort();
      } else process.exit(130);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let summary: PrepareSummary;
    try {
      summary = await prepare({ ...options, signal: abort.signal, onProgress: display ? (p) => display.update(p) : undefined });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      display?.finish();
    }
    if (v.json) console.log(JSON.stringify(summary));
    else printSummary(summary);
    return summary.interrupted ? 130 : 0;
  },
};

function toOptions(v: Values, sources: string[]): PrepareOptions {
  const o: PrepareOptions = { sources, out: v.out as string };
  const ints = [
    ['patch', 'patch'],
    ['per-level', 'perLevel'],
    ['seed', 'seed'],
    ['max-pixels', 'maxPixels'],
    ['png-level', 'pngLevel'],
    ['workers', 'workers'],
  ] as const;
  for (const [flag, field] of ints) {
    if (typeof v[flag] === 'string') o[field] = intFlag(`--${flag}`, v[flag]);
  }
  if (typeof v.levels === 'string') o.levels = v.levels.split(',').map((s) => intFlag('--levels', s.trim()));
  if (typeof v.alpha === 'string') o.alpha = v.alpha as PrepareOptions['alpha'];
  if (v.predownscale) o.predownscale = true;
  if (v.linear) o.linear = true;
  if (typeof v['predownscale-models'] === 'string') {
    o.predownscaleModels = v['predownscale-models']
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
  return o;
}

/** A one-line bar on a terminal, plain lines every 10 s otherwise. */
class ProgressDisplay {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #lastDraw = -Infinity;
  #drawn = false;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = Boolean(out.isTTY);
  }

  update(p: PrepareProgress): void {
    const every = this.#tty ? BAR_EVERY_MS : LINE_EVERY_MS;
    if (p.processed < p.toProcess && p.elapsedMs - this.#lastDraw < every) return;
    this.#lastDraw = p.elapsedMs;
    if (this.#tty) {
      this.#out.write(`\r\x1b[K${this.#bar(p)}`);
      this.#drawn = true;
    } else this.#out.write(`prepare: ${this.#line(p)}\n`);
  }

  clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[K');
    this.#drawn = false;
  }

  finish(): void {
    if (this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }

  #line(p: PrepareProgress): string {
    const secs = Math.max(p.elapsedMs / 1000, 1e-3);
    const done = p.previouslyDone + p.processed;
    const left = p.toProcess - p.processed;
    const eta = p.processed > 0 ? (left * secs) / p.processed : NaN;
    return (
      `${done}/${p.found} files ${((100 * done) / p.found).toFixed(1)}%  ` +
      `${(p.sourceMegapixels / secs).toFixed(1)} MP/s  ${(p.patches / secs).toFixed(1)} patches/s  ` +
      `${p.patches} patches${p.skipped + p.duplicates ? `, ${p.skipped} skipped, ${p.duplicates} duplicate` : ''}  ETA ${clock(eta)}`
    );
  }

  #bar(p: PrepareProgress): string {
    const width = 24;
    const done = p.previouslyDone + p.processed;
    const filled = Math.round((width * done) / Math.max(p.found, 1));
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#line(p)}`;
    const cols = this.#out.columns || 120;
    return line.length > cols - 1 ? line.slice(0, cols - 1) : line;
  }
}

function counts(c: Partial<Record<string, number>>): string {
  return Object.entries(c)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

const SHOW_SKIPPED = 20;

function printSummary(s: PrepareSummary): void {
  const secs = s.elapsedMs / 1000;
  console.log(`dataset ${s.dataDir}: ${s.found} image files found${s.previouslyDone ? `, ${s.previouslyDone} done by earlier runs` : ''}`);
  console.log(
    `this run: ${s.processed} sources: ${s.done} done, ${s.duplicates} duplicate, ${s.skipped} skipped; ` +
      `${s.patches} patches (${(s.pngBytes / 1e6).toFixed(1)} MB of PNG)`,
  );
  const reasons = counts(s.reasons);
  if (reasons) console.log(`  skipped by reason: ${reasons}`);
  console.log(
    `  ${clock(secs)} (${secs.toFixed(1)} s): ${s.megapixelsPerSec.toFixed(1)} source MP/s, ${s.patchesPerSec.toFixed(1)} patches/s, ${s.workers} workers`,
  );
  if (s.straysRemoved) console.log(`  removed ${s.straysRemoved} uncommitted patch files of an interrupted run`);
  const t = s.totals;
  console.log(
    `dataset total: ${t.sources.done} done, ${t.sources.duplicate} duplicate, ${t.sources.skipped} skipped sources` +
      `${counts(t.reasons) ? ` (${counts(t.reasons)})` : ''}; ${t.patches} patches`,
  );
  if (s.skippedFiles.length) {
    console.log(
      `skipped files${s.skippedFiles.length > SHOW_SKIPPED ? ` (first ${SHOW_SKIPPED} of ${s.skippedFiles.length}; all are in ${s.manifest}, table sources)` : ''}:`,
    );
    for (const f of s.skippedFiles.slice(0, SHOW_SKIPPED)) console.log(`  ${f.reason.padEnd(12)} ${f.path}: ${f.message}`);
  }
  for (const e of s.walkErrors) console.log(`  could not list ${e.path}: ${e.message}`);
  if (s.interrupted) console.log('interrupted: run the same command again to continue where it stopped');
}
