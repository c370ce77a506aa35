// The compare view: panels of preview strips on one canvas, as an A/B wipe with a draggable divider, A
// and B side by side, or every panel of the strip. One view (zoom and centre) is shared by every panel and
// kept while the shown step changes, so one region can be watched sharpening over training. Magnified
// pixels are exact: integer device pixels per source pixel, drawn with smoothing off.

/** The zoom steps, in CSS pixels per source pixel ('fit' is the largest that shows the whole panel). */
export const ZOOMS = [1, 2, 4, 8, 16];
const GAP = 6; // CSS px between side-by-side panels
const GRAB = 10; // CSS px either side of the wipe divider that grab it

/**
 * Where panel `k` of a strip is: strips are `panels` square panels, `height` wide, side by side, with equal
 * gaps between them (the daemon's are 4 px: src/data/image/patches.ts, PREVIEW_GAP).
 */
export function panelRect(bitmap, panels, k) {
  const n = Math.max(1, panels);
  const h = bitmap.height;
  if (n * h > bitmap.width) {
    const w = Math.floor(bitmap.width / n); // not square after all: equal slices, no gap
    return { x: k * w, w, h };
  }
  const gap = n > 1 ? (bitmap.width - n * h) / (n - 1) : 0;
  return { x: Math.round(k * (h + gap)), w: h, h };
}

/**
 * A source: { bitmap, panels (count), panel (index), label }. The view state (mode, a, b, zoom, u, v,
 * divider) is public; change it and call render(). `onChange()` runs after any change the user makes on
 * the canvas (pan, zoom, divider), so the page can mirror it in its controls.
 */
export class CompareView {
  constructor(canvas, labels, { onChange }) {
    this.canvas = canvas;
    this.labels = labels;
    this.onChange = onChange;
    this.mode = 'wipe';
    this.zoom = 'fit';
    /** The view's centre, as a fraction of the panel's width and height (0.5, 0.5 = the middle). */
    this.u = 0.5;
    this.v = 0.5;
    /** Where the wipe divider is, as a fraction of the canvas width. */
    this.divider = 0.5;
    this.sourceA = null;
    this.sourceB = null;
    /** Every panel of A's strip, for the 'all' mode: [{bitmap, panels, panel, label}]. */
    this.allSources = [];
    this.#bind();
    new ResizeObserver(() => this.render()).observe(canvas.parentElement);
  }

  /** The canvas's CSS size for the current mode and container width. */
  #layout() {
    const wrap = this.canvas.parentElement;
    const w = Math.max(160, Math.floor(wrap.clientWidth));
    const maxH = Math.max(240, Math.floor(window.innerHeight * 0.7));
    const n = this.mode === 'wipe' ? 1 : this.mode === 'side' ? 2 : Math.max(1, this.allSources.length);
    const cell = (w - GAP * (n - 1)) / n;
    return { w, h: Math.floor(Math.min(cell, maxH)), n, cell };
  }

  /** The viewports in device pixels: [{x, y, w, h}]. */
  #viewports(layout, dpr) {
    if (this.mode === 'wipe') return [{ x: 0, y: 0, w: Math.round(layout.w * dpr), h: Math.round(layout.h * dpr) }];
    const out = [];
    for (let i = 0; i < layout.n; i++) {
      const x0 = Math.round(i * (layout.cell + GAP) * dpr);
      const x1 = Math.round((i * (layout.cell + GAP) + layout.cell) * dpr);
      out.push({ x: x0, y: 0, w: x1 - x0, h: Math.round(layout.h * dpr) });
    }
    return out;
  }

  /** Device pixels per source pixel in a viewport for a panel of `size` source pixels: an integer ≥ 1
   *  (a fraction only when fitting a panel larger than the viewport). */
  scaleFor(vp, size) {
    const dpr = devicePixelRatio || 1;
    if (this.zoom === 'fit') {
      const s = Math.min(vp.w, vp.h) / size;
      return s >= 1 ? Math.floor(s) : s;
    }
    return Math.max(1, Math.round(this.zoom * dpr));
  }

  /** The zoom in CSS pixels per source pixel that is shown now (what 'fit' comes to). */
  get effectiveZoom() {
    const src = this.sourceA;
    if (!src) return 1;
    const layout = this.#layout();
    const vp = this.#viewports(layout, devicePixelRatio || 1)[0];
    const r = panelRect(src.bitmap, src.panels, 0);
    return this.scaleFor(vp, Math.max(r.w, r.h)) / (devicePixelRatio || 1);
  }

  render() {
    const canvas = this.canvas;
    const dpr = devicePixelRatio || 1;
    const layout = this.#layout();
    const W = Math.round(layout.w * dpr);
    const H = Math.round(layout.h * dpr);
    if (canvas.width !== W || canvas.height !== H) {
      canvas.width = W;
      canvas.height = H;
    }
    canvas.style.width = `${layout.w}px`;
    canvas.style.height = `${layout.h}px`;
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = '#0b0c0e';
    ctx.fillRect(0, 0, W, H);
    const vps = this.#viewports(layout, dpr);
    const labels = [];
    let scale = null;
    if (this.mode === 'wipe') {
      const vp = vps[0];
      const divX = Math.round(this.divider * W);
      if (this.sourceA) scale = this.#drawPanel(ctx, this.sourceA, vp, { x: 0, w: divX });
      if (this.sourceB) {
        const sB = this.#drawPanel(ctx, this.sourceB, vp, { x: divX, w: W - divX });
        scale ??= sB;
      }
      // The divider: a line with a grip, drawn over both.
      ctx.fillStyle = 'rgba(240, 246, 252, 0.85)';
      ctx.fillRect(divX - Math.max(1, Math.round(dpr)), 0, Math.max(2, Math.round(2 * dpr)), H);
      ctx.beginPath();
      ctx.arc(divX, H / 2, 7 * dpr, 0, Math.PI * 2);
      ctx.fill();
      if (this.sourceA) labels.push({ text: `A · ${this.sourceA.label}`, left: 6, align: 'left' });
      if (this.sourceB) labels.push({ text: `B · ${this.sourceB.label}`, right: 6, align: 'right' });
      canvas.dataset.divider = String(Math.round(this.divider * layout.w));
    } else {
      const sources = this.mode === 'side' ? [this.sourceA, this.sourceB] : this.allSources;
      sources.forEach((src, i) => {
        const vp = vps[i];
        if (!src || !vp) return;
        const s = this.#drawPanel(ctx, src, vp, { x: vp.x, w: vp.w });
        scale ??= s;
        const tag = this.mode === 'side' ? `${i === 0 ? 'A' : 'B'} · ` : '';
        labels.push({ text: `${tag}${src.label}`, left: vp.x / dpr + 6, align: 'left' });
      });
      delete canvas.dataset.divider;
    }
    this.#showLabels(labels);
    canvas.dataset.mode = this.mode;
    canvas.dataset.zoom = String(this.zoom);
    canvas.dataset.scale = scale == null ? '' : String(scale);
    canvas.dataset.u = this.u.toFixed(4);
    canvas.dataset.v = this.v.toFixed(4);
  }

  /**
   * Draws panel `src.panel` of `src.bitmap` into viewport `vp`, clipped to the columns [clip.x, clip.x +
   * clip.w); the view's centre lands in the viewport's centre. Returns the scale used.
   */
  #drawPanel(ctx, src, vp, clip) {
    const { bitmap } = src;
    const r = panelRect(bitmap, src.panels, src.panel);
    const size = r.h;
    const pw = r.w;
    const s = this.scaleFor(vp, Math.max(pw, size));
    // Whole device pixels, so every source pixel is an s×s block on the canvas.
    const dx = vp.x + Math.round(vp.w / 2 - this.u * pw * s);
    const dy = vp.y + Math.round(vp.h / 2 - this.v * size * s);
    ctx.save();
    ctx.beginPath();
    ctx.rect(clip.x, vp.y, clip.w, vp.h);
    ctx.clip();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, r.x, 0, pw, size, dx, dy, pw * s, size * s);
    ctx.restore();
    return s;
  }

  #showLabels(labels) {
    this.labels.replaceChildren(
      ...labels.map((l) => {
        const span = document.createElement('span');
        span.className = 'compare-label';
        span.textContent = l.text;
        if (l.left != null) span.style.left = `${l.left}px`;
        if (l.right != null) span.style.right = `${l.right}px`;
        return span;
      }),
    );
  }

  /** Sets the zoom, keeping the source point under the CSS point (px, py) of the canvas where it is. */
  setZoom(zoom, px, py) {
    const src = this.sourceA;
    if (!src || px == null) {
      this.zoom = zoom;
      if (zoom === 'fit') {
        this.u = 0.5;
        this.v = 0.5;
      }
      return;
    }
    const dpr = devicePixelRatio || 1;
    const layout = this.#layout();
    const vps = this.#viewports(layout, dpr);
    const vp = vps.find((r) => px * dpr >= r.x && px * dpr < r.x + r.w) ?? vps[0];
    const { w: pw, h: size } = panelRect(src.bitmap, src.panels, 0);
    const s0 = this.scaleFor(vp, Math.max(pw, size));
    // The source point (in panel fractions) under the cursor before the change...
    const offX = px * dpr - (vp.x + vp.w / 2);
    const offY = py * dpr - (vp.y + vp.h / 2);
    const pu = this.u + offX / (s0 * pw);
    const pv = this.v + offY / (s0 * size);
    this.zoom = zoom;
    const s1 = this.scaleFor(vp, Math.max(pw, size));
    // ...stays under it after.
    this.u = pu - offX / (s1 * pw);
    this.v = pv - offY / (s1 * size);
    this.#clampCentre();
  }

  /** One zoom step in (+1) or out (−1) from what is shown now ('fit' counts as its effective zoom). */
  stepZoom(dir, px, py) {
    const z = this.effectiveZoom;
    let next;
    if (dir > 0) next = ZOOMS.find((l) => l > z + 1e-9) ?? ZOOMS[ZOOMS.length - 1];
    else next = [...ZOOMS].reverse().find((l) => l < z - 1e-9) ?? 'fit';
    this.setZoom(next, px, py);
  }

  #clampCentre() {
    this.u = Math.min(1, Math.max(0, this.u));
    this.v = Math.min(1, Math.max(0, this.v));
  }

  #bind() {
    const canvas = this.canvas;
    let drag = null;
    canvas.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      const rect = canvas.getBoundingClientRect();
      const x = e.clientX - rect.left;
      const onDivider = this.mode === 'wipe' && Math.abs(x - this.divider * rect.width) <= GRAB;
      drag = { kind: onDivider ? 'divider' : 'pan', x: e.clientX, y: e.clientY, u: this.u, v: this.v };
      canvas.setPointerCapture(e.pointerId);
      canvas.dataset.dragging = drag.kind;
      e.preventDefault();
    });
    canvas.addEventListener('pointermove', (e) => {
      const rect = canvas.getBoundingClientRect();
      if (!drag) {
        const x = e.clientX - rect.left;
        canvas.style.cursor = this.mode === 'wipe' && Math.abs(x - this.divider * rect.width) <= GRAB ? 'ew-resize' : 'grab';
        return;
      }
      if (drag.kind === 'divider') {
        this.divider = Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width));
      } else {
        const src = this.sourceA;
        if (!src) return;
        const dpr = devicePixelRatio || 1;
        const vp = this.#viewports(this.#layout(), dpr)[0];
        const { w: pw, h: size } = panelRect(src.bitmap, src.panels, 0);
        const s = this.scaleFor(vp, Math.max(pw, size));
        this.u = drag.u - ((e.clientX - drag.x) * dpr) / (s * pw);
        this.v = drag.v - ((e.clientY - drag.y) * dpr) / (s * size);
        this.#clampCentre();
      }
      this.render();
      this.onChange();
    });
    const end = () => {
      drag = null;
      delete canvas.dataset.dragging;
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    canvas.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const rect = canvas.getBoundingClientRect();
        this.stepZoom(e.deltaY < 0 ? 1 : -1, e.clientX - rect.left, e.clientY - rect.top);
        this.render();
        this.onChange();
      },
      { passive: false },
    );
  }
}
