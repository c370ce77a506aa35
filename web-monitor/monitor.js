// Browser monitor for srgan-daemon. Plain ES module, no build step.
// The wire protocol is declared in src/protocol/messages.ts (ClientMessage / ServerMessage); every
// message we send carries the access token taken from this page's URL (`/?token=…`).
//
// DOM hooks the integration tests read: <body data-state data-conn data-auth>, #loss-chart[data-points],
// #pause-btn, #resume-btn, #checkpoint-btn, #checkpoint, #status-line, #preview-img,
// #val-gain[data-val] and #val-latest[data-val] (none | above | below bicubic), #val-chart[data-points].

const uPlot = globalThis.uPlot;

/** Most points kept per series client-side; above it the older half is halved in resolution. */
const MAX_POINTS = 3000;
const STATUS_POLL_MS = 2000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const COMMAND_TIMEOUT_MS = 10000;
/** Redraws are coalesced: metrics may arrive far faster than anyone can read them. */
const RENDER_DELAY_MS = 100;

const STATES = new Set(['starting', 'training', 'paused', 'stopping', 'stopped']);
const LOSS_KEYS = ['g_pix', 'g_perc', 'g_perc_half', 'g_adv', 'g_loss', 'd_loss'];
const PSNR_KEY = 'psnr_train';
/** Validation gains over bicubic (dB): standard protocol, and under the training LR mix. Logged every valEvery steps. */
const VAL_KEYS = ['val_gain', 'val_gain_mix'];
/** Column order in the store; the loss columns hold only values a log axis can draw. */
const KEYS = [...LOSS_KEYS, PSNR_KEY, ...VAL_KEYS];
const COLORS = {
  g_pix: '#58a6ff',
  g_perc: '#39c5cf',
  g_perc_half: '#8ddb8c',
  g_adv: '#d2a8ff',
  g_loss: '#e3b341',
  d_loss: '#ff7b72',
  psnr_train: '#3fb950',
  val_gain: '#58a6ff',
  val_gain_mix: '#d2a8ff',
};

const $ = (id) => document.getElementById(id);
const el = {
  body: document.body,
  badge: $('state-badge'),
  conn: $('conn'),
  runId: $('run-id'),
  backend: $('backend'),
  preset: $('preset'),
  step: $('step'),
  stepsPerSec: $('steps-per-sec'),
  epoch: $('epoch'),
  checkpoint: $('checkpoint'),
  patchesPerSec: $('patches-per-sec'),
  dataWait: $('data-wait'),
  dSteps: $('d-steps'),
  ringFrames: $('ring-frames'),
  lr: $('lr'),
  valGain: $('val-gain'),
  valLatest: $('val-latest'),
  valChart: $('val-chart'),
  pauseBtn: $('pause-btn'),
  checkpointBtn: $('checkpoint-btn'),
  resumeBtn: $('resume-btn'),
  statusLine: $('status-line'),
  authPanel: $('auth-panel'),
  authMessage: $('auth-message'),
  tokenForm: $('token-form'),
  tokenInput: $('token-input'),
  lossChart: $('loss-chart'),
  psnrChart: $('psnr-chart'),
  previewFigure: $('preview-figure'),
  previewCaptions: $('preview-captions'),
  previewImg: $('preview-img'),
  previewStep: $('preview-step'),
};

// ---- formatting ---------------------------------------------------------------------------------

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function fmtInt(v) {
  return Number.isFinite(v) ? intFmt.format(v) : '—';
}

function fmtFixed(v, digits) {
  return Number.isFinite(v) ? v.toFixed(digits) : '—';
}

/** A gain in dB with its sign: "+0.42 dB", "−0.90 dB" (a true minus sign, as `srgan status` prints it). */
function fmtGain(v) {
  if (!Number.isFinite(v)) return '—';
  return `${v < 0 ? '−' : '+'}${Math.abs(v).toFixed(2)} dB`;
}

/** Loss-style values: 4 significant digits, exponent form for very small or very large values. */
function fmtSig(v) {
  if (v == null || !Number.isFinite(v)) return '--';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

// ---- metric series store ------------------------------------------------------------------------

/**
 * Columns shared by both charts: x = generator step, then one column per KEYS entry (null = not
 * logged at that step). Steps are strictly increasing; a point at or before the last step is a
 * duplicate (history overlapping live metrics) and is dropped.
 */
class SeriesStore {
  constructor(max) {
    this.max = max;
    this.clear();
  }

  clear() {
    this.x = [];
    this.cols = KEYS.map(() => []);
  }

  get length() {
    return this.x.length;
  }

  get lastStep() {
    return this.x.length ? this.x[this.x.length - 1] : -Infinity;
  }

  /** Appends one MetricsPoint; returns false when it was a duplicate or malformed. */
  push(point) {
    const step = point && point.step;
    const values = (point && point.values) || {};
    if (!Number.isFinite(step) || step <= this.lastStep) return false;
    this.x.push(step);
    KEYS.forEach((key, i) => this.cols[i].push(sanitize(key, values[key])));
    if (this.x.length > this.max) this.#decimate();
    return true;
  }

  /** Replaces everything with `points` (oldest first), then keeps `tail` points newer than them. */
  replace(points, tail) {
    this.clear();
    for (const p of points) this.push(p);
    for (const p of tail) this.push(p);
  }

  /**
   * Halves the resolution of the older half, so recent training stays at full resolution and the
   * whole run still fits in `max` points; repeated calls make old data progressively coarser.
   * It keeps one point of each pair rather than their mean: averaging would narrow the noise band
   * of the old part and make training look as if it got noisier where full resolution begins.
   */
  #decimate() {
    const half = Math.floor(this.x.length / 2) & ~1;
    const x = [];
    for (let i = 0; i < half; i += 2) x.push(this.x[i + 1]);
    this.x = x.concat(this.x.slice(half));
    this.cols = this.cols.map((col) => {
      const out = [];
      for (let i = 0; i < half; i += 2) out.push(pick(col[i], col[i + 1]));
      return out.concat(col.slice(half));
    });
  }

  /** uPlot data for the given keys: [x, ...columns]. */
  data(keys) {
    return [this.x, ...keys.map((k) => this.cols[KEYS.indexOf(k)])];
  }
}

/** Steps at which any of `keys` has a value (the loss chart: every logged step; the gain chart: validations). */
function countPoints(keys) {
  const cols = keys.map((k) => store.cols[KEYS.indexOf(k)]);
  let n = 0;
  for (let i = 0; i < store.length; i++) if (cols.some((col) => col[i] != null)) n++;
  return n;
}

function sanitize(key, v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  // A log axis cannot draw zero or negatives; show a gap rather than break the scale.
  if (LOSS_KEYS.includes(key) && v <= 0) return null;
  return v;
}

/** The later point of a pair, unless it is a gap: a sparsely logged key must not vanish. */
function pick(a, b) {
  return b == null ? a : b;
}

// ---- charts -------------------------------------------------------------------------------------

const AXIS_STYLE = {
  stroke: '#8b949e',
  grid: { stroke: 'rgba(240,246,252,0.07)', width: 1 },
  ticks: { stroke: 'rgba(240,246,252,0.12)', width: 1 },
  font: '11px system-ui, sans-serif',
};

/**
 * When the cursor is off the chart uPlot blanks the legend; show each series' latest value instead,
 * so the legend doubles as a live readout.
 */
function legendShowsLatest(u) {
  if (u.cursor.idx != null) return;
  const n = u.data[0].length;
  if (n === 0) return;
  const idxs = u.data.map((col, s) => {
    if (s === 0) return n - 1;
    // The whole store (at most MAX_POINTS): validation is logged only every valEvery steps.
    for (let i = n - 1; i >= 0; i--) if (col[i] != null) return i;
    return null;
  });
  u.setLegend({ idxs }, false);
}

/**
 * Draws the 0 dB line of a gain chart, labelled: on it the model is exactly as good as bicubic,
 * below it worse.
 */
function drawBicubicLine(u) {
  const y = Math.round(u.valToPos(0, 'y', true));
  const { left, top, width, height } = u.bbox;
  if (y < top || y > top + height) return;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = 'rgba(248, 81, 73, 0.8)';
  ctx.lineWidth = Math.max(1, devicePixelRatio);
  ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.beginPath();
  ctx.moveTo(left, y);
  ctx.lineTo(left + width, y);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = 'rgba(248, 81, 73, 0.9)';
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.textAlign = 'left'; // uPlot leaves the y axis' alignment set
  ctx.textBaseline = 'bottom';
  ctx.fillText('bicubic (0 dB)', left + 6 * devicePixelRatio, y - 2 * devicePixelRatio);
  ctx.restore();
}

function makeChart(container, keys, { log, yLabel, height, gain = false }) {
  const opts = {
    width: Math.max(200, container.clientWidth),
    height,
    cursor: { sync: { key: 'srgan-steps' }, drag: { x: false, y: false, setScale: false } },
    legend: { live: true },
    scales: {
      x: { time: false },
      // A gain chart always shows 0 dB (bicubic), so the curve is read against it.
      y: log ? { distr: 3, log: 10 } : gain ? { auto: true, range: gainRange } : { auto: true },
    },
    axes: [
      { ...AXIS_STYLE, values: (u, splits) => splits.map((v) => (v == null ? '' : fmtInt(v))) },
      {
        ...AXIS_STYLE,
        label: yLabel,
        labelFont: '11px system-ui, sans-serif',
        size: 56,
        values: (u, splits) => splits.map((v) => (v == null ? '' : fmtSig(v))),
      },
    ],
    series: [
      { label: 'step', value: (u, v) => (v == null ? '--' : fmtInt(v)) },
      ...keys.map((k) => ({
        label: k,
        stroke: COLORS[k],
        width: k === 'g_loss' || k === 'val_gain' ? 1.75 : 1.25,
        spanGaps: true,
        // Validation points are sparse: mark each measurement.
        points: { show: gain, size: 5 },
        value: (u, v) => (gain ? fmtGain(v) : fmtSig(v)),
      })),
    ],
    hooks: { setLegend: [legendShowsLatest], ...(gain ? { draw: [drawBicubicLine] } : {}) },
  };
  const chart = new uPlot(opts, store.data(keys), container);
  // Follow the container's width (the page is responsive); height stays fixed.
  new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w > 0 && w !== chart.width) chart.setSize({ width: w, height });
  }).observe(container);
  return { chart, keys, container };
}

/** The gain axis: the data's range widened to include 0 dB, with a little room above and below. */
function gainRange(u, min, max) {
  if (min == null || max == null) return [-1, 1];
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const pad = Math.max(0.1, (hi - lo) * 0.08);
  return [lo - pad, hi + pad];
}

const store = new SeriesStore(MAX_POINTS);
const charts = [];
if (typeof uPlot === 'function') {
  charts.push(makeChart(el.lossChart, LOSS_KEYS, { log: true, yLabel: 'loss', height: 300 }));
  charts.push(makeChart(el.psnrChart, [PSNR_KEY], { log: false, yLabel: 'dB', height: 300 }));
  charts.push(makeChart(el.valChart, VAL_KEYS, { log: false, yLabel: 'dB over bicubic', height: 220, gain: true }));
} else {
  // Without the chart library the rest of the page still works; say why the charts are missing.
  queueMicrotask(() => note('error', 'chart library /vendor/uPlot.iife.min.js failed to load'));
}

let renderTimer = null;
function scheduleRender() {
  // setTimeout rather than requestAnimationFrame: rAF stops in background tabs, timers only slow.
  if (renderTimer == null) renderTimer = setTimeout(render, RENDER_DELAY_MS);
}

function render() {
  renderTimer = null;
  for (const c of charts) {
    c.chart.setData(store.data(c.keys));
    legendShowsLatest(c.chart);
    c.container.dataset.points = String(countPoints(c.keys));
  }
  if (!charts.length) el.lossChart.dataset.points = String(store.length);
}

// ---- view state ---------------------------------------------------------------------------------

const view = {
  state: 'unknown',
  runId: null,
  step: null,
  connected: false,
  pendingCommand: null, // { id, command, timer } while a pause/resume awaits its reply
};

function setState(state) {
  if (!STATES.has(state)) return;
  view.state = state;
  el.body.dataset.state = state;
  el.badge.dataset.state = state;
  el.badge.textContent = state;
  updateButtons();
}

/** Status and state replies are authoritative (a restarted daemon may resume at an earlier step);
 *  metrics only move the step forward, since a status reply can lag the metrics stream. */
function setStep(step, onlyForward = false) {
  if (!Number.isFinite(step)) return;
  if (onlyForward && view.step != null && step < view.step) return;
  view.step = step;
  el.step.textContent = fmtInt(view.step);
}

function setConn(conn, text) {
  el.body.dataset.conn = conn;
  el.conn.dataset.conn = conn;
  el.conn.textContent = text;
  updateButtons();
}

function updateButtons() {
  const busy = !view.connected || view.pendingCommand != null;
  el.pauseBtn.disabled = busy || view.state !== 'training';
  el.resumeBtn.disabled = busy || view.state !== 'paused';
  el.checkpointBtn.disabled = busy || (view.state !== 'training' && view.state !== 'paused');
}

/** The status line: the last thing worth telling the user (errors stay until replaced). */
function note(kind, text) {
  const t = new Date().toLocaleTimeString([], { hour12: false });
  el.statusLine.dataset.kind = kind;
  el.statusLine.textContent = text ? `${t}  ${text}` : '';
}

function applyStatus(s) {
  if (!s || typeof s !== 'object') return;
  if (typeof s.runId === 'string' && s.runId !== view.runId) {
    const switched = view.runId != null;
    view.runId = s.runId;
    el.runId.textContent = s.runId;
    el.runId.title = s.runId;
    if (switched) {
      // A different run: its steps start over, so the old curves must go, and its history come in.
      store.clear();
      view.step = null;
      scheduleRender();
      requestHistory();
    }
  }
  setState(s.state);
  setStep(s.step);
  el.backend.textContent = s.backend || '—';
  el.preset.textContent = s.preset || '—';
  el.stepsPerSec.textContent = fmtFixed(s.stepsPerSec, 2);
  el.patchesPerSec.textContent = fmtFixed(s.patchesPerSec, 1);
  el.dataWait.textContent = Number.isFinite(s.dataWaitFraction) ? `${(s.dataWaitFraction * 100).toFixed(1)} %` : '—';
  el.dSteps.textContent = fmtInt(s.dSteps);
  el.ringFrames.textContent = fmtInt(s.ringFrames);
  el.epoch.textContent = fmtInt(s.epoch);
  el.checkpoint.textContent = s.lastCheckpoint ? `step ${s.lastCheckpoint.step}` : '—';
  el.checkpoint.title = s.lastCheckpoint ? s.lastCheckpoint.dir : '';
  if (s.losses) showLr(s.losses);
  if ('validation' in s) showValidation(s.validation);
}

/**
 * The latest validation against bicubic, in the header and above the gain chart. A gain below 0 means
 * the model is worse than plain bicubic enlargement: that is said in words and shown in red.
 */
function showValidation(v) {
  if (!v || !Number.isFinite(v.gain)) {
    el.valGain.textContent = '—';
    el.valGain.dataset.val = 'none';
    el.valLatest.textContent = 'no validation yet';
    el.valLatest.dataset.val = 'none';
    return;
  }
  const below = v.gain < 0;
  const words = below ? 'below bicubic' : v.gain > 0 ? 'above bicubic' : 'same as bicubic';
  const kind = below ? 'below' : 'above';
  const psnrs =
    Number.isFinite(v.psnr) && Number.isFinite(v.bicubic) ? ` (${v.psnr.toFixed(2)} dB vs bicubic ${v.bicubic.toFixed(2)} dB)` : '';
  const best = v.best && Number.isFinite(v.best.gain) ? ` · best ${fmtGain(v.best.gain)} at step ${fmtInt(v.best.step)}` : '';
  el.valGain.textContent = `${fmtGain(v.gain)}${below ? ' · below bicubic' : ''}`;
  el.valGain.dataset.val = kind;
  el.valGain.title = `validation at step ${fmtInt(v.step)}${psnrs}: ${words}${best}`;
  el.valLatest.textContent = `latest ${fmtGain(v.gain)} at step ${fmtInt(v.step)}${psnrs}: ${below ? 'worse than bicubic' : words}${best}`;
  el.valLatest.dataset.val = kind;
}

function showLr(values) {
  const g = values.lr_g;
  const d = values.lr_d;
  if (g == null && d == null) return;
  el.lr.textContent = `${fmtSig(g)} / ${fmtSig(d)}`;
}

let previewUrl = null;

/** A stored preview strip, fetched by id (GET /api/previews/ID.png) with the token in a header. */
async function showPreview(msg) {
  if (!Number.isInteger(msg.id)) return;
  const res = await fetch(`/api/previews/${msg.id}.png`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) return;
  const url = URL.createObjectURL(await res.blob());
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
  const panels = Array.isArray(msg.panels) ? msg.panels.map(String) : [];
  el.previewImg.src = url;
  if (Number.isFinite(msg.width) && Number.isFinite(msg.height)) {
    el.previewImg.width = msg.width;
    el.previewImg.height = msg.height;
    // Small previews are drawn up to 2x, pixelated, so detail differences stay visible.
    el.previewFigure.style.maxWidth = `${msg.width * 2}px`;
  }
  el.previewImg.dataset.step = String(msg.step);
  el.previewCaptions.style.gridTemplateColumns = `repeat(${Math.max(1, panels.length)}, 1fr)`;
  el.previewCaptions.replaceChildren(...panels.map((p) => Object.assign(document.createElement('span'), { textContent: p })));
  el.previewStep.textContent = `step ${fmtInt(msg.step)}`;
  el.previewFigure.hidden = false;
}

// ---- connection ---------------------------------------------------------------------------------

const token = new URLSearchParams(location.search).get('token') || '';
let ws = null;
let nextId = 1;
let backoffMs = BACKOFF_MIN_MS;
let reconnectTimer = null;
let pollTimer = null;
let authFailed = false;
/** Live points seen since the last history request, re-applied on top of the history reply. */
let liveSinceHistory = null;
let historyReqId = null;

function send(msg) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return null;
  const id = nextId++;
  ws.send(JSON.stringify({ ...msg, token, id }));
  return id;
}

function requestHistory() {
  historyReqId = send({ type: 'history' });
  if (historyReqId != null) liveSinceHistory = [];
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  setConn('connecting', 'connecting…');
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  const sock = new WebSocket(url);
  sock.binaryType = 'arraybuffer';
  ws = sock;

  sock.addEventListener('open', () => {
    if (ws !== sock) return;
    view.connected = true;
    setConn('connected', 'connected');
    send({ type: 'subscribe', topics: ['metrics', 'previews', 'status'] });
    requestHistory();
    send({ type: 'status' });
    clearInterval(pollTimer);
    pollTimer = setInterval(() => {
      // Skip a poll when the socket is backed up rather than queue more behind it.
      if (ws === sock && sock.bufferedAmount < 1024) send({ type: 'status' });
    }, STATUS_POLL_MS);
  });

  sock.addEventListener('message', (ev) => {
    if (ws !== sock) return;
    // Backoff resets only once the daemon actually talks to us, not merely on TCP accept.
    backoffMs = BACKOFF_MIN_MS;
    const text = typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      note('error', 'unreadable message from the daemon');
      return;
    }
    if (msg && typeof msg.type === 'string') handleMessage(msg);
  });

  sock.addEventListener('close', () => {
    if (ws !== sock) return;
    ws = null;
    view.connected = false;
    clearInterval(pollTimer);
    pollTimer = null;
    clearPending();
    if (authFailed) {
      setConn('disconnected', 'disconnected — token rejected');
      return;
    }
    const delay = Math.round(backoffMs * (0.75 + Math.random() * 0.5));
    backoffMs = Math.min(BACKOFF_MAX_MS, backoffMs * 2);
    setConn('disconnected', `disconnected — retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    reconnectTimer = setTimeout(connect, delay);
  });
  // 'error' is always followed by 'close', which does the work.
}

function handleMessage(msg) {
  switch (msg.type) {
    case 'status':
      applyStatus(msg.status);
      break;
    case 'state':
      setState(msg.state);
      setStep(msg.step);
      break;
    case 'metrics':
      if (store.push(msg)) scheduleRender();
      if (liveSinceHistory && liveSinceHistory.length < MAX_POINTS) liveSinceHistory.push(msg);
      setStep(msg.step, true);
      if (msg.values) showLr(msg.values);
      break;
    case 'history': {
      const points = Array.isArray(msg.points) ? msg.points : [];
      const last = points.length ? points[points.length - 1].step : -Infinity;
      // History is authoritative for the steps it covers (the daemon may have restarted since we
      // last saw it); live points newer than it are kept.
      store.replace(
        points,
        (liveSinceHistory || []).filter((p) => p.step > last),
      );
      liveSinceHistory = null;
      scheduleRender();
      break;
    }
    case 'preview':
      void showPreview(msg);
      break;
    case 'ok':
      onReply(msg);
      if (msg.state) setState(msg.state);
      if (msg.command === 'pause' || msg.command === 'resume') {
        note('info', `${msg.command} accepted — daemon is ${msg.state}`);
      }
      break;
    case 'checkpoint':
      onReply(msg);
      el.checkpoint.textContent = `step ${msg.checkpoint.step}`;
      el.checkpoint.title = msg.checkpoint.dir;
      note('info', `checkpoint written at step ${msg.checkpoint.step}: ${msg.checkpoint.dir}`);
      break;
    case 'error':
      onError(msg);
      break;
    default:
      break; // newer daemon, older page: ignore what we do not know
  }
}

function onError(msg) {
  const pending = onReply(msg);
  if (msg.code === 'SRGAN_ERR_UNAUTHORIZED') {
    authFailed = true;
    showAuth(
      'rejected',
      'The daemon rejected this access token (SRGAN_ERR_UNAUTHORIZED). Open the URL printed by `srgan start`, or paste the token from $SRGAN_HOME/token.',
    );
    note('error', 'access token rejected (SRGAN_ERR_UNAUTHORIZED)');
    if (ws) ws.close();
    return;
  }
  if (msg.id != null && msg.id === historyReqId) liveSinceHistory = null; // no backfill coming
  const what = pending ? `${pending.command} failed: ` : '';
  note('error', `${what}${msg.message || 'error'}${msg.code ? ` (${msg.code})` : ''}`);
}

function sendCommand(command, timeoutMs = COMMAND_TIMEOUT_MS) {
  if (view.pendingCommand) return;
  const id = send({ type: command });
  if (id == null) return;
  const timer = setTimeout(() => {
    if (view.pendingCommand && view.pendingCommand.id === id) {
      view.pendingCommand = null;
      updateButtons();
      note('error', `${command}: no reply from the daemon after ${timeoutMs / 1000} s`);
    }
  }, timeoutMs);
  view.pendingCommand = { id, command, timer };
  note('info', `${command} sent…`);
  updateButtons();
}

/** Settles the pending pause/resume if `msg` answers it; returns what it answered, if anything. */
function onReply(msg) {
  const p = view.pendingCommand;
  if (!p || msg.id !== p.id) return null;
  clearTimeout(p.timer);
  view.pendingCommand = null;
  updateButtons();
  return p;
}

function clearPending() {
  if (view.pendingCommand) clearTimeout(view.pendingCommand.timer);
  view.pendingCommand = null;
  updateButtons();
}

function showAuth(kind, message) {
  el.body.dataset.auth = kind;
  el.authMessage.textContent = message;
  el.authPanel.hidden = false;
}

// ---- start --------------------------------------------------------------------------------------

el.pauseBtn.addEventListener('click', () => sendCommand('pause'));
el.resumeBtn.addEventListener('click', () => sendCommand('resume'));
// A big model's checkpoint takes a while to write: wait up to 2 minutes for the reply.
el.checkpointBtn.addEventListener('click', () => sendCommand('checkpoint', 120_000));
el.tokenForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = el.tokenInput.value.trim();
  if (!value) return;
  const params = new URLSearchParams(location.search);
  params.set('token', value);
  location.search = params.toString(); // reloads with the token in the URL, as `srgan start` prints it
});

if (!token) {
  showAuth(
    'missing',
    'No access token in this URL. Open the link printed by `srgan start` (…/?token=…), or paste the token from $SRGAN_HOME/token.',
  );
  setConn('disconnected', 'not connected — no token');
  note('error', 'access token missing from the URL');
} else {
  connect();
}
