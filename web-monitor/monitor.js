// Browser monitor for srgan-daemon: plain ES modules, no build step. This module wires the page: it loads
// runs, series, events, previews and checkpoints over the HTTP API (docs/protocol.md, "HTTP API"),
// follows the daemon's pushes over the WebSocket, and hands them to the charts (charts.js), the preview
// card (preview-panel.js, around the compare view of compare.js), the header (header.js) and the runs and
// checkpoints panels (panels.js). How the page is used: docs/monitor.md.
//
// DOM hooks the integration tests read (test/integration/monitor-page.test.ts, daemon.test.ts):
//   <body data-state data-conn data-auth data-readonly data-run data-smoothing data-x-mode data-overlays
//         data-loaded>                       data-loaded: "true" once the shown run's data is in
//   #loss-chart, #psnr-chart, #val-chart, #lr-chart, #rate-chart, #wait-chart, #memory-chart,
//   #other-chart [data-points]             columns of the shown run in that chart
//               [data-series]              curves drawn (one per key per run)
//               [data-log] [data-zoomed] [data-preview-x]   (x of the shown preview's line)
//   #compare-canvas [data-step] [data-preview-id] [data-strip-width]   the preview drawn (set once drawn)
//                   [data-step-b] [data-run-b]   what side B shows
//                   [data-mode] [data-zoom] [data-scale] [data-u] [data-v] [data-divider]
//                   (scale: device pixels per source pixel; u, v: the view's centre as panel fractions;
//                   divider: the wipe divider's x in CSS px from the canvas' left edge)
//   #scrubber [data-count] (value = index of the shown preview), #play-btn, #latest-btn[aria-pressed]
//   #runs-table tr[data-run-id] .overlay-toggle, #checkpoints-table tr[data-step][data-pinned] .pin-btn
//   #val-gain[data-val], #val-latest[data-val] (none | above | below bicubic), #eta[data-to]
//   #pause-btn, #resume-btn, #checkpoint-btn, #checkpoint (title = the checkpoint's folder), #status-line,
//   #gone-banner (shown while the daemon is unreachable)
// Test hook: globalThis.srganMonitor.chart(id) → { labels, data } (uPlot's series labels and data arrays,
// raw and smoothed curves interleaved: raw labels end in " (raw)"), .imageFetches() (strips fetched so far).

import { Api, ApiError, Live, forgetToken, storeToken, takeToken } from './api.js';
import { ChartPane, DASHES, PANES, RUN_COLORS, keyColor, paneOf } from './charts.js';
import { fmtInt } from './format.js';
import { showLr, showRunRow, showStatus, showValidation } from './header.js';
import { renderCheckpoints, renderRuns } from './panels.js';
import { PreviewPanel } from './preview-panel.js';
import { ImageCache, PreviewList } from './previews.js';
import { appendPoint, columnsFrom, decimate, emptyColumns, nearestIndex, smooth, stepRange } from './series.js';

const STATES = new Set(['starting', 'training', 'paused', 'stopping', 'stopped']);
const STATUS_POLL_MS = 2000;
const RUNS_REFRESH_MS = 30_000;
const COMMAND_TIMEOUT_MS = 10_000;
/** The server answers at most this many columns (docs/protocol.md, "Series"). */
const MAX_WIDTH = 4000;
/** Client arrays are merged back to the chart's width once they grow past this many times it. */
const GROWTH = 3;
const GROUPS = [
  ['losses', 'Losses'],
  ['quality', 'Quality'],
  ['lr', 'Learning rates'],
  ['throughput', 'Throughput and data wait'],
  ['memory', 'Memory'],
  ['other', 'Other'],
];

const $ = (id) => document.getElementById(id);
const el = {
  body: document.body,
  badge: $('state-badge'),
  conn: $('conn'),
  step: $('step'),
  checkpoint: $('checkpoint'),
  pauseBtn: $('pause-btn'),
  resumeBtn: $('resume-btn'),
  checkpointBtn: $('checkpoint-btn'),
  controls: $('controls'),
  statusLine: $('status-line'),
  banner: $('gone-banner'),
  bannerText: $('gone-text'),
  retryBtn: $('retry-btn'),
  authPanel: $('auth-panel'),
  authMessage: $('auth-message'),
  tokenForm: $('token-form'),
  tokenInput: $('token-input'),
  chartGroups: $('chart-groups'),
  smoothing: $('smoothing'),
  smoothingValue: $('smoothing-value'),
  xMode: $('x-mode'),
  resetZoom: $('reset-zoom'),
  runsBody: document.querySelector('#runs-table tbody'),
  ckptBody: document.querySelector('#checkpoints-table tbody'),
  canvas: $('compare-canvas'),
  compareLabels: $('compare-labels'),
  compareEmpty: $('compare-empty'),
  previewStep: $('preview-step'),
  scrubber: $('scrubber'),
  scrubLabel: $('scrub-label'),
  playBtn: $('play-btn'),
  prevBtn: $('prev-btn'),
  nextBtn: $('next-btn'),
  latestBtn: $('latest-btn'),
  panelA: $('panel-a'),
  panelB: $('panel-b'),
  runB: $('run-b'),
  dividerField: $('divider-field'),
  dividerInput: $('divider-input'),
};

/** One run the page has loaded: its row, keys, series (whole run, and the zoomed range), events, previews. */
class RunData {
  constructor(id) {
    this.id = id;
    this.run = null;
    this.keys = [];
    /** key → columns over the whole run (bounded: see GROWTH). */
    this.full = new Map();
    /** key → columns of the zoomed range, finer; null when not zoomed. */
    this.zoomed = null;
    this.events = [];
    this.previews = null;
    /** Columns asked of the server; local merging keeps each key within GROWTH times it. */
    this.width = 1000;
    /** Pushes (metrics, previews, events) that arrived while the history was loading, replayed on top of it. */
    this.pending = [];
    this.loaded = false;
  }

  get name() {
    return (this.run && this.run.name) || this.id.slice(0, 8);
  }
}

const app = {
  api: null,
  live: null,
  cache: null,
  readOnly: true,
  liveRunId: null,
  runs: [],
  mainId: null,
  /** Overlaid runs: id → colour, in the order they were ticked. */
  overlays: new Map(),
  data: new Map(),
  xMode: 'step',
  zoom: null,
  zoomGen: 0,
  smoothing: Number(el.smoothing.value),
  logs: new Map(PANES.map((p) => [p.id, !!p.log])),
  state: 'unknown',
  step: null,
  pending: null,
  /** Newest metric values pushed by the daemon (memory and rates for the header). */
  latest: {},
  connectedOnce: false,
  loadGen: 0,
  /** The status line shows a failed fetch (cleared when the daemon is back). */
  networkNote: false,
};

// ---- status line, state, buttons ------------------------------------------------------------------

/** The status line: the last thing worth telling the user (errors stay until replaced). */
function note(kind, text) {
  const t = new Date().toLocaleTimeString([], { hour12: false });
  el.statusLine.dataset.kind = kind;
  el.statusLine.textContent = text ? `${t}  ${text}` : '';
}

function setState(state) {
  if (!STATES.has(state)) return;
  app.state = state;
  el.body.dataset.state = state;
  el.badge.dataset.state = state;
  el.badge.textContent = state;
  updateButtons();
}

/** Status and state replies are authoritative (a restarted daemon may resume at an earlier step); metrics
 *  only move the step forward, since a status reply can lag the metrics stream. */
function setStep(step, onlyForward = false) {
  if (!Number.isFinite(step)) return;
  if (onlyForward && app.step != null && step < app.step) return;
  app.step = step;
  el.step.textContent = fmtInt(step);
}

function setConn(conn, text) {
  el.body.dataset.conn = conn;
  el.conn.dataset.conn = conn;
  el.conn.textContent = text;
  updateButtons();
}

function updateButtons() {
  const busy = !app.live || !app.live.connected || app.pending != null;
  el.pauseBtn.disabled = busy || app.state !== 'training';
  el.resumeBtn.disabled = busy || app.state !== 'paused';
  el.checkpointBtn.disabled = busy || (app.state !== 'training' && app.state !== 'paused');
}

function showAuth(kind, message) {
  el.body.dataset.auth = kind;
  el.authMessage.textContent = message;
  el.authPanel.hidden = false;
}

/** Any API failure: a rejected token asks for another; anything else is said on the status line. */
function failed(what, err) {
  if (err instanceof ApiError && err.status === 401) {
    forgetToken();
    if (app.live) app.live.stop();
    showAuth('rejected', 'The server rejected this access token (SRGAN_ERR_UNAUTHORIZED). Paste the token from $SRGAN_HOME/token.');
    setConn('disconnected', 'token rejected');
    note('error', 'access token rejected (SRGAN_ERR_UNAUTHORIZED)');
    return;
  }
  // While the daemon is away the banner says so; a fetch that fails meanwhile is no news.
  if (err instanceof ApiError && err.status === 0 && app.live && !app.live.connected) return;
  note('error', `${what}: ${err.message}`);
  app.networkNote = err instanceof ApiError && err.status === 0;
}

// ---- charts -----------------------------------------------------------------------------------------

const panes = new Map();
const paneBoxes = new Map();
const groupBoxes = new Map();

function buildCharts() {
  for (const [group, title] of GROUPS) {
    const section = document.createElement('section');
    section.className = 'chart-group';
    section.dataset.group = group;
    section.hidden = true;
    const h = document.createElement('h3');
    h.textContent = title;
    section.append(h);
    for (const spec of PANES.filter((p) => p.group === group)) {
      const box = document.createElement('div');
      box.className = 'pane';
      box.hidden = true;
      const head = document.createElement('h4');
      head.textContent = spec.title;
      if (spec.note) {
        const small = document.createElement('small');
        small.textContent = spec.note;
        head.append(' ', small);
      }
      const log = document.createElement('label');
      log.className = 'log-toggle';
      const box2 = document.createElement('input');
      box2.type = 'checkbox';
      box2.checked = app.logs.get(spec.id);
      box2.addEventListener('change', () => {
        app.logs.set(spec.id, box2.checked);
        scheduleRender();
      });
      log.append(box2, ' log');
      head.append(log);
      const chart = document.createElement('div');
      chart.id = spec.id;
      chart.className = 'chart';
      chart.dataset.points = '0';
      box.append(head, chart);
      section.append(box);
      paneBoxes.set(spec.id, box);
      panes.set(
        spec.id,
        new ChartPane(spec, chart, {
          onZoom: (a, b) => zoomTo(Math.min(a, b), Math.max(a, b)),
          onReset: resetZoom,
          onPick: pickAt,
        }),
      );
    }
    el.chartGroups.append(section);
    groupBoxes.set(group, section);
  }
}

/** Columns worth asking for: about one per pixel of the charts' width. */
function chartWidth() {
  return Math.min(MAX_WIDTH, Math.max(200, Math.floor(el.chartGroups.clientWidth || 800)));
}

let frame = 0;
/** Redraws are coalesced into one per animation frame: pushes may arrive far faster than anyone reads. */
function scheduleRender() {
  if (!frame) frame = requestAnimationFrame(renderCharts);
}

/** The arrays a curve is drawn from. With x = wall time, columns without a usable time are left out. */
function curve(cols, xMode, weight) {
  if (xMode === 'step') {
    return { x: cols.step.slice(), raw: cols.last.slice(), min: cols.min, max: cols.max, n: cols.n, smoothed: smooth(cols.last, weight) };
  }
  const keep = [];
  let prev = -Infinity;
  for (let i = 0; i < cols.time.length; i++) {
    if (Number.isFinite(cols.time[i]) && cols.time[i] > prev) {
      keep.push(i);
      prev = cols.time[i];
    }
  }
  const pick = (a) => keep.map((i) => a[i]);
  const raw = pick(cols.last);
  return { x: pick(cols.time), raw, min: pick(cols.min), max: pick(cols.max), n: pick(cols.n), smoothed: smooth(raw, weight) };
}

function shownRuns() {
  const out = [];
  const main = app.data.get(app.mainId);
  if (main && main.loaded) out.push(main);
  for (const id of app.overlays.keys()) {
    const rd = app.data.get(id);
    if (rd && rd.loaded) out.push(rd);
  }
  return out;
}

/**
 * The shown preview's place on the x axis. By wall time it is where the run's curves are at its step
 * (a preview's own time is when it was stored, which is not always when its step ran).
 */
function previewX() {
  const step = previews.shownStep();
  if (step == null || app.xMode === 'step') return step;
  const rd = app.data.get(app.mainId);
  return rd ? timeAtStep(longestColumns(rd), step) : null;
}

/** The wall time of the column nearest to `step` (null when the run has none). */
function timeAtStep(cols, step) {
  const i = nearestIndex(cols.step, step);
  return i < 0 || !Number.isFinite(cols.time[i]) ? null : cols.time[i];
}

/** The step of the column nearest in wall time to `t`; times increase with steps within a run. */
function stepAtTime(cols, t) {
  const i = nearestIndex(cols.time, t);
  return i < 0 ? null : cols.step[i];
}

function renderCharts() {
  frame = 0;
  const runs = shownRuns();
  const overlaid = runs.length > 1;
  const visibleGroups = new Set();
  const main = app.data.get(app.mainId);
  const events = [];
  if (main) {
    for (const ev of main.events) {
      const x = app.xMode === 'step' ? ev.step : ev.time;
      if (!Number.isFinite(x)) continue;
      const at = Number.isFinite(ev.step) ? `step ${fmtInt(ev.step)}` : 'before the first step';
      events.push({ x, kind: ev.kind, text: `${ev.kind} · ${at}${ev.message ? ` · ${ev.message}` : ''}` });
    }
  }
  for (const spec of PANES) {
    const series = [];
    for (const rd of runs) {
      const keys = rd.keys.filter((k) => paneOf(k) === spec.id);
      keys.forEach((key, ki) => {
        const cols = (rd.zoomed && rd.zoomed.get(key)) || (rd.zoomed ? emptyColumns() : rd.full.get(key));
        if (!cols) return;
        // Validation is measured on a fixed held-out set, not a noisy batch: drawn as it is.
        const weight = /^val_/.test(key) ? 0 : app.smoothing;
        const isMain = rd.id === app.mainId;
        series.push({
          key,
          label: overlaid ? `${rd.name} · ${key}` : key,
          color: isMain ? keyColor(key, ki) : app.overlays.get(rd.id),
          dash: isMain ? [] : DASHES[ki % DASHES.length],
          right: !!(spec.right && spec.right(key)),
          main: isMain,
          ...curve(cols, app.xMode, weight),
        });
      });
    }
    const box = paneBoxes.get(spec.id);
    box.hidden = series.length === 0;
    if (series.length) visibleGroups.add(spec.group);
    panes.get(spec.id).update({ series, xMode: app.xMode, zoom: app.zoom, log: app.logs.get(spec.id), previewX: previewX(), events });
  }
  for (const [group, section] of groupBoxes) section.hidden = !visibleGroups.has(group);
}

/** Moves the preview line on every chart without touching their data. */
function redrawPreviewLines() {
  const x = previewX();
  for (const pane of panes.values()) {
    if (!pane.model) continue;
    pane.model.previewX = x;
    pane.redraw();
  }
}

/** The longest curve of a run: its (time, step) pairs map a wall-time range to steps. */
function longestColumns(rd) {
  let best = emptyColumns();
  for (const cols of rd.full.values()) if (cols.step.length > best.step.length) best = cols;
  return best;
}

async function zoomTo(xmin, xmax) {
  if (!(xmax > xmin)) return;
  app.zoom = { min: xmin, max: xmax };
  el.resetZoom.disabled = false;
  const gen = ++app.zoomGen;
  scheduleRender(); // the scale changes at once; finer columns follow
  const width = chartWidth();
  try {
    await Promise.all(
      shownRuns().map(async (rd) => {
        const range = stepRange(app.xMode, xmin, xmax, longestColumns(rd));
        const cols = range ? await fetchSeries(rd.id, rd.keys, range, width) : new Map();
        if (gen === app.zoomGen) rd.zoomed = cols;
      }),
    );
  } catch (err) {
    failed('zoom', err);
  }
  if (gen === app.zoomGen) scheduleRender();
}

function resetZoom() {
  app.zoomGen++;
  app.zoom = null;
  for (const rd of app.data.values()) rd.zoomed = null;
  el.resetZoom.disabled = true;
  scheduleRender();
}

/** A click on a chart at x: the nearest preview is shown. */
function pickAt(x) {
  const rd = app.data.get(app.mainId);
  if (!rd) return;
  previews.pick(app.xMode === 'step' ? x : stepAtTime(longestColumns(rd), x));
}

// ---- data loading ------------------------------------------------------------------------------------

/** Keys per /series request: the server takes at most 64 in one. */
const KEYS_PER_REQUEST = 64;

async function fetchSeries(id, keys, range, width) {
  const out = new Map();
  const chunks = [];
  for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) chunks.push(keys.slice(i, i + KEYS_PER_REQUEST));
  const answers = await Promise.all(
    chunks.map((chunk) => {
      const q = new URLSearchParams({ keys: chunk.join(','), width: String(width) });
      if (range) {
        // Steps are integers >= 0 (a drag may start left of step 0).
        const from = Math.max(0, Math.floor(range.from));
        q.set('from', String(from));
        q.set('to', String(Math.max(from, Math.ceil(range.to))));
      }
      return app.api.get(`/api/runs/${encodeURIComponent(id)}/series?${q}`);
    }),
  );
  chunks.forEach((chunk, i) => {
    const series = (answers[i] && answers[i].series) || {};
    for (const k of chunk) out.set(k, columnsFrom(series[k]));
  });
  return out;
}

/** Loads (or reloads) a run's keys, series and events; with `previews`, its preview list too. */
async function loadRun(id, { previews }) {
  let rd = app.data.get(id);
  if (!rd) {
    rd = new RunData(id);
    app.data.set(id, rd);
  }
  rd.loaded = false;
  rd.pending = [];
  const enc = encodeURIComponent(id);
  const info = await app.api.get(`/api/runs/${enc}`);
  rd.run = info.run || null;
  rd.keys = sortKeys(Array.isArray(info.keys) ? info.keys.map(String) : []);
  rd.width = chartWidth();
  const [full, events, list] = await Promise.all([
    fetchSeries(id, rd.keys, null, rd.width),
    app.api.get(`/api/runs/${enc}/events`),
    previews ? app.api.get(`/api/runs/${enc}/previews`) : Promise.resolve(null),
  ]);
  rd.full = full;
  rd.zoomed = null;
  rd.events = Array.isArray(events && events.events) ? events.events : [];
  if (list) rd.previews = PreviewList.from(id, list);
  rd.loaded = true;
  // Pushes that came in meanwhile go on top of the history (points it already has are skipped).
  const now = Date.now() / 1000;
  for (const msg of rd.pending) {
    if (msg.type === 'metrics') addPoint(rd, msg);
    else if (msg.type === 'preview' && rd.previews) rd.previews.append(msg, now);
    else if (msg.type === 'event' && !rd.events.some((e) => e.time === msg.time && e.kind === msg.kind)) rd.events.push(msg);
  }
  rd.pending = [];
  return rd;
}

/** Keys in a stable order: the known ones as the trainer logs them, then the rest by name. */
function sortKeys(keys) {
  const order = ['g_loss', 'g_pix', 'g_perc', 'g_perc_half', 'g_adv', 'd_loss', 'psnr_train', 'val_psnr', 'val_bicubic', 'val_psnr_mix'];
  const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
  return [...new Set(keys)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** One pushed metrics point into a run's columns; columns past GROWTH × width are merged back. */
function addPoint(rd, p) {
  const time = p.wallTime / 1000;
  for (const [key, value] of Object.entries(p.values || {})) {
    let cols = rd.full.get(key);
    if (!cols) {
      cols = emptyColumns();
      rd.full.set(key, cols);
      rd.keys = sortKeys([...rd.keys, key]);
    }
    const len = cols.step.length;
    // Already in the history just loaded: a point at or before its last step is the same point, not a
    // resume (a resume comes after the history, and moves its steps back from the newest pushed).
    if (p.fromHistoryGap && len && p.step <= cols.step[len - 1]) continue;
    appendPoint(cols, p.step, time, value);
    if (cols.step.length > GROWTH * rd.width) rd.full.set(key, decimate(cols, rd.width));
  }
}

async function refreshRuns() {
  try {
    const answer = await app.api.get('/api/runs');
    app.runs = Array.isArray(answer.runs) ? answer.runs : [];
  } catch (err) {
    failed('runs', err);
    return;
  }
  renderRunsPanel();
  previews.setRuns(app.runs);
  if (app.readOnly || !app.live || !app.live.connected) {
    const row = app.runs.find((r) => r.id === app.mainId);
    if (row) showRow(row);
  }
}

/** With no daemon to ask, the header describes the shown run from its row; the badge is its status. */
function showRow(row) {
  showRunRow(row);
  if (!app.readOnly) return;
  el.badge.textContent = row.status;
  el.badge.dataset.state = row.status;
}

function renderRunsPanel() {
  renderRuns(el.runsBody, app.runs, {
    mainId: app.mainId,
    overlays: app.overlays,
    onOpen: (id) => openRun(id),
    onOverlay: (id, on) => setOverlay(id, on),
  });
  el.body.dataset.overlays = String(app.overlays.size);
}

async function setOverlay(id, on) {
  if (!on) {
    app.overlays.delete(id);
    renderRunsPanel();
    scheduleRender();
    return;
  }
  const used = new Set(app.overlays.values());
  app.overlays.set(id, RUN_COLORS.find((c) => !used.has(c)) ?? RUN_COLORS[app.overlays.size % RUN_COLORS.length]);
  renderRunsPanel();
  try {
    const rd = await loadRun(id, { previews: false });
    if (app.zoom && app.overlays.has(id)) {
      const range = stepRange(app.xMode, app.zoom.min, app.zoom.max, longestColumns(rd));
      rd.zoomed = range ? await fetchSeries(id, rd.keys, range, chartWidth()) : new Map();
    }
  } catch (err) {
    failed(`run ${id}`, err);
  }
  scheduleRender();
}

/** Makes `id` the run shown: its charts, previews, checkpoints (overlays stay overlaid). */
async function openRun(id) {
  const gen = ++app.loadGen;
  app.mainId = id;
  app.overlays.delete(id);
  el.body.dataset.run = id;
  el.body.dataset.loaded = 'false';
  resetZoom();
  renderRunsPanel();
  previews.setRuns(app.runs);
  try {
    await loadRun(id, { previews: true });
  } catch (err) {
    if (gen === app.loadGen) failed(`run ${id}`, err);
    return;
  }
  if (gen !== app.loadGen) return;
  el.body.dataset.loaded = 'true';
  const row = app.runs.find((r) => r.id === id);
  if (row && (app.readOnly || !app.live || !app.live.connected)) showRow(row);
  previews.reset();
  scheduleRender();
  refreshCheckpoints();
}

let ckptTimer = null;
async function refreshCheckpoints() {
  clearTimeout(ckptTimer);
  ckptTimer = null;
  const id = app.mainId;
  if (!id) return;
  try {
    const answer = await app.api.get(`/api/runs/${encodeURIComponent(id)}/checkpoints`);
    if (id !== app.mainId) return;
    renderCheckpoints(el.ckptBody, Array.isArray(answer.checkpoints) ? answer.checkpoints : [], { readOnly: app.readOnly, onPin: pin });
  } catch (err) {
    failed('checkpoints', err);
  }
}

/** Checkpoint events come in bursts (best + periodic, retention): one refresh for a burst. */
function refreshCheckpointsSoon() {
  if (ckptTimer == null) ckptTimer = setTimeout(refreshCheckpoints, 500);
}

async function pin(step, pinned, button) {
  button.disabled = true;
  try {
    await app.api.post(`/api/runs/${encodeURIComponent(app.mainId)}/checkpoints/${step}/pin`, { pinned });
    note('info', `checkpoint at step ${fmtInt(step)} ${pinned ? 'pinned: retention will keep it' : 'unpinned'}`);
  } catch (err) {
    failed(`pin step ${step}`, err);
  }
  await refreshCheckpoints();
}

// ---- previews and the compare view -----------------------------------------------------------------------

function mainPreviews() {
  const rd = app.data.get(app.mainId);
  return rd ? rd.previews : null;
}

const previews = new PreviewPanel(el, {
  previews: mainPreviews,
  mainId: () => app.mainId,
  cache: () => app.cache,
  api: () => app.api,
  runName: (id) => (app.runs.find((r) => r.id === id) || { name: id.slice(0, 8) }).name,
  onStep: redrawPreviewLines,
  onError: failed,
});

// ---- the daemon: WebSocket pushes and commands ---------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case 'status':
      onStatus(msg.status);
      break;
    case 'state':
      setState(msg.state);
      setStep(msg.step);
      break;
    case 'metrics': {
      const id = msg.runId || app.liveRunId;
      const rd = app.data.get(id);
      if (rd) {
        if (rd.loaded) addPoint(rd, msg);
        else rd.pending.push({ ...msg, fromHistoryGap: true });
        scheduleRender();
      }
      setStep(msg.step, true);
      if (msg.values) {
        Object.assign(app.latest, msg.values);
        showLr(msg.values);
      }
      break;
    }
    case 'preview':
      onPreview(msg);
      break;
    case 'event': {
      const rd = app.data.get(msg.runId);
      const ev = { type: 'event', time: msg.time, step: msg.step, kind: msg.kind, message: msg.message };
      if (rd && rd.loaded) {
        rd.events.push(ev);
        scheduleRender();
      } else if (rd) rd.pending.push(ev);
      if (msg.kind === 'checkpoint' && msg.runId === app.mainId) refreshCheckpointsSoon();
      break;
    }
    case 'ok':
      onReply(msg);
      if (msg.state) setState(msg.state);
      if (msg.command === 'pause' || msg.command === 'resume') note('info', `${msg.command} accepted — daemon is ${msg.state}`);
      break;
    case 'checkpoint':
      onReply(msg);
      el.checkpoint.textContent = `step ${msg.checkpoint.step}`;
      el.checkpoint.title = msg.checkpoint.dir;
      note('info', `checkpoint written at step ${msg.checkpoint.step}: ${msg.checkpoint.dir}`);
      refreshCheckpointsSoon();
      break;
    case 'error':
      onError(msg);
      break;
    default:
      break; // newer daemon, older page: ignore what we do not know
  }
}

function onStatus(s) {
  if (!s || typeof s !== 'object') return;
  if (typeof s.runId === 'string' && s.runId !== app.liveRunId) liveRunChanged(s.runId);
  setState(s.state);
  showPauseReason(typeof s.pauseReason === 'string' ? s.pauseReason : null);
  setStep(s.step);
  showStatus(s, app.latest);
}

/**
 * A pause the daemon made by itself (the disk nearly full, runs.db not writable; docs/reliability.md):
 * said on the status line when it starts and ends, and on the state badge while it lasts.
 */
function showPauseReason(reason) {
  if (reason === (app.pauseReason ?? null)) return;
  const was = app.pauseReason ?? null;
  app.pauseReason = reason;
  el.badge.title = reason ? `paused by the daemon: ${reason}; it goes on by itself once that has passed` : '';
  if (reason) note('error', `training paused by the daemon: ${reason}; it goes on by itself once that has passed`);
  else if (was) note('info', 'the daemon resumed training: the reason for its pause has passed');
}

/** The daemon trains another run now (a resume under a new id): show it, if the live run was shown. */
function liveRunChanged(id) {
  const wasShown = app.mainId == null || app.mainId === app.liveRunId;
  app.liveRunId = id;
  refreshRuns();
  if (wasShown) openRun(id);
}

function onPreview(msg) {
  if (msg.id == null || !Number.isFinite(msg.step)) return;
  const runId = msg.runId || app.liveRunId;
  const now = Date.now() / 1000;
  const rd = app.data.get(runId);
  if (rd && !rd.loaded) rd.pending.push(msg);
  else if (rd && rd.previews) rd.previews.append(msg, now);
  previews.pushed(msg, runId, now);
}

function onError(msg) {
  const pending = onReply(msg);
  if (msg.code === 'SRGAN_ERR_UNAUTHORIZED') {
    failed('daemon', new ApiError(401, msg.code, msg.message));
    return;
  }
  const what = pending ? `${pending.command} failed: ` : '';
  note('error', `${what}${msg.message || 'error'}${msg.code ? ` (${msg.code})` : ''}`);
}

function sendCommand(command, timeoutMs = COMMAND_TIMEOUT_MS) {
  if (app.pending || !app.live) return;
  const id = app.live.send({ type: command });
  if (id == null) return;
  const timer = setTimeout(() => {
    if (app.pending && app.pending.id === id) {
      app.pending = null;
      updateButtons();
      note('error', `${command}: no reply from the daemon after ${timeoutMs / 1000} s`);
    }
  }, timeoutMs);
  app.pending = { id, command, timer };
  note('info', `${command} sent…`);
  updateButtons();
}

/** Settles the pending command if `msg` answers it; returns what it answered, if anything. */
function onReply(msg) {
  const p = app.pending;
  if (!p || msg.id !== p.id) return null;
  clearTimeout(p.timer);
  app.pending = null;
  updateButtons();
  return p;
}

let pollTimer = null;

function onOpen() {
  el.banner.hidden = true;
  // A fetch that failed while the daemon was going away is stale once it is back.
  if (app.networkNote) note('info', '');
  app.networkNote = false;
  // Two subscriptions: a daemon that does not know a topic refuses the whole message.
  app.live.send({ type: 'subscribe', topics: ['metrics', 'previews', 'status'] });
  app.live.send({ type: 'subscribe', topics: ['events'] });
  app.live.send({ type: 'status' });
  clearInterval(pollTimer);
  pollTimer = setInterval(() => {
    if (app.live && !app.live.congested) app.live.send({ type: 'status' });
  }, STATUS_POLL_MS);
  if (app.connectedOnce) resync();
  app.connectedOnce = true;
}

/** Back after the daemon was gone: it may train another run now, and what was shown may have moved on. */
async function resync() {
  try {
    const info = await app.api.get('/api/info');
    if (info.liveRunId && info.liveRunId !== app.liveRunId) {
      liveRunChanged(info.liveRunId);
      return;
    }
  } catch (err) {
    failed('info', err);
    return;
  }
  refreshRuns();
  if (app.mainId) openRun(app.mainId);
}

let bannerTimer = null;

function onConn(conn, retryMs) {
  if (conn !== 'disconnected') clearInterval(bannerTimer);
  if (conn === 'connected') {
    setConn('connected', 'connected');
    el.banner.hidden = true;
    return;
  }
  if (conn === 'connecting') {
    setConn('connecting', 'connecting…');
    return;
  }
  clearInterval(pollTimer);
  pollTimer = null;
  if (app.pending) clearTimeout(app.pending.timer);
  app.pending = null;
  if (retryMs == null) {
    setConn('disconnected', 'disconnected');
    return;
  }
  // The banner counts down to the next attempt, so a page left open says when it will look again.
  const retryAt = Date.now() + retryMs;
  const tick = () => {
    const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setConn('disconnected', `disconnected — retrying in ${secs} s`);
    el.bannerText.textContent = app.connectedOnce
      ? `The daemon is gone: the connection closed. What is shown is from before; reconnecting in ${secs} s…`
      : `Cannot reach the daemon; retrying in ${secs} s…`;
  };
  clearInterval(bannerTimer);
  bannerTimer = setInterval(() => (Date.now() < retryAt ? tick() : clearInterval(bannerTimer)), 1000);
  tick();
  el.banner.hidden = false;
}

// ---- start -----------------------------------------------------------------------------------------------

function bindCharts() {
  el.smoothing.addEventListener('input', () => {
    app.smoothing = Number(el.smoothing.value);
    el.smoothingValue.textContent = app.smoothing.toFixed(2);
    el.body.dataset.smoothing = app.smoothing.toFixed(2);
    scheduleRender();
  });
  el.xMode.addEventListener('change', () => {
    app.xMode = el.xMode.value === 'time' ? 'time' : 'step';
    el.body.dataset.xMode = app.xMode;
    resetZoom();
  });
  el.resetZoom.addEventListener('click', resetZoom);
  el.body.dataset.smoothing = app.smoothing.toFixed(2);
  el.body.dataset.xMode = app.xMode;
}

async function start(token) {
  el.authPanel.hidden = true;
  el.body.dataset.auth = 'ok';
  app.api = new Api(token);
  app.cache = new ImageCache(app.api);
  let info;
  try {
    info = await app.api.get('/api/info');
  } catch (err) {
    failed('cannot load /api/info', err);
    if (!(err instanceof ApiError && err.status === 401)) setConn('disconnected', 'server unreachable');
    return;
  }
  app.readOnly = !!info.readOnly;
  app.liveRunId = typeof info.liveRunId === 'string' ? info.liveRunId : null;
  el.body.dataset.readonly = String(app.readOnly);
  el.controls.hidden = app.readOnly;
  await refreshRuns();
  const first = app.liveRunId ?? (app.runs[0] && app.runs[0].id);
  if (first) openRun(first);
  else note('info', 'no runs yet');
  setInterval(refreshRuns, RUNS_REFRESH_MS);
  if (app.liveRunId != null || !app.readOnly) {
    app.live = new Live(token, { onOpen, onMessage, onConn });
    app.live.connect();
  } else {
    // `srgan monitor`: the runs database only, no daemon to follow.
    setConn('static', 'read-only · no daemon');
  }
}

buildCharts();
bindCharts();
el.pauseBtn.addEventListener('click', () => sendCommand('pause'));
el.resumeBtn.addEventListener('click', () => sendCommand('resume'));
// A big model's checkpoint takes a while to write: wait up to 2 minutes for the reply.
el.checkpointBtn.addEventListener('click', () => sendCommand('checkpoint', 120_000));
el.retryBtn.addEventListener('click', () => app.live && app.live.connect());
el.tokenForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = el.tokenInput.value.trim();
  if (!value) return;
  el.tokenInput.value = '';
  storeToken(value);
  // A fresh start with the token from sessionStorage: nothing of the rejected attempt lingers.
  location.reload();
});
showValidation(null);

globalThis.srganMonitor = {
  chart(id) {
    const pane = panes.get(id);
    const u = pane && pane.chart;
    if (!u) return null;
    return { labels: u.series.map((s) => s.label), data: u.data.map((col) => Array.from(col, (v) => (v == null ? null : v))) };
  },
  imageFetches: () => (app.cache ? app.cache.fetches : 0),
};

if (typeof globalThis.uPlot !== 'function') note('error', 'chart library /vendor/uPlot.iife.min.js failed to load');
const token = takeToken();
if (!token) {
  showAuth(
    'missing',
    'No access token. Open the link printed by `srgan start` or `srgan monitor`, or paste the token from $SRGAN_HOME/token.',
  );
  setConn('disconnected', 'not connected — no token');
} else {
  start(token);
}
