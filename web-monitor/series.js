// Client-side metric series: the columnar arrays /api/runs/ID/series returns (docs/protocol.md, "Series"),
// live points appended to them, local re-decimation that keeps them bounded, and TensorBoard's smoothing.
// Pure data, no DOM: every function here can be reasoned about on its own.

/** One key of one run: parallel arrays, one entry per column, steps strictly increasing. */
export function emptyColumns() {
  return { step: [], time: [], last: [], min: [], max: [], mean: [], n: [] };
}

const FIELDS = ['step', 'time', 'last', 'min', 'max', 'mean', 'n'];

/**
 * A server answer's columns for one key, checked: equal lengths, finite steps in increasing order. Entries
 * that break the order are dropped rather than trusted (the page must survive a bad answer).
 */
export function columnsFrom(raw) {
  const out = emptyColumns();
  if (!raw || !Array.isArray(raw.step)) return out;
  const len = raw.step.length;
  for (const f of FIELDS) if (!Array.isArray(raw[f]) || raw[f].length !== len) return out;
  let prev = -Infinity;
  for (let i = 0; i < len; i++) {
    const step = raw.step[i];
    const last = raw.last[i];
    if (!Number.isFinite(step) || step <= prev || !Number.isFinite(last)) continue;
    prev = step;
    out.step.push(step);
    out.time.push(Number.isFinite(raw.time[i]) ? raw.time[i] : NaN);
    out.last.push(last);
    out.min.push(Number.isFinite(raw.min[i]) ? raw.min[i] : last);
    out.max.push(Number.isFinite(raw.max[i]) ? raw.max[i] : last);
    out.mean.push(Number.isFinite(raw.mean[i]) ? raw.mean[i] : last);
    out.n.push(Number.isFinite(raw.n[i]) && raw.n[i] > 0 ? raw.n[i] : 1);
  }
  return out;
}

/**
 * Appends one live point. A step at or before the last column means the run went back (a resume trains
 * the steps after its checkpoint again): the columns from that step on are dropped first, as the store
 * drops them (docs/sqlite.md). Returns false for a point that is not a finite number.
 */
export function appendPoint(cols, step, time, value) {
  if (!Number.isFinite(step) || !Number.isFinite(value)) return false;
  const len = cols.step.length;
  if (len && step <= cols.step[len - 1]) {
    let i = len;
    while (i > 0 && cols.step[i - 1] >= step) i--;
    for (const f of FIELDS) cols[f].length = i;
  }
  cols.step.push(step);
  cols.time.push(time);
  cols.last.push(value);
  cols.min.push(value);
  cols.max.push(value);
  cols.mean.push(value);
  cols.n.push(1);
  return true;
}

/**
 * Merges columns into at most `width` equal step ranges over [first step, last step], as the server cuts
 * its answer: each range keeps the step, time and value of its last column, the envelope of all of them
 * and their point-weighted mean, so min/max stay exact however often this runs.
 */
export function decimate(cols, width) {
  const len = cols.step.length;
  if (len <= width || width < 1) return cols;
  const first = cols.step[0];
  const span = cols.step[len - 1] - first + 1;
  const out = emptyColumns();
  let bucket = -1;
  for (let i = 0; i < len; i++) {
    const b = Math.min(width - 1, Math.floor(((cols.step[i] - first) * width) / span));
    const n = cols.n[i];
    if (b !== bucket) {
      bucket = b;
      out.step.push(cols.step[i]);
      out.time.push(cols.time[i]);
      out.last.push(cols.last[i]);
      out.min.push(cols.min[i]);
      out.max.push(cols.max[i]);
      out.mean.push(cols.mean[i]);
      out.n.push(n);
      continue;
    }
    const j = out.step.length - 1;
    const total = out.n[j] + n;
    out.mean[j] = (out.mean[j] * out.n[j] + cols.mean[i] * n) / total;
    out.n[j] = total;
    out.step[j] = cols.step[i];
    out.time[j] = cols.time[i];
    out.last[j] = cols.last[i];
    if (cols.min[i] < out.min[j]) out.min[j] = cols.min[i];
    if (cols.max[i] > out.max[j]) out.max[j] = cols.max[i];
  }
  return out;
}

/**
 * TensorBoard's smoothing: an exponential moving average with weight `w` (0 = none, towards 1 = more),
 * debiased so the start of the curve is not pulled towards 0: last = last·w + (1 − w)·v, shown as
 * last / (1 − wⁿ) after n values. Non-finite values stay null and do not move the average.
 */
export function smooth(values, w) {
  const out = new Array(values.length);
  if (!(w > 0)) {
    for (let i = 0; i < values.length; i++) out[i] = Number.isFinite(values[i]) ? values[i] : null;
    return out;
  }
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * w + (1 - w) * v;
    n++;
    out[i] = last / (1 - Math.pow(w, n));
  }
  return out;
}

/** The index of the entry of the sorted `xs` nearest to `x` (-1 when empty). */
export function nearestIndex(xs, x) {
  const len = xs.length;
  if (len === 0) return -1;
  let lo = 0;
  let hi = len - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(xs[lo - 1] - x) <= Math.abs(xs[lo] - x)) return lo - 1;
  return lo;
}

/**
 * The step range of a run that an x range covers: steps as they are, or wall times mapped through the
 * run's own (time, step) columns. Null when the run has nothing there.
 */
export function stepRange(mode, xmin, xmax, cols) {
  if (mode === 'step') return { from: Math.floor(xmin), to: Math.ceil(xmax) };
  const { time, step } = cols;
  let from = null;
  let to = null;
  for (let i = 0; i < time.length; i++) {
    if (time[i] >= xmin && from == null) from = i > 0 ? step[i - 1] : step[i];
    if (time[i] <= xmax) to = i + 1 < step.length ? step[i + 1] : step[i];
  }
  if (from == null || to == null || to < from) return null;
  return { from, to };
}
