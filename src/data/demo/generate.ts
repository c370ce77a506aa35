// The built-in demo data set: when the daemon is started without `--data`, it draws a varied, seeded set
// of photo-like PNGs so the model has real edges, text, gradients and textures to learn from.
//
// Each image is drawn at 2× or 4× its final size (a JS-computed background, blurred shadows, then an SVG
// layer of shapes, lines and text rendered by sharp/librsvg) and downscaled with sharp, whose downscaling
// is aligned, so edges come out naturally antialiased. Every image has its own PRNG stream derived from
// (seed, index): the bytes do not depend on the order in which images finish.
//
// Completion marker: the manifest is written last, atomically (write to a temp file, then rename). A
// directory with a manifest whose parameters match and whose files all have the recorded sizes is
// complete; anything else is regenerated.
//
// This file holds the public API, the manifest and the file writing; the drawing of one image is in
// draw.ts (scenes, SVG layer) and textures.ts (PRNG, colours, noise, backgrounds, stripe paths).

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';

import { SrganError } from '../../util/errors.js';
import { renderImage } from './draw.js';
import { deriveSeed } from '../../util/prng.js';

export interface DemoOptions {
  /** Number of images (default 64). */
  count?: number;
  /** PRNG seed (default 1). The same seed gives byte-identical files on the same machine. */
  seed?: number;
  /** Called after each image is written, and once with (total, total) when a complete set is reused. */
  onProgress?: (done: number, total: number) => void;
}

/** Bump when the drawing code changes, so existing demo sets are regenerated. */
const GENERATOR_VERSION = 1;
const MANIFEST = 'demo-manifest.json';
const FILE_RE = /^demo-\d{4}\.png$/;
const DEFAULTS = Object.freeze({ count: 64, seed: 1 });
const KNOWN_OPTIONS = new Set(['count', 'seed', 'onProgress']);

interface ManifestImage {
  file: string;
  width: number;
  height: number;
  bytes: number;
  /** What the image contains: its scene kind, background kind, and e.g. 'text', 'shadows', 'pattern'. */
  kinds: string[];
}

interface Manifest {
  format: 'srgan-demo';
  params: { generator: number; count: number; seed: number };
  /** Whether SVG text rendered with real glyphs when the set was made (without fonts, pango draws boxes). */
  fonts: boolean;
  images: ManifestImage[];
}

/**
 * Makes (or reuses) the demo image set in `dir` and returns the absolute paths of its PNGs, in order.
 * Defaults: count 64, seed 1. Errors reading or writing the set are SrganError SRGAN_ERR_DATA.
 */
export async function generateDemoData(dir: string, opts: DemoOptions = {}): Promise<string[]> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`dir: expected a non-empty path, got ${String(dir)}`);
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`opts.${key}: unknown option (expected count, seed or onProgress)`);
  }
  const count = opts.count ?? DEFAULTS.count;
  const seed = opts.seed ?? DEFAULTS.seed;
  if (!Number.isInteger(count) || count < 1 || count > 10_000) {
    throw new RangeError(`count: expected an integer in 1..10000, got ${count}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed: expected an integer, got ${seed}`);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') {
    throw new TypeError(`onProgress: expected a function, got ${typeof opts.onProgress}`);
  }
  const root = path.resolve(dir);
  const params = { generator: GENERATOR_VERSION, count, seed };

  const existing = await readManifest(root);
  if (existing && sameParams(existing.params, params) && (await filesIntact(root, existing.images))) {
    opts.onProgress?.(count, count);
    return existing.images.map((im) => path.join(root, im.file));
  }

  try {
    await fsp.mkdir(root, { recursive: true });
    // Remove the old marker first: if we crash midway, the directory must not look complete.
    await fsp.rm(path.join(root, MANIFEST), { force: true });
  } catch (err) {
    throw dataError(`cannot prepare demo directory ${root}`, err);
  }

  const fonts = await canRenderText();
  const images = new Array<ManifestImage>(count);
  let done = 0;
  let next = 0;
  let failed = false;
  // JS drawing of one image overlaps with sharp's native work on others.
  const lanes = Math.max(2, Math.min(8, availableParallelism()));
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      const file = `demo-${String(i).padStart(4, '0')}.png`;
      try {
        const { png, width, height, kinds } = await renderImage(deriveSeed(seed, i), i);
        await fsp.writeFile(path.join(root, file), png);
        images[i] = { file, width, height, bytes: png.length, kinds };
      } catch (err) {
        failed = true; // the other lanes stop after their current image
        throw dataError(`cannot generate demo image ${path.join(root, file)}`, err);
      }
      done++;
      opts.onProgress?.(done, count);
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane));

  await removeStale(root, new Set(images.map((im) => im.file)));
  const manifest: Manifest = { format: 'srgan-demo', params, fonts, images };
  const tmp = path.join(root, `${MANIFEST}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, JSON.stringify(manifest, null, 1) + '\n');
    await fsp.rename(tmp, path.join(root, MANIFEST));
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw dataError(`cannot write demo manifest in ${root}`, err);
  }
  return images.map((im) => path.join(root, im.file));
}

/** Reads the manifest of a demo set in `dir`, or null when it is missing or malformed. */
export async function readDemoManifest(dir: string): Promise<Manifest | null> {
  return readManifest(path.resolve(dir));
}

let textProbe: Promise<boolean> | undefined;

/**
 * Whether sharp/librsvg draws SVG <text> with real glyphs here. Without any font, pango still draws
 * every character as a same-sized "missing glyph" box, so the probe compares the ink of "iiii" and
 * "WWWW": real glyphs differ a lot, boxes do not. Computed once per process. Demo images are drawn the
 * same way either way (boxes are still fine detail); the answer is recorded in the manifest.
 */
export function canRenderText(): Promise<boolean> {
  textProbe ??= (async () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="32"><rect width="160" height="32" fill="#fff"/>' +
      '<g font-family="DejaVu Sans, sans-serif" font-size="22" fill="#000">' +
      '<text x="4" y="24">iiii</text><text x="84" y="24">WWWW</text></g></svg>';
    try {
      const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      let narrow = 0;
      let wide = 0;
      for (let p = 0; p < info.width * info.height; p++) {
        if (data[p * info.channels] < 128) {
          if (p % info.width < 80) narrow++;
          else wide++;
        }
      }
      return narrow > 10 && wide > 2 * narrow;
    } catch {
      return false;
    }
  })();
  return textProbe;
}

function dataError(what: string, err: unknown): SrganError {
  const msg = err instanceof Error ? err.message : String(err);
  return new SrganError('SRGAN_ERR_DATA', `${what}: ${msg}`, { cause: err });
}

function sameParams(a: Manifest['params'], b: Manifest['params']): boolean {
  return a.generator === b.generator && a.count === b.count && a.seed === b.seed;
}

// The manifest is a file on disk, so it is validated before it is trusted (docs/style.md §2).
async function readManifest(root: string): Promise<Manifest | null> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(path.join(root, MANIFEST), 'utf8'));
  } catch {
    return null;
  }
  const m = raw as Partial<Manifest> | null;
  const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
  if (
    !m ||
    typeof m !== 'object' ||
    m.format !== 'srgan-demo' ||
    !m.params ||
    typeof m.params !== 'object' ||
    !isInt(m.params.generator) ||
    !isInt(m.params.count) ||
    !isInt(m.params.seed) ||
    !Array.isArray(m.images) ||
    m.images.length !== m.params.count
  ) {
    return null;
  }
  for (const im of m.images as unknown[]) {
    const e = im as Partial<ManifestImage> | null;
    if (
      !e ||
      typeof e.file !== 'string' ||
      !FILE_RE.test(e.file) ||
      !isInt(e.width) ||
      !isInt(e.height) ||
      !isInt(e.bytes) ||
      !Array.isArray(e.kinds)
    ) {
      return null;
    }
  }
  return m as Manifest;
}

async function filesIntact(root: string, images: readonly ManifestImage[]): Promise<boolean> {
  for (const im of images) {
    try {
      const st = await fsp.stat(path.join(root, im.file));
      if (!st.isFile() || st.size !== im.bytes) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Deletes demo-NNNN.png files (and our temp manifests) that are not part of the new set. */
async function removeStale(root: string, keep: ReadonlySet<string>): Promise<void> {
  const names = await fsp.readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    const ours = (FILE_RE.test(name) && !keep.has(name)) || (name.startsWith(`${MANIFEST}.`) && name.endsWith('.tmp'));
    if (ours) await fsp.rm(path.join(root, name), { force: true }).catch(() => undefined);
  }
}
