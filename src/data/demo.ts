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

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

import sharp, { type OverlayOptions } from 'sharp';

import { SrganError } from '../errors.js';
import { deriveSeed, mulberry32 } from './prng.js';

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
  const images: ManifestImage[] = new Array(count);
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
        if (data[p * info.channels]! < 128) {
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

// The manifest is a file on disk, so it is validated before it is trusted (STYLE.md §2).
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
    !m || typeof m !== 'object' || m.format !== 'srgan-demo' || !m.params || typeof m.params !== 'object' ||
    !isInt(m.params.generator) || !isInt(m.params.count) || !isInt(m.params.seed) ||
    !Array.isArray(m.images) || m.images.length !== m.params.count
  ) {
    return null;
  }
  for (const im of m.images as unknown[]) {
    const e = im as Partial<ManifestImage> | null;
    if (
      !e || typeof e.file !== 'string' || !FILE_RE.test(e.file) || !isInt(e.width) || !isInt(e.height) ||
      !isInt(e.bytes) || !Array.isArray(e.kinds)
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

// ---------------------------------------------------------------------------------------------------
// Drawing

type Rgb = [number, number, number];

class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  float(a = 0, b = 1): number {
    return a + (b - a) * this.#next();
  }
  int(a: number, b: number): number {
    return a + Math.floor(this.#next() * (b - a + 1));
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)]!;
  }
  /** Log-uniform in [a, b]: as many small values as large ones, for sizes and periods. */
  logFloat(a: number, b: number): number {
    return Math.exp(this.float(Math.log(a), Math.log(b)));
  }
}

function hsl(h: number, s: number, l: number): Rgb {
  const f = (n: number): number => {
    const k = (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

const hex = (c: Rgb): string =>
  '#' + c.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, '0')).join('');
const mix = (a: Rgb, b: Rgb, t: number): Rgb => [0, 1, 2].map((k) => a[k]! + (b[k]! - a[k]!) * t) as Rgb;
const fmt = (v: number): string => (Math.round(v * 100) / 100).toString();

/** A palette around one hue: mostly muted, like photographs, with the occasional saturated accent. */
function palette(r: Rng): Rgb[] {
  const base = r.float(0, 360);
  const scheme = r.pick([0, 30, 150, 180, 210]);
  const out: Rgb[] = [];
  for (let i = 0; i < 6; i++) {
    const h = (base + (i % 2 === 1 ? scheme : 0) + r.float(-20, 20) + 360) % 360;
    const s = r.chance(0.2) ? r.float(0.6, 0.95) : r.float(0.05, 0.55);
    out.push(hsl(h, s, r.float(0.08, 0.92)));
  }
  return out;
}

/** Seeded value noise in [0, 1] on a w×h grid, cell size in pixels, smoothstep-interpolated. */
function valueNoise(r: Rng, w: number, h: number, cell: number): Float32Array {
  const gw = Math.ceil(w / cell) + 2;
  const gh = Math.ceil(h / cell) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = r.float();
  const out = new Float32Array(w * h);
  const ox = r.float(0, 1);
  const oy = r.float(0, 1);
  const xi = new Int32Array(w);
  const xt = new Float32Array(w);
  for (let x = 0; x < w; x++) {
    const fx = x / cell + ox;
    xi[x] = Math.floor(fx);
    const t = fx - xi[x]!;
    xt[x] = t * t * (3 - 2 * t);
  }
  for (let y = 0; y < h; y++) {
    const fy = y / cell + oy;
    const iy = Math.floor(fy);
    let ty = fy - iy;
    ty = ty * ty * (3 - 2 * ty);
    const r0 = iy * gw;
    const r1 = r0 + gw;
    for (let x = 0; x < w; x++) {
      const i = xi[x]!;
      const t = xt[x]!;
      const a = grid[r0 + i]! + (grid[r0 + i + 1]! - grid[r0 + i]!) * t;
      const b = grid[r1 + i]! + (grid[r1 + i + 1]! - grid[r1 + i]!) * t;
      out[y * w + x] = a + (b - a) * ty;
    }
  }
  return out;
}

/** Sum of octaves of value noise, renormalised to [0, 1]. */
function fractalNoise(r: Rng, w: number, h: number, cell: number, octaves: number, gain: number): Float32Array {
  const out = new Float32Array(w * h);
  let amp = 1;
  let total = 0;
  for (let o = 0; o < octaves && cell >= 1; o++, cell /= 2, amp *= gain) {
    const n = valueNoise(r, w, h, cell);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + amp * n[i]!;
    total += amp;
  }
  // Stretch the contrast: averages of octaves crowd around 0.5.
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, (out[i]! / total - 0.5) * 1.8 + 0.5));
  return out;
}

const BACKGROUNDS = ['gradient', 'clouds', 'blurred-noise', 'noise', 'stripes', 'checker', 'paper'] as const;
type Background = (typeof BACKGROUNDS)[number];

/**
 * The background at final resolution (w×h), as packed RGB. Backgrounds with hard edges (square-wave
 * stripes, checkerboards) are not drawn here: they go into the SVG layer as one path, so they are
 * rendered at the supersampled resolution and antialiased like every other edge.
 */
function drawBackground(r: Rng, kind: Background, w: number, h: number, s: Svg): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  const n = w * h;
  const pal = s.pal;
  const c0 = r.pick(pal);
  let c1 = r.pick(pal);
  if (c1 === c0) c1 = mix(c0, luma(c0) > 128 ? [0, 0, 0] : [255, 255, 255], 0.5);
  switch (kind) {
    case 'gradient': {
      const ang = r.float(0, Math.PI * 2);
      const dx = Math.cos(ang) / w;
      const dy = Math.sin(ang) / h;
      const stops = [c0, r.pick(pal), c1];
      const vignette = r.float(0, 0.5);
      for (let y = 0, o = 0; y < h; y++) {
        for (let x = 0; x < w; x++, o += 3) {
          const t = Math.min(1, Math.max(0, 0.5 + (x - w / 2) * dx + (y - h / 2) * dy));
          const vx = x / w - 0.5;
          const vy = y / h - 0.5;
          rampShaded(stops, t, 1 - vignette * (vx * vx + vy * vy) * 2, out, o);
        }
      }
      break;
    }
    case 'clouds':
    case 'paper': {
      const paper = kind === 'paper';
      const f = fractalNoise(r, w, h, r.logFloat(4, 80), r.int(3, 6), r.float(0.4, 0.65));
      const light: Rgb = paper ? hsl(r.float(20, 60), r.float(0, 0.3), r.float(0.82, 0.96)) : c0;
      const stops: Rgb[] = paper ? [mix(light, [0, 0, 0], 0.08), light] : [c0, r.pick(pal), c1];
      for (let i = 0, o = 0; i < n; i++, o += 3) rampShaded(stops, f[i]!, 1, out, o);
      break;
    }
    case 'blurred-noise':
    case 'noise': {
      // Per-channel noise: fine grain ('noise', a mix of per-pixel noise and 2-px blotches) or soft blotches.
      const fine = kind === 'noise';
      const amp = fine ? r.float(25, 90) : r.float(60, 160);
      const mono = r.chance(0.5);
      const channel = (): Float32Array => {
        if (!fine) return valueNoise(r, w, h, r.logFloat(1.5, 8));
        const a = valueNoise(r, w, h, 2);
        for (let i = 0; i < n; i++) a[i] = 0.5 * a[i]! + 0.5 * r.float();
        return a;
      };
      const chans = mono ? [channel()] : [channel(), channel(), channel()];
      for (let i = 0, o = 0; i < n; i++, o += 3) {
        for (let k = 0; k < 3; k++) out[o + k] = clampByte(c0[k]! + amp * (chans[mono ? 0 : k]![i]! - 0.5) * (fine ? 1.6 : 1));
      }
      break;
    }
    case 'stripes':
    case 'checker': {
      const period = r.logFloat(3, 60);
      const ang = r.float(0, 180);
      if (kind === 'stripes' && r.chance(0.4)) {
        // A sinusoidal grating is band-limited, so it can be sampled directly at final resolution.
        const ca = Math.cos((ang * Math.PI) / 180) / period;
        const sa = Math.sin((ang * Math.PI) / 180) / period;
        for (let y = 0, o = 0; y < h; y++) {
          for (let x = 0; x < w; x++, o += 3) rampShaded([c0, c1], 0.5 + 0.5 * Math.sin(2 * Math.PI * (x * ca + y * sa)), 1, out, o);
        }
      } else {
        for (let i = 0, o = 0; i < n; i++, o += 3) out.set(c0, o);
        s.body.unshift(s.stripePath(w / 2, h / 2, Math.hypot(w, h) / 2, period, kind, ang, hex(c1), r.float(0.3, 0.7)));
        s.kinds.add(kind);
      }
      break;
    }
  }
  return out;
}

/** Writes ramp(t) × shade at out[o..o+2]. */
function rampShaded(stops: readonly Rgb[], t: number, shade: number, out: Uint8Array, o: number): void {
  const f = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(f));
  const u = f - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  for (let k = 0; k < 3; k++) out[o + k] = clampByte((a[k]! + (b[k]! - a[k]!) * u) * shade);
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** Builds one SVG layer in final-pixel coordinates; the viewBox renders it at ss×. */
class Svg {
  readonly defs: string[] = [];
  readonly body: string[] = [];
  /** Silhouettes drawn into the separately blurred shadow layer. */
  readonly shadows: string[] = [];
  readonly kinds = new Set<string>();
  #id = 0;
  constructor(
    readonly r: Rng,
    readonly w: number,
    readonly h: number,
    readonly pal: Rgb[],
  ) {}

  id(prefix: string): string {
    return `${prefix}${this.#id++}`;
  }

  colour(): string {
    return hex(this.r.pick(this.pal));
  }

  /** A fill: a solid colour, or a linear/radial gradient (returned as url(#…)). */
  fill(): string {
    const r = this.r;
    const p = r.float();
    if (p < 0.55) return this.colour();
    const id = this.id('g');
    const stops = `<stop offset="0" stop-color="${this.colour()}"/><stop offset="1" stop-color="${this.colour()}"/>`;
    if (p < 0.85) {
      this.defs.push(
        `<linearGradient id="${id}" x1="${fmt(r.float())}" y1="${fmt(r.float())}" x2="${fmt(r.float())}" y2="${fmt(r.float())}">${stops}</linearGradient>`,
      );
    } else {
      this.defs.push(`<radialGradient id="${id}" cx="${fmt(r.float(0.2, 0.8))}" cy="${fmt(r.float(0.2, 0.8))}" r="${fmt(r.float(0.4, 0.9))}">${stops}</radialGradient>`);
    }
    return `url(#${id})`;
  }

  /**
   * A random closed shape around (cx, cy) of radius about `size`; returns its geometry as an element
   * without paint, so it can be reused for the shadow and the clip path.
   */
  shape(cx: number, cy: number, size: number): (paint: string) => string {
    const r = this.r;
    const rot = fmt(r.float(0, 360));
    const kind = r.pick(['circle', 'ellipse', 'rect', 'polygon', 'star', 'blob'] as const);
    this.kinds.add(kind === 'circle' || kind === 'ellipse' ? 'ellipses' : 'polygons');
    switch (kind) {
      case 'circle':
        return (p) => `<circle cx="${fmt(cx)}" cy="${fmt(cy)}" r="${fmt(size)}" ${p}/>`;
      case 'ellipse': {
        const rx = fmt(size);
        const ry = fmt(size * r.float(0.25, 0.9));
        return (p) => `<ellipse cx="${fmt(cx)}" cy="${fmt(cy)}" rx="${rx}" ry="${ry}" transform="rotate(${rot} ${fmt(cx)} ${fmt(cy)})" ${p}/>`;
      }
      case 'rect': {
        const w = size * r.float(0.8, 2);
        const h = size * r.float(0.3, 1.5);
        const rr = r.chance(0.3) ? fmt(Math.min(w, h) * r.float(0.05, 0.3)) : '0';
        return (p) =>
          `<rect x="${fmt(cx - w / 2)}" y="${fmt(cy - h / 2)}" width="${fmt(w)}" height="${fmt(h)}" rx="${rr}" transform="rotate(${rot} ${fmt(cx)} ${fmt(cy)})" ${p}/>`;
      }
      case 'polygon':
      case 'star': {
        const k = r.int(3, 8);
        const inner = kind === 'star' ? r.float(0.35, 0.6) : 1;
        const a0 = r.float(0, Math.PI * 2);
        const pts: string[] = [];
        const m = kind === 'star' ? 2 * k : k;
        for (let i = 0; i < m; i++) {
          const rad = size * (i % 2 === 1 ? inner : 1) * (kind === 'polygon' ? r.float(0.75, 1) : 1);
          const a = a0 + (i * 2 * Math.PI) / m;
          pts.push(`${fmt(cx + rad * Math.cos(a))},${fmt(cy + rad * Math.sin(a))}`);
        }
        return (p) => `<polygon points="${pts.join(' ')}" ${p}/>`;
      }
      case 'blob': {
        const k = r.int(4, 7);
        const pts = Array.from({ length: k }, (_, i) => {
          const a = (i * 2 * Math.PI) / k;
          const rad = size * r.float(0.55, 1);
          return [cx + rad * Math.cos(a), cy + rad * Math.sin(a)] as const;
        });
        // Closed Catmull-Rom spline through the points, as cubic Béziers.
        let d = `M${fmt(pts[0]![0])} ${fmt(pts[0]![1])}`;
        for (let i = 0; i < k; i++) {
          const p0 = pts[(i + k - 1) % k]!;
          const p1 = pts[i]!;
          const p2 = pts[(i + 1) % k]!;
          const p3 = pts[(i + 2) % k]!;
          d += `C${fmt(p1[0] + (p2[0] - p0[0]) / 6)} ${fmt(p1[1] + (p2[1] - p0[1]) / 6)} ${fmt(p2[0] - (p3[0] - p1[0]) / 6)} ${fmt(
            p2[1] - (p3[1] - p1[1]) / 6,
          )} ${fmt(p2[0])} ${fmt(p2[1])}`;
        }
        return (p) => `<path d="${d}Z" ${p}/>`;
      }
    }
  }

  /**
   * Stripes, a checkerboard or dots clipped to a shape. Drawn as one path (librsvg's <pattern> costs about
   * 8 ms per filled shape at these sizes; a clipped path costs under 1 ms).
   */
  texture(geom: (paint: string) => string, cx: number, cy: number, size: number): void {
    const r = this.r;
    const id = this.id('c');
    this.defs.push(`<clipPath id="${id}">${geom('')}</clipPath>`);
    const kind = r.pick(['stripes', 'checker', 'dots'] as const);
    this.kinds.add(kind);
    const period = r.logFloat(2.2, Math.max(3, size / 2));
    const path = this.stripePath(cx, cy, size * 2.1, period, kind, r.float(0, 180), this.colour(), r.float(0.25, 0.7));
    this.body.push(`<g clip-path="url(#${id})">${path}</g>`);
  }

  /**
   * One path covering the disc of radius R around (cx, cy) with stripes (duty = filled fraction), a
   * checkerboard or dots of the given period, rotated by `angle` degrees.
   */
  stripePath(cx: number, cy: number, R: number, period: number, kind: 'stripes' | 'checker' | 'dots', angle: number, colour: string, duty: number): string {
    if (kind === 'dots') period = Math.max(period, (2 * R) / 60); // at most 60×60 dots
    const n = Math.min(400, Math.ceil((2 * R) / period));
    const x0 = cx - (n * period) / 2;
    const y0 = cy - (n * period) / 2;
    const span = fmt(n * period);
    let d = '';
    if (kind === 'dots') {
      const dr = fmt(period * duty * 0.6);
      const dd = fmt(period * duty * 1.2);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          d += `M${fmt(x0 + (i + 0.5) * period - period * duty * 0.6)} ${fmt(y0 + (j + 0.5) * period)}a${dr} ${dr} 0 1 0 ${dd} 0a${dr} ${dr} 0 1 0 -${dd} 0`;
        }
      }
    } else {
      const sw = fmt(period * (kind === 'checker' ? 0.5 : duty));
      for (let i = 0; i < n; i++) d += `M${fmt(x0 + i * period)} ${fmt(y0)}h${sw}v${span}h-${sw}z`;
      if (kind === 'checker') {
        // Vertical and horizontal stripes combined with even-odd filling make a checkerboard.
        for (let i = 0; i < n; i++) d += `M${fmt(x0)} ${fmt(y0 + i * period)}v${sw}h${span}v-${sw}z`;
      }
    }
    return `<path d="${d}" fill="${colour}" fill-rule="evenodd" transform="rotate(${fmt(angle)} ${fmt(cx)} ${fmt(cy)})"/>`;
  }

  /** A filled shape, sometimes textured, outlined or casting a shadow. */
  addShape(cx: number, cy: number, size: number, opts: { shadow?: boolean; texture?: number } = {}): void {
    const r = this.r;
    const geom = this.shape(cx, cy, size);
    if (opts.shadow ?? r.chance(0.35)) {
      const dx = size * r.float(0.04, 0.15);
      this.shadows.push(`<g transform="translate(${fmt(dx)} ${fmt(dx * r.float(0.5, 1.5))})">${geom('fill="#000"')}</g>`);
      this.kinds.add('shadows');
    }
    const opacity = r.chance(0.25) ? ` fill-opacity="${fmt(r.float(0.4, 0.9))}"` : '';
    const stroke = r.chance(0.3) ? ` stroke="${this.colour()}" stroke-width="${fmt(r.logFloat(0.5, 5))}"` : '';
    this.body.push(geom(`fill="${this.fill()}"${opacity}${stroke}`));
    if (r.chance(opts.texture ?? 0.2)) this.texture(geom, cx, cy, size);
  }

  /** Straight lines at many angles and widths, some in parallel bundles (hatching). */
  addLines(count: number): void {
    const r = this.r;
    this.kinds.add('lines');
    for (let i = 0; i < count; i++) {
      const x = r.float(-0.1, 1.1) * this.w;
      const y = r.float(-0.1, 1.1) * this.h;
      const a = r.float(0, Math.PI);
      const len = r.logFloat(10, Math.hypot(this.w, this.h));
      const dx = (Math.cos(a) * len) / 2;
      const dy = (Math.sin(a) * len) / 2;
      const width = r.logFloat(0.4, 6);
      const cap = r.pick(['butt', 'round', 'square']);
      const col = this.colour();
      const bundle = r.chance(0.25) ? r.int(3, 12) : 1;
      const gap = width * r.float(1.5, 4);
      for (let k = 0; k < bundle; k++) {
        const ox = -Math.sin(a) * gap * k;
        const oy = Math.cos(a) * gap * k;
        this.body.push(
          `<line x1="${fmt(x - dx + ox)}" y1="${fmt(y - dy + oy)}" x2="${fmt(x + dx + ox)}" y2="${fmt(y + dy + oy)}" stroke="${col}" stroke-width="${fmt(width)}" stroke-linecap="${cap}"/>`,
        );
      }
    }
  }

  /** Smooth open curves (wires, branches, handwriting-like strokes). */
  addCurves(count: number): void {
    const r = this.r;
    this.kinds.add('curves');
    for (let i = 0; i < count; i++) {
      const pts = Array.from({ length: 4 }, () => `${fmt(r.float(-0.1, 1.1) * this.w)} ${fmt(r.float(-0.1, 1.1) * this.h)}`);
      this.body.push(
        `<path d="M${pts[0]}C${pts[1]} ${pts[2]} ${pts[3]}" fill="none" stroke="${this.colour()}" stroke-width="${fmt(r.logFloat(0.5, 8))}" stroke-linecap="round"/>`,
      );
    }
  }

  /** One run of text; `size` in final pixels. */
  addText(x: number, y: number, size: number, text: string, opts: { rotate?: number; colour?: string; anchor?: string } = {}): void {
    const r = this.r;
    this.kinds.add('text');
    const family = r.pick(['DejaVu Sans, sans-serif', 'DejaVu Serif, serif', 'DejaVu Sans Mono, monospace', 'DejaVu Sans Condensed, sans-serif']);
    const weight = r.chance(0.3) ? ' font-weight="bold"' : '';
    const style = r.chance(0.15) ? ' font-style="italic"' : '';
    const anchor = opts.anchor ? ` text-anchor="${opts.anchor}"` : '';
    const rot = opts.rotate ? ` transform="rotate(${fmt(opts.rotate)} ${fmt(x)} ${fmt(y)})"` : '';
    this.body.push(
      `<text x="${fmt(x)}" y="${fmt(y)}" font-family="${family}" font-size="${fmt(size)}"${weight}${style}${anchor}${rot} fill="${opts.colour ?? this.colour()}">${escapeXml(text)}</text>`,
    );
  }

  /** A sign: a (rounded) plate with contrasting text, possibly tilted. */
  addSign(): void {
    const r = this.r;
    const size = r.logFloat(9, 48);
    const text = phrase(r, r.int(1, 3));
    const w = text.length * size * 0.62 + size;
    const h = size * 1.6;
    const x = r.float(-0.1, 0.9) * this.w;
    const y = r.float(0.05, 0.95) * this.h;
    const rot = r.chance(0.5) ? r.float(-25, 25) : 0;
    const plate = r.pick(this.pal);
    const ink = luma(plate) > 128 ? hex(mix(plate, [0, 0, 0], r.float(0.6, 0.95))) : hex(mix(plate, [255, 255, 255], r.float(0.6, 0.95)));
    this.shadows.push(`<rect x="${fmt(x + size * 0.15)}" y="${fmt(y + size * 0.15)}" width="${fmt(w)}" height="${fmt(h)}" transform="rotate(${fmt(rot)} ${fmt(x)} ${fmt(y)})" fill="#000"/>`);
    this.body.push(
      `<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(w)}" height="${fmt(h)}" rx="${fmt(size * r.float(0, 0.4))}" transform="rotate(${fmt(rot)} ${fmt(x)} ${fmt(y)})" fill="${hex(plate)}"${
        r.chance(0.5) ? ` stroke="${ink}" stroke-width="${fmt(size * 0.08)}"` : ''
      }/>`,
    );
    this.addText(x + w / 2, y + h * 0.7, size, text, { rotate: rot, colour: ink, anchor: 'middle' });
    this.kinds.add('sign');
  }

  /** A page of text lines of mixed sizes, with a heading and rules: the hardest case for SR. */
  addDocument(): void {
    const r = this.r;
    const m = r.float(0.03, 0.1) * this.w;
    let y = m + r.float(10, 40);
    const ink = hex(hsl(r.float(0, 360), r.float(0, 0.4), r.float(0.05, 0.3)));
    this.addText(m, y, r.logFloat(16, 40), phrase(r, r.int(1, 4)), { colour: ink });
    y += r.float(12, 30);
    while (y < this.h - m) {
      const size = r.chance(0.2) ? r.logFloat(14, 28) : r.logFloat(6.5, 16);
      y += size * r.float(1.2, 1.7);
      const chars = Math.max(3, Math.floor((this.w - 2 * m) / (size * 0.6)));
      let line = '';
      while (line.length < chars - 8) line += (line ? ' ' : '') + r.pick(WORDS);
      this.addText(m, y, size, line, { colour: r.chance(0.85) ? ink : this.colour() });
      if (r.chance(0.12)) {
        y += size * 0.6;
        this.body.push(`<line x1="${fmt(m)}" y1="${fmt(y)}" x2="${fmt(this.w - m)}" y2="${fmt(y)}" stroke="${ink}" stroke-width="${fmt(r.float(0.5, 2))}"/>`);
      }
    }
    this.kinds.add('document');
  }

  /** Buildings: rectangles with a grid of windows (fine regular detail at several scales). */
  addBuildings(groundY: number): void {
    const r = this.r;
    this.kinds.add('buildings');
    let x = r.float(-30, 10);
    while (x < this.w) {
      const bw = r.logFloat(20, this.w / 3);
      const bh = r.float(0.2, 0.8) * groundY;
      const wall = this.colour();
      this.body.push(`<rect x="${fmt(x)}" y="${fmt(groundY - bh)}" width="${fmt(bw)}" height="${fmt(bh)}" fill="${wall}"/>`);
      const cell = r.logFloat(3, 16);
      const win = r.pick(this.pal);
      let d = '';
      for (let wy = groundY - bh + cell * 0.6; wy < groundY - cell; wy += cell) {
        for (let wx = x + cell * 0.4; wx < x + bw - cell * 0.6; wx += cell) {
          d += `M${fmt(wx)} ${fmt(wy)}h${fmt(cell * 0.5)}v${fmt(cell * 0.6)}h${fmt(-cell * 0.5)}z`;
        }
      }
      if (d) this.body.push(`<path d="${d}" fill="${hex(win)}"/>`);
      x += bw + r.float(-5, 20);
    }
  }

  /** A ridge of hills whose top edge is 1-D fractal noise. */
  addHills(baseY: number, roughness: number, fill: string): void {
    const r = this.r;
    this.kinds.add('hills');
    const n = 64;
    const phases = [r.float(0, 6.3), r.float(0, 6.3), r.float(0, 6.3), r.float(0, 6.3)];
    let d = `M0 ${fmt(this.h)}`;
    for (let i = 0; i <= n; i++) {
      const x = (i / n) * this.w;
      let v = 0;
      for (let o = 0; o < 4; o++) v += Math.sin(x * 0.01 * 2 ** o + phases[o]!) / 2 ** o;
      v += r.float(-0.15, 0.15) * roughness;
      d += `L${fmt(x)} ${fmt(baseY - v * roughness * this.h * 0.12)}`;
    }
    this.body.push(`<path d="${d}L${fmt(this.w)} ${fmt(this.h)}Z" fill="${fill}"/>`);
  }

  /** Triangular trees with trunks. */
  addTrees(count: number, groundY: number): void {
    const r = this.r;
    this.kinds.add('trees');
    for (let i = 0; i < count; i++) {
      const x = r.float(0, this.w);
      const y = groundY + r.float(-0.05, 0.25) * this.h;
      const s = r.logFloat(6, 60);
      const col = hex(hsl(r.float(80, 160), r.float(0.2, 0.7), r.float(0.1, 0.4)));
      this.body.push(`<line x1="${fmt(x)}" y1="${fmt(y)}" x2="${fmt(x)}" y2="${fmt(y - s)}" stroke="#4a3520" stroke-width="${fmt(s * 0.12)}"/>`);
      this.body.push(`<polygon points="${fmt(x - s * 0.4)},${fmt(y - s * 0.3)} ${fmt(x + s * 0.4)},${fmt(y - s * 0.3)} ${fmt(x)},${fmt(y - s * 1.6)}" fill="${col}"/>`);
    }
  }

  svg(cw: number, ch: number, parts: readonly string[], defs: readonly string[]): Buffer {
    return Buffer.from(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${cw}" height="${ch}" viewBox="0 0 ${this.w} ${this.h}">` +
        (defs.length ? `<defs>${defs.join('')}</defs>` : '') +
        parts.join('') +
        '</svg>',
    );
  }
}

const WORDS = [
  'the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'station', 'platform', 'exit', 'open', 'closed',
  'coffee', 'bakery', 'street', 'avenue', 'north', 'south', 'river', 'bridge', 'museum', 'hotel', 'garden', 'market',
  'ticket', 'price', 'sale', 'menu', 'daily', 'fresh', 'bread', 'milk', 'photo', 'camera', 'light', 'shadow', 'window',
  'Monday', 'Friday', 'March', 'October', 'Café', 'Größe', 'naïve', 'Улица', 'Мост', 'ξένος', '№7', '42', '1984',
  '3.14', '€12,50', '$9.99', '24/7', 'km', 'AM', 'PM', 'Tel.', 'e-mail', 'www', 'Ölweg', 'Zürich', '#5', '(c)',
] as const;

function phrase(r: Rng, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(r.pick(WORDS));
  const s = out.join(' ');
  return r.chance(0.4) ? s.toUpperCase() : s.charAt(0).toUpperCase() + s.slice(1);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function luma(c: Rgb): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

const SCENES = ['shapes', 'document', 'texture', 'lines', 'landscape', 'mixed'] as const;

/** Draws image `index` with its own PRNG stream; returns the encoded PNG. */
async function renderImage(seed: number, index: number): Promise<{ png: Buffer; width: number; height: number; kinds: string[] }> {
  const r = new Rng(seed);
  // Scenes rotate with the index so every set, however small, mixes kinds; sizes are even.
  const scene = SCENES[index % SCENES.length]!;
  const w = 2 * r.int(96, 256);
  const h = 2 * r.int(96, 256);
  // Supersampling of the SVG layer: 4× for images up to about 270×270 px (canvas under 1.2 Mpx), else 2×.
  const ss = w * h * 16 <= 1_200_000 && r.chance(0.7) ? 4 : 2;
  const cw = w * ss;
  const ch = h * ss;
  const pal = palette(r);
  const s = new Svg(r, w, h, pal);
  const span = Math.min(w, h);

  let bg: Background;
  switch (scene) {
    case 'shapes': {
      bg = r.pick(['gradient', 'clouds', 'blurred-noise', 'gradient'] as const);
      const n = r.int(6, 24);
      for (let i = 0; i < n; i++) s.addShape(r.float(0, w), r.float(0, h), r.logFloat(span * 0.02, span * 0.35));
      if (r.chance(0.4)) s.addSign();
      break;
    }
    case 'document': {
      bg = r.pick(['paper', 'paper', 'gradient'] as const);
      s.addDocument();
      if (r.chance(0.5)) s.addShape(r.float(0, w), r.float(0, h), span * r.float(0.05, 0.15), { texture: 0 });
      if (r.chance(0.4)) s.addSign();
      break;
    }
    case 'texture': {
      bg = r.pick(['noise', 'stripes', 'checker', 'clouds', 'blurred-noise'] as const);
      const n = r.int(3, 9);
      for (let i = 0; i < n; i++) s.addShape(r.float(0, w), r.float(0, h), r.logFloat(span * 0.08, span * 0.4), { texture: 0.8 });
      if (r.chance(0.3)) s.addSign();
      break;
    }
    case 'lines': {
      bg = r.pick(['gradient', 'clouds', 'paper'] as const);
      s.addLines(r.int(15, 70));
      s.addCurves(r.int(2, 12));
      if (r.chance(0.3)) s.addSign();
      break;
    }
    case 'landscape': {
      bg = 'gradient';
      const sky = hsl(r.float(190, 230), r.float(0.2, 0.7), r.float(0.55, 0.85));
      s.body.push(`<rect width="${w}" height="${h}" fill="${hex(sky)}" fill-opacity="${fmt(r.float(0.5, 0.9))}"/>`);
      if (r.chance(0.6)) {
        const sun = s.id('g');
        s.defs.push(`<radialGradient id="${sun}"><stop offset="0.6" stop-color="#fff8e0"/><stop offset="1" stop-color="#fff8e0" stop-opacity="0"/></radialGradient>`);
        s.body.push(`<circle cx="${fmt(r.float(0, w))}" cy="${fmt(r.float(0, h * 0.4))}" r="${fmt(span * r.float(0.05, 0.15))}" fill="url(#${sun})"/>`);
      }
      const ground = h * r.float(0.45, 0.75);
      const layers = r.int(2, 4);
      for (let i = 0; i < layers; i++) {
        // Farther ridges are paler (aerial perspective).
        const far = 1 - i / layers;
        const base = hsl(r.float(60, 150), r.float(0.15, 0.6), r.float(0.15, 0.45));
        s.addHills(ground - far * h * 0.15, r.float(0.3, 1.2), hex(mix(base, sky, far * 0.6)));
      }
      if (r.chance(0.5)) s.addBuildings(ground + h * 0.05);
      s.addTrees(r.int(3, 25), ground);
      if (r.chance(0.5)) s.addSign();
      break;
    }
    case 'mixed': {
      bg = r.pick(BACKGROUNDS);
      for (let i = r.int(2, 8); i > 0; i--) s.addShape(r.float(0, w), r.float(0, h), r.logFloat(span * 0.03, span * 0.3));
      s.addLines(r.int(3, 20));
      s.addSign();
      for (let i = r.int(1, 4); i > 0; i--) s.addText(r.float(0, w * 0.7), r.float(0.1, 1) * h, r.logFloat(7, 40), phrase(r, r.int(1, 4)), { rotate: r.chance(0.3) ? r.float(-90, 90) : 0 });
      break;
    }
  }
  const base = drawBackground(r, bg, w, h, s);
  const kinds = [scene, bg, ...s.kinds].filter((k, i, a) => a.indexOf(k) === i);

  // The smooth background is computed at final size; only the SVG layer (every hard edge) is rendered
  // supersampled and downscaled (sharp premultiplies alpha before resizing, so its edges blend correctly).
  // Shadows are blurred anyway, so they are rendered at final size, blurred by libvips (librsvg's
  // feGaussianBlur costs about 5× more).
  const layers: OverlayOptions[] = [];
  if (s.shadows.length > 0) {
    const sigma = r.float(1, 5);
    const opacity = r.float(0.2, 0.45);
    const shadowSvg = s.svg(w, h, [`<g fill-opacity="${fmt(opacity)}">${s.shadows.join('')}</g>`], []);
    const shadow = await sharp(shadowSvg).blur(sigma).raw().toBuffer({ resolveWithObject: true });
    layers.push({ input: shadow.data, raw: { width: shadow.info.width, height: shadow.info.height, channels: 4 } });
  }
  const kernel = r.pick(['lanczos3', 'mitchell', 'cubic'] as const);
  const body = await sharp(s.svg(cw, ch, s.body, s.defs)).ensureAlpha().resize(w, h, { kernel }).raw().toBuffer({ resolveWithObject: true });
  layers.push({ input: body.data, raw: { width: body.info.width, height: body.info.height, channels: 4 } });
  const png = await sharp(Buffer.from(base.buffer, base.byteOffset, base.byteLength), { raw: { width: w, height: h, channels: 3 } })
    .composite(layers)
    .removeAlpha()
    .png({ compressionLevel: 6 })
    .toBuffer();
  return { png, width: w, height: h, kinds };
}
