// `srgan upscale`: the user's own images, enlarged by a trained generator, tiled so any size fits.
// Usage and --help live with its entry in use-commands.ts, which imports this module lazily (it loads
// tfjs and sharp, which the other commands do not need).

import fs from 'node:fs';
import path from 'node:path';

import { listImages } from '../data/image/files.js';
import { homePaths } from '../store/home.js';
import { SrganError } from '../util/errors.js';
import { str, type Values } from './flags.js';
import { upscaleFile } from '../models/infer/upscale.js';
import { openRunnableSource, parseBackend, parseRuntime, runnableModel, sourceJson } from './model-source.js';
import { parseTiling, tileOptions } from './tiling-options.js';

/** What `--format` may ask for, and the extension it writes. */
const FORMAT_EXT: Readonly<Record<string, string>> = Object.freeze({ png: '.png', jpeg: '.jpg', webp: '.webp' });
/** Input extensions writeUpscaled can also write (kept as they are when no --format is given). */
const WRITABLE_EXT: Readonly<Record<string, 'png' | 'jpeg' | 'webp'>> = Object.freeze({
  '.png': 'png',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.webp': 'webp',
});

interface Job {
  in: string;
  /** Output path relative to --out (shown in progress lines). */
  rel: string;
  out: string;
}

type FileReport =
  | { in: string; out: string; width: number; height: number; outWidth: number; outHeight: number; ms: number }
  | { in: string; error: string; code?: string };

/** `srgan upscale IN... --out DIR [--run RUN | --checkpoint PATH | --model FILE] [--best] [tiling] [--format F] [--runtime R] [--backend B] [--json]` */
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
  const runtime = parseRuntime(v.runtime);
  if (runtime === 'onnx' && v.backend !== undefined) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      '--backend picks a tfjs backend, and --runtime onnx runs ONNX Runtime instead; give one of them',
    );
  }
  const asJson = Boolean(v.json);
  const outDir = path.resolve(out);
  // Everything about the inputs is checked before the model is loaded: a typo fails in milliseconds.
  const jobs = collectJobs(args, outDir, format);

  const warn = (line: string) => console.error(`srgan upscale: ${line}`);
  const source = await openRunnableSource(v, homePaths(), backend, warn);
  const { model: gen, runtime: chosen, describe } = await runnableModel(source, runtime, v.backend !== undefined, warn);
  const opts = tileOptions(source.loaded.config, source.loaded.scale, tiling);
  console.error(`srgan upscale: ${source.describe}; ${jobs.length} file${jobs.length === 1 ? '' : 's'} → ${outDir} (${describe})`);

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
    console.log(
      JSON.stringify({
        ...sourceJson(source, chosen),
        backend: chosen === 'tfjs' ? source.backend.name : null,
        tiling: opts,
        files: reports,
        // The process's peak resident memory (model, runtime and every file): what the run cost.
        peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      }),
    );
  } else {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `${reports.length - failed} of ${reports.length} file${reports.length === 1 ? '' : 's'} upscaled ×${source.loaded.scale} into ${outDir} in ${s} s`,
    );
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
      if (files.length === 0)
        throw new SrganError('SRGAN_ERR_CONFIG', `${arg}: no images (png, jpg, jpeg, webp, tif, tiff, gif, avif) in this folder`);
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
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `${other.in} and ${j.in} would both be written to ${j.out}; upscale them into separate --out folders`,
      );
    }
    byOut.set(target, j);
  }
  for (const j of byInput.values()) {
    // Follows links; null while nothing is there, which cannot be an input.
    const id = fileId(j.out);
    const victim = id === null ? undefined : byInput.get(id);
    if (victim === j)
      throw new SrganError('SRGAN_ERR_CONFIG', `${j.in} would be overwritten by its own output; choose another --out folder`);
    if (victim !== undefined)
      throw new SrganError('SRGAN_ERR_CONFIG', `${victim.in} would be overwritten by the output of ${j.in}; choose another --out folder`);
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
  const outExt = kept === want ? ext : FORMAT_EXT[want];
  const outRel = rel.slice(0, rel.length - ext.length) + outExt;
  return { in: input, rel: outRel, out: path.join(outDir, outRel) };
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
