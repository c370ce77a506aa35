// Demo data set, low-level drawing: the per-image PRNG, colour helpers, value noise, the JS-computed
// backgrounds and the stripe/checker/dot paths used both as backgrounds and as shape textures.
// Used by draw.ts; every random draw goes through the image's own Rng, so the order of calls is
// part of the output: changing it changes the demo bytes (bump GENERATOR_VERSION in demo.ts).

import { mulberry32 } from '../../util/prng.js';

export type Rgb = [number, number, number];

export class Rng {
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
    return items[Math.floor(this.#next() * items.length)];
  }
  /** Log-uniform in [a, b]: as many small values as large ones, for sizes and periods. */
  logFloat(a: number, b: number): number {
    return Math.exp(this.float(Math.log(a), Math.log(b)));
  }
}

export function hsl(h: number, s: number, l: number): Rgb {
  const f = (n: number): number => {
    const k = (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

export const hex = (c: Rgb): string =>
  '#' +
  c
    .map((v) =>
      Math.max(0, Math.min(255, Math.round(v)))
        .toString(16)
        .padStart(2, '0'),
    )
    .join('');
export const mix = (a: Rgb, b: Rgb, t: number): Rgb => [0, 1, 2].map((k) => a[k] + (b[k] - a[k]) * t) as Rgb;
export const fmt = (v: number): string => (Math.round(v * 100) / 100).toString();

export function luma(c: Rgb): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/** A palette around one hue: mostly muted, like photographs, with the occasional saturated accent. */
export function palette(r: Rng): Rgb[] {
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
export function valueNoise(r: Rng, w: number, h: number, cell: number): Float32Array {
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
    const t = fx - xi[x];
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
      const i = xi[x];
      const t = xt[x];
      const a = grid[r0 + i] + (grid[r0 + i + 1] - grid[r0 + i]) * t;
      const b = grid[r1 + i] + (grid[r1 + i + 1] - grid[r1 + i]) * t;
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
    for (let i = 0; i < out.length; i++) out[i] = out[i] + amp * n[i];
    total += amp;
  }
  // Stretch the contrast: averages of octaves crowd around 0.5.
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, (out[i] / total - 0.5) * 1.8 + 0.5));
  return out;
}

export const BACKGROUNDS = ['gradient', 'clouds', 'blurred-noise', 'noise', 'stripes', 'checker', 'paper'] as const;
export type Background = (typeof BACKGROUNDS)[number];

/** The part of the SVG layer a background draws into (hard-edged backgrounds are SVG paths). */
export interface BackgroundLayer {
  readonly pal: readonly Rgb[];
  readonly body: string[];
  readonly kinds: Set<string>;
}

/**
 * The background at final resolution (w×h), as packed RGB. Backgrounds with hard edges (square-wave
 * stripes, checkerboards) are not drawn here: they go into the SVG layer as one path, so they are
 * rendered at the supersampled resolution and antialiased like every other edge.
 */
export function drawBackground(r: Rng, kind: Background, w: number, h: number, s: BackgroundLayer): Uint8Array {
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
      for (let i = 0, o = 0; i < n; i++, o += 3) rampShaded(stops, f[i], 1, out, o);
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
        for (let i = 0; i < n; i++) a[i] = 0.5 * a[i] + 0.5 * r.float();
        return a;
      };
      const chans = mono ? [channel()] : [channel(), channel(), channel()];
      for (let i = 0, o = 0; i < n; i++, o += 3) {
        for (let k = 0; k < 3; k++) out[o + k] = clampByte(c0[k] + amp * (chans[mono ? 0 : k][i] - 0.5) * (fine ? 1.6 : 1));
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
        s.body.unshift(stripePath(w / 2, h / 2, Math.hypot(w, h) / 2, period, kind, ang, hex(c1), r.float(0.3, 0.7)));
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
  const a = stops[i];
  const b = stops[i + 1];
  for (let k = 0; k < 3; k++) out[o + k] = clampByte((a[k] + (b[k] - a[k]) * u) * shade);
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/**
 * One path covering the disc of radius R around (cx, cy) with stripes (duty = filled fraction), a
 * checkerboard or dots of the given period, rotated by `angle` degrees.
 */
export function stripePath(
  cx: number,
  cy: number,
  R: number,
  period: number,
  kind: 'stripes' | 'checker' | 'dots',
  angle: number,
  colour: string,
  duty: number,
): string {
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
