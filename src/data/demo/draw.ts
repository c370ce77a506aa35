// Demo data set, scene drawing: one image is a JS-computed background (textures.ts), blurred
// shadows and an SVG layer of shapes, lines and text, rendered supersampled by sharp/librsvg and
// downscaled. renderImage is the entry point used by demo.ts.

import sharp, { type OverlayOptions } from 'sharp';

import { BACKGROUNDS, type Background, drawBackground, fmt, hex, hsl, luma, mix, palette, type Rgb, Rng, stripePath } from './textures.js';

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
      this.defs.push(
        `<radialGradient id="${id}" cx="${fmt(r.float(0.2, 0.8))}" cy="${fmt(r.float(0.2, 0.8))}" r="${fmt(r.float(0.4, 0.9))}">${stops}</radialGradient>`,
      );
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
        return (p) =>
          `<ellipse cx="${fmt(cx)}" cy="${fmt(cy)}" rx="${rx}" ry="${ry}" transform="rotate(${rot} ${fmt(cx)} ${fmt(cy)})" ${p}/>`;
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
        let d = `M${fmt(pts[0][0])} ${fmt(pts[0][1])}`;
        for (let i = 0; i < k; i++) {
          const p0 = pts[(i + k - 1) % k];
          const p1 = pts[i];
          const p2 = pts[(i + 1) % k];
          const p3 = pts[(i + 2) % k];
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
    const path = stripePath(cx, cy, size * 2.1, period, kind, r.float(0, 180), this.colour(), r.float(0.25, 0.7));
    this.body.push(`<g clip-path="url(#${id})">${path}</g>`);
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
    const family = r.pick([
      'DejaVu Sans, sans-serif',
      'DejaVu Serif, serif',
      'DejaVu Sans Mono, monospace',
      'DejaVu Sans Condensed, sans-serif',
    ]);
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
    this.shadows.push(
      `<rect x="${fmt(x + size * 0.15)}" y="${fmt(y + size * 0.15)}" width="${fmt(w)}" height="${fmt(h)}" transform="rotate(${fmt(rot)} ${fmt(x)} ${fmt(y)})" fill="#000"/>`,
    );
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
        this.body.push(
          `<line x1="${fmt(m)}" y1="${fmt(y)}" x2="${fmt(this.w - m)}" y2="${fmt(y)}" stroke="${ink}" stroke-width="${fmt(r.float(0.5, 2))}"/>`,
        );
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
      for (let o = 0; o < 4; o++) v += Math.sin(x * 0.01 * 2 ** o + phases[o]) / 2 ** o;
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
      this.body.push(
        `<line x1="${fmt(x)}" y1="${fmt(y)}" x2="${fmt(x)}" y2="${fmt(y - s)}" stroke="#4a3520" stroke-width="${fmt(s * 0.12)}"/>`,
      );
      this.body.push(
        `<polygon points="${fmt(x - s * 0.4)},${fmt(y - s * 0.3)} ${fmt(x + s * 0.4)},${fmt(y - s * 0.3)} ${fmt(x)},${fmt(y - s * 1.6)}" fill="${col}"/>`,
      );
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
  'the',
  'quick',
  'brown',
  'fox',
  'jumps',
  'over',
  'lazy',
  'dog',
  'station',
  'platform',
  'exit',
  'open',
  'closed',
  'coffee',
  'bakery',
  'street',
  'avenue',
  'north',
  'south',
  'river',
  'bridge',
  'museum',
  'hotel',
  'garden',
  'market',
  'ticket',
  'price',
  'sale',
  'menu',
  'daily',
  'fresh',
  'bread',
  'milk',
  'photo',
  'camera',
  'light',
  'shadow',
  'window',
  'Monday',
  'Friday',
  'March',
  'October',
  'Café',
  'Größe',
  'naïve',
  'Улица',
  'Мост',
  'ξένος',
  '№7',
  '42',
  '1984',
  '3.14',
  '€12,50',
  '$9.99',
  '24/7',
  'km',
  'AM',
  'PM',
  'Tel.',
  'e-mail',
  'www',
  'Ölweg',
  'Zürich',
  '#5',
  '(c)',
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

const SCENES = ['shapes', 'document', 'texture', 'lines', 'landscape', 'mixed'] as const;

/** Draws image `index` with its own PRNG stream; returns the encoded PNG. */
export async function renderImage(seed: number, index: number): Promise<{ png: Buffer; width: number; height: number; kinds: string[] }> {
  const r = new Rng(seed);
  // Scenes rotate with the index so every set, however small, mixes kinds; sizes are even.
  const scene = SCENES[index % SCENES.length];
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
        s.defs.push(
          `<radialGradient id="${sun}"><stop offset="0.6" stop-color="#fff8e0"/><stop offset="1" stop-color="#fff8e0" stop-opacity="0"/></radialGradient>`,
        );
        s.body.push(
          `<circle cx="${fmt(r.float(0, w))}" cy="${fmt(r.float(0, h * 0.4))}" r="${fmt(span * r.float(0.05, 0.15))}" fill="url(#${sun})"/>`,
        );
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
      for (let i = r.int(1, 4); i > 0; i--)
        s.addText(r.float(0, w * 0.7), r.float(0.1, 1) * h, r.logFloat(7, 40), phrase(r, r.int(1, 4)), {
          rotate: r.chance(0.3) ? r.float(-90, 90) : 0,
        });
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
  const body = await sharp(s.svg(cw, ch, s.body, s.defs))
    .ensureAlpha()
    .resize(w, h, { kernel })
    .raw()
    .toBuffer({ resolveWithObject: true });
  layers.push({ input: body.data, raw: { width: body.info.width, height: body.info.height, channels: 4 } });
  const png = await sharp(Buffer.from(base.buffer, base.byteOffset, base.byteLength), { raw: { width: w, height: h, channels: 3 } })
    .composite(layers)
    .removeAlpha()
    .png({ compressionLevel: 6 })
    .toBuffer();
  return { png, width: w, height: h, kinds };
}
