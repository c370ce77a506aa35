// The monitor's pure data code (web-monitor/series.js, header.js's schedule): smoothing, local merging of
// columns, live appends across a resume, and the ETA's phase arithmetic. The page itself is tested in
// Chromium (test/integration/monitor-page.test.ts).

import { describe, expect, it } from 'vitest';
import { appendPoint, columnsFrom, decimate, emptyColumns, nearestIndex, smooth, stepRange } from '../../web-monitor/series.js';
import { schedule } from '../../web-monitor/header.js';

describe('smooth (TensorBoard debiased EMA)', () => {
  it('is the identity at weight 0, and keeps gaps as null', () => {
    expect(smooth([1, 2, NaN, 4], 0)).toEqual([1, 2, null, 4]);
  });

  it('starts at the first value (debiased) and follows last = last·w + (1 − w)·v', () => {
    const w = 0.6;
    const out = smooth([10, 0, null, 5], w);
    expect(out[0]).toBeCloseTo(10, 12);
    // Two values in: last = (0.4·10)·0.6 + 0.4·0 = 2.4, debiased by 1 − 0.36.
    expect(out[1]).toBeCloseTo(2.4 / (1 - w * w), 12);
    expect(out[2]).toBeNull();
    const last = 2.4 * w + (1 - w) * 5;
    expect(out[3]).toBeCloseTo(last / (1 - w ** 3), 12);
  });

  it('keeps a constant series constant', () => {
    for (const v of smooth([3, 3, 3, 3, 3], 0.95)) expect(v).toBeCloseTo(3, 12);
  });
});

/** What series.js's columns are (it is plain JS: its functions take and return them untyped). */
interface Columns {
  step: number[];
  time: number[];
  last: number[];
  min: number[];
  max: number[];
  mean: number[];
  n: number[];
}

describe('series columns', () => {
  const ramp = (n: number): Columns => {
    const cols = emptyColumns() as Columns;
    for (let s = 1; s <= n; s++) appendPoint(cols, s, 1000 + s, s % 7);
    return cols;
  };

  it('decimate merges into at most `width` columns with an exact envelope, point counts and mean', () => {
    const cols = ramp(1000);
    const d = decimate(cols, 100) as Columns;
    expect(d.step.length).toBeLessThanOrEqual(100);
    expect(d.n.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(Math.min(...d.min)).toBe(0);
    expect(Math.max(...d.max)).toBe(6);
    // The last column ends at the last point; each keeps its last point's step, time and value.
    expect(d.step[d.step.length - 1]).toBe(1000);
    expect(d.time[d.time.length - 1]).toBe(2000);
    expect(d.last[d.last.length - 1]).toBe(1000 % 7);
    const mean = d.mean.reduce((a, m, i) => a + m * d.n[i], 0) / 1000;
    expect(mean).toBeCloseTo(cols.last.reduce((a, b) => a + b, 0) / 1000, 9);
    // Merging merged columns again keeps the envelope exact.
    const dd = decimate(d, 10) as Columns;
    expect(dd.n.reduce((a, b) => a + b, 0)).toBe(1000);
    expect([Math.min(...dd.min), Math.max(...dd.max)]).toEqual([0, 6]);
  });

  it('appendPoint going back in steps (a resume) drops the columns from that step on', () => {
    const cols = ramp(10);
    appendPoint(cols, 7, 5000, 42);
    expect(cols.step).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(cols.last[6]).toBe(42);
    expect(appendPoint(cols, 8, 5001, NaN)).toBe(false);
  });

  it('columnsFrom drops entries out of step order and fills a missing envelope from last', () => {
    const c = columnsFrom({
      step: [1, 3, 2, 4],
      time: [1, 3, 2, 4],
      last: [1, 3, 2, 4],
      min: [1, null, 2, 4],
      max: [1, 3, 2, 4],
      mean: [1, 3, 2, 4],
      n: [1, 1, 1, 2],
    });
    expect(c.step).toEqual([1, 3, 4]);
    expect(c.min).toEqual([1, 3, 4]);
    expect(columnsFrom({ step: [1, 2], last: [1] }).step).toEqual([]);
  });

  it('nearestIndex and stepRange', () => {
    expect(nearestIndex([100, 200, 300], 149)).toBe(0);
    expect(nearestIndex([100, 200, 300], 260)).toBe(2);
    expect(nearestIndex([], 5)).toBe(-1);
    expect(stepRange('step', 10.5, 20.2, emptyColumns())).toEqual({ from: 10, to: 21 });
    const cols = ramp(10); // time = 1000 + step
    expect(stepRange('time', 1004, 1006, cols)).toEqual({ from: 3, to: 7 });
  });
});

describe('schedule (ETA)', () => {
  const config = { maxSteps: 1000, phases: [{ steps: 100 }, { steps: 400 }, { steps: null }] };

  it('counts to maxSteps and to the end of the current phase', () => {
    expect(schedule(config, 50, 10)).toEqual({ total: { end: 1000, seconds: 95 }, phase: { index: 0, count: 3, end: 100, seconds: 5 } });
    expect(schedule(config, 300, 10).phase).toEqual({ index: 1, count: 3, end: 500, seconds: 20 });
    // The open-ended last phase has no end of its own.
    expect(schedule(config, 700, 10).phase).toEqual({ index: 2, count: 3, end: null, seconds: null });
  });

  it('has no ETA without a rate, and no total without maxSteps', () => {
    expect(schedule(config, 50, 0).total).toEqual({ end: 1000, seconds: null });
    expect(schedule({ phases: [{ steps: 10 }] }, 5, 1)).toEqual({ total: null, phase: { index: 0, count: 1, end: 10, seconds: 5 } });
  });
});
