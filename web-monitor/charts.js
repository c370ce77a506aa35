// The monitor's charts: which pane each metric key goes to, and one uPlot chart per pane with what uPlot
// does not draw by itself: the min/max envelope of aggregated columns, the raw curve faint behind the
// smoothed one, event markers on the x axis, the shown preview's step as a vertical line, a 0 dB line on
// gain charts; drag to zoom, double-click to reset and click to pick a step are reported to the caller.

import { fmtGain, fmtInt, fmtSig } from './format.js';

const uPlot = globalThis.uPlot;

/**
 * The panes, in page order, each in a group (a section of the page). A key goes to the first pane whose
 * `match` takes it; `other` takes the rest. `right`: keys drawn against a second y axis (another unit).
 */
export const PANES = [
  {
    id: 'loss-chart',
    group: 'losses',
    title: 'Losses',
    log: true,
    match: (k) => /^g_/.test(k) || /^d_loss/.test(k),
  },
  {
    id: 'psnr-chart',
    group: 'quality',
    title: 'PSNR',
    note: 'dB · training batch and validation',
    match: (k) => /psnr|bicubic/.test(k) && !/gain/.test(k),
  },
  {
    id: 'val-chart',
    group: 'quality',
    title: 'Validation: gain over bicubic',
    note: 'dB · 0 dB = bicubic, below it the model is worse',
    gain: true,
    match: (k) => /^val_gain/.test(k),
  },
  { id: 'lr-chart', group: 'lr', title: 'Learning rates', log: true, match: (k) => /^lr_/.test(k) },
  {
    id: 'rate-chart',
    group: 'throughput',
    title: 'Throughput',
    note: 'left: steps/s, D steps · right: patches/s',
    match: (k) => k === 'steps_per_sec' || k === 'patches_per_sec' || k === 'd_steps',
    right: (k) => k === 'patches_per_sec',
  },
  {
    id: 'wait-chart',
    group: 'throughput',
    title: 'Data wait',
    note: 'fraction of the trainer’s time spent waiting for data',
    match: (k) => k === 'data_wait',
  },
  {
    id: 'memory-chart',
    group: 'memory',
    title: 'Memory',
    note: 'left: daemon RSS, MiB · right: live tensors',
    match: (k) => k === 'rss_mib' || k === 'tensors',
    right: (k) => k === 'tensors',
  },
  { id: 'other-chart', group: 'other', title: 'Other metrics', match: () => true },
];

/** The pane id of a metric key. */
export function paneOf(key) {
  return PANES.find((p) => p.match(key)).id;
}

/** Distinct colours for the keys of the main run (known keys keep theirs across reloads). */
const KEY_COLORS = {
  g_loss: '#e3b341',
  g_pix: '#58a6ff',
  g_perc: '#39c5cf',
  g_perc_half: '#8ddb8c',
  g_adv: '#d2a8ff',
  d_loss: '#ff7b72',
  psnr_train: '#3fb950',
  val_psnr: '#58a6ff',
  val_bicubic: '#8b949e',
  val_psnr_mix: '#d2a8ff',
  val_gain: '#58a6ff',
  val_gain_mix: '#d2a8ff',
  lr_g: '#58a6ff',
  lr_d: '#ff7b72',
  steps_per_sec: '#3fb950',
  patches_per_sec: '#e3b341',
  d_steps: '#d2a8ff',
  data_wait: '#ff7b72',
  rss_mib: '#58a6ff',
  tensors: '#e3b341',
};
const SPARE_COLORS = ['#39c5cf', '#f778ba', '#a5d6ff', '#ffa657', '#7ee787', '#bc8cff', '#79c0ff', '#ffdf5d'];
/** Overlaid runs: one hue per run, the keys of a pane told apart by dashes. */
export const RUN_COLORS = ['#f778ba', '#ffa657', '#7ee787', '#a5d6ff', '#bc8cff', '#ffdf5d', '#39c5cf', '#ff7b72'];
export const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3], [1, 5]];

export function keyColor(key, i) {
  return KEY_COLORS[key] ?? SPARE_COLORS[i % SPARE_COLORS.length];
}

const AXIS_STYLE = {
  stroke: '#8b949e',
  grid: { stroke: 'rgba(240,246,252,0.07)', width: 1 },
  ticks: { stroke: 'rgba(240,246,252,0.12)', width: 1 },
  font: '11px system-ui, sans-serif',
};

/** `#rrggbb` at opacity `a`. */
function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

/** The gain axis: the data's range widened to include 0 dB, with a little room above and below. */
function gainRange(u, min, max) {
  if (min == null || max == null) return [-1, 1];
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const pad = Math.max(0.1, (hi - lo) * 0.08);
  return [lo - pad, hi + pad];
}

/**
 * One chart. `update(model)` draws a model:
 *   { series: [{ label, color, dash, right, x, raw, smoothed, min, max, n, main }], xMode: 'step'|'time',
 *     zoom: {min, max} | null, log, previewX, events: [{ x, kind, text }] }
 * where each series has its own x (steps or unix seconds) and `main` marks those of the main run (counted
 * in data-points). Callbacks: onZoom(xmin, xmax), onReset(), onPick(x).
 */
export class ChartPane {
  constructor(spec, container, callbacks) {
    this.spec = spec;
    this.container = container;
    this.callbacks = callbacks;
    this.chart = null;
    this.signature = '';
    this.model = null;
    this.height = spec.gain ? 220 : 240;
    new ResizeObserver((entries) => {
      const w = Math.floor(entries[0].contentRect.width);
      if (this.chart && w > 0 && w !== this.chart.width) this.chart.setSize({ width: w, height: this.height });
    }).observe(container);
  }

  /** The plot's width in CSS pixels: how many columns are worth asking the server for. */
  get pixelWidth() {
    return Math.max(200, Math.floor(this.container.clientWidth || 600));
  }

  update(model) {
    this.model = model;
    const log = model.log;
    const tables = model.series.map((s) => {
      const raw = log ? s.raw.map((v) => (v > 0 ? v : null)) : s.raw;
      const sm = log ? s.smoothed.map((v) => (v > 0 ? v : null)) : s.smoothed;
      return [s.x, raw, sm];
    });
    const data = tables.length ? uPlot.join(tables) : [[]];
    const signature = JSON.stringify([model.xMode, log, model.series.map((s) => [s.label, s.color, s.dash, !!s.right])]);
    if (!uPlot) return;
    if (signature !== this.signature || !this.chart) {
      this.signature = signature;
      this.#create(model, data);
    } else {
      this.chart.setData(data, true);
    }
    let points = 0;
    if (model.series.some((s) => s.main)) {
      const xs = new Set();
      for (const s of model.series) if (s.main) for (const x of s.x) xs.add(x);
      points = xs.size;
    }
    this.container.dataset.points = String(points);
    this.container.dataset.series = String(model.series.length);
    this.container.dataset.log = String(log);
    this.container.dataset.zoomed = String(model.zoom != null);
    this.container.dataset.previewX = model.previewX == null ? '' : String(model.previewX);
  }

  /** Redraws overlays only (the preview line moved); data and scales stay. */
  redraw() {
    if (!this.chart || !this.model) return;
    this.container.dataset.previewX = this.model.previewX == null ? '' : String(this.model.previewX);
    this.chart.redraw(false, false);
  }

  #create(model, data) {
    this.chart?.destroy();
    this.container.replaceChildren();
    const spec = this.spec;
    const hasRight = model.series.some((s) => s.right);
    const time = model.xMode === 'time';
    const yValues = (u, splits) => splits.map((v) => (v == null ? '' : spec.gain ? v.toFixed(2) : fmtSig(v)));
    const series = [{ label: time ? 'time' : 'step', value: time ? undefined : (u, v) => (v == null ? '--' : fmtInt(v)) }];
    for (const s of model.series) {
      const scale = s.right ? 'y2' : 'y';
      const fmt = (u, v) => (spec.gain ? fmtGain(v) : fmtSig(v));
      series.push({
        label: `${s.label} (raw)`,
        class: 'raw-series',
        scale,
        stroke: alpha(s.color, 0.28),
        width: 1,
        dash: s.dash,
        spanGaps: true,
        points: { show: false },
        value: fmt,
      });
      series.push({
        label: s.label,
        scale,
        stroke: s.color,
        width: 1.5,
        dash: s.dash,
        spanGaps: true,
        // Sparse series (validation) get a dot per measurement.
        points: { show: spec.gain || /^val_/.test(s.key ?? ''), size: 4 },
        value: fmt,
      });
    }
    const self = this;
    const opts = {
      width: this.pixelWidth,
      height: this.height,
      cursor: {
        sync: { key: 'srgan-x' },
        drag: { x: true, y: false, setScale: false },
        points: { size: 5 },
      },
      legend: { live: true },
      select: { show: true },
      scales: {
        x: {
          time,
          range: (u, min, max) => {
            if (self.model && self.model.zoom) return [self.model.zoom.min, self.model.zoom.max];
            if (min == null || max == null) return [0, 1];
            return min === max ? [min - 1, max + 1] : [min, max];
          },
        },
        y: model.log ? { distr: 3, log: 10 } : spec.gain ? { auto: true, range: gainRange } : { auto: true },
        ...(hasRight ? { y2: model.log ? { distr: 3, log: 10 } : { auto: true } } : {}),
      },
      axes: [
        time ? { ...AXIS_STYLE } : { ...AXIS_STYLE, values: (u, splits) => splits.map((v) => (v == null ? '' : fmtInt(v))) },
        { ...AXIS_STYLE, size: 56, values: yValues },
        ...(hasRight ? [{ ...AXIS_STYLE, scale: 'y2', side: 1, size: 56, grid: { show: false }, values: yValues }] : []),
      ],
      series,
      hooks: {
        // Behind the series: the envelope; above them: the 0 dB line, the preview's step, the event marks.
        drawAxes: [(u) => this.#drawEnvelopes(u)],
        draw: [(u) => this.#drawOverlays(u)],
        setSelect: [
          (u) => {
            const { left, width } = u.select;
            if (width > 4) this.callbacks.onZoom(u.posToVal(left, 'x'), u.posToVal(left + width, 'x'));
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          },
        ],
        setLegend: [legendShowsLatest],
      },
    };
    const chart = new uPlot(opts, data, this.container);
    this.chart = chart;
    this.#bindPointer(chart);
    this.markers = document.createElement('div');
    this.markers.className = 'event-strip';
    chart.over.appendChild(this.markers);
  }

  #bindPointer(chart) {
    let down = null;
    chart.over.addEventListener('pointerdown', (e) => {
      down = { x: e.clientX, y: e.clientY };
    });
    chart.over.addEventListener('pointerup', (e) => {
      if (!down) return;
      const moved = Math.abs(e.clientX - down.x) + Math.abs(e.clientY - down.y);
      down = null;
      if (moved > 4) return;
      const rect = chart.over.getBoundingClientRect();
      this.callbacks.onPick(chart.posToVal(e.clientX - rect.left, 'x'));
    });
    chart.over.addEventListener('dblclick', () => this.callbacks.onReset());
  }

  #drawEnvelopes(u) {
    const model = this.model;
    if (!model) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (const s of model.series) {
      if (!s.n.some((n) => n > 1)) continue;
      const scale = s.right ? 'y2' : 'y';
      const xs = [];
      const hi = [];
      const lo = [];
      for (let i = 0; i < s.x.length; i++) {
        let mn = s.min[i];
        const mx = s.max[i];
        if (model.log) {
          if (!(mx > 0)) continue;
          if (!(mn > 0)) mn = mx;
        }
        xs.push(u.valToPos(s.x[i], 'x', true));
        hi.push(u.valToPos(mx, scale, true));
        lo.push(u.valToPos(mn, scale, true));
      }
      if (xs.length < 2) continue;
      ctx.beginPath();
      ctx.moveTo(xs[0], hi[0]);
      for (let i = 1; i < xs.length; i++) ctx.lineTo(xs[i], hi[i]);
      for (let i = xs.length - 1; i >= 0; i--) ctx.lineTo(xs[i], lo[i]);
      ctx.closePath();
      ctx.fillStyle = alpha(s.color, 0.13);
      ctx.fill();
    }
    ctx.restore();
  }

  #drawOverlays(u) {
    const model = this.model;
    if (!model) return;
    const { ctx } = u;
    const dpr = devicePixelRatio;
    const { left, top, width, height } = u.bbox;
    if (this.spec.gain) drawZeroLine(u);
    if (model.previewX != null) {
      const x = Math.round(u.valToPos(model.previewX, 'x', true));
      if (x >= left && x <= left + width) {
        ctx.save();
        ctx.strokeStyle = 'rgba(240, 246, 252, 0.7)';
        ctx.lineWidth = Math.max(1, dpr);
        ctx.setLineDash([3 * dpr, 3 * dpr]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
        ctx.restore();
      }
    }
    this.#placeMarkers(u);
  }

  /** Event markers as elements (so each has its text on hover and for screen readers), on the x axis. */
  #placeMarkers(u) {
    const strip = this.markers;
    if (!strip) return;
    const events = (this.model && this.model.events) || [];
    const w = u.bbox.width / devicePixelRatio;
    const nodes = [];
    for (const ev of events) {
      const x = u.valToPos(ev.x, 'x');
      if (!(x >= 0 && x <= w)) continue;
      const m = document.createElement('span');
      m.className = 'event-mark';
      m.dataset.kind = ev.kind;
      m.style.left = `${x}px`;
      m.title = ev.text;
      m.setAttribute('role', 'img');
      m.setAttribute('aria-label', ev.text);
      nodes.push(m);
    }
    strip.replaceChildren(...nodes);
  }
}

/** The 0 dB line of a gain chart, labelled: on it the model is exactly as good as bicubic, below it worse. */
function drawZeroLine(u) {
  const y = Math.round(u.valToPos(0, 'y', true));
  const { left, top, width, height } = u.bbox;
  if (y < top || y > top + height) return;
  const ctx = u.ctx;
  const dpr = devicePixelRatio;
  ctx.save();
  ctx.strokeStyle = 'rgba(248, 81, 73, 0.8)';
  ctx.lineWidth = Math.max(1, dpr);
  ctx.setLineDash([6 * dpr, 4 * dpr]);
  ctx.beginPath();
  ctx.moveTo(left, y);
  ctx.lineTo(left + width, y);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = 'rgba(248, 81, 73, 0.9)';
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.textAlign = 'left'; // uPlot leaves the y axis' alignment set
  ctx.textBaseline = 'bottom';
  ctx.fillText('bicubic (0 dB)', left + 6 * dpr, y - 2 * dpr);
  ctx.restore();
}

/**
 * When the cursor is off the chart uPlot blanks the legend; show each series' latest value instead, so
 * the legend doubles as a live readout.
 */
function legendShowsLatest(u) {
  if (u.cursor.idx != null) return;
  const n = u.data[0].length;
  if (n === 0) return;
  const idxs = u.data.map((col, s) => {
    if (s === 0) return n - 1;
    for (let i = n - 1; i >= 0; i--) if (col[i] != null) return i;
    return null;
  });
  u.setLegend({ idxs }, false);
}
