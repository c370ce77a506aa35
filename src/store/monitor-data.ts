// What the monitor page reads from runs.db (docs/protocol.md, "HTTP API"): runs, curves downsampled to
// the chart's width, events placed on the step axis, the preview index and images, checkpoints. Every
// answer is bounded in size however long the run: a curve of a million points is read from its
// rollups (docs/sqlite.md, "metric_rollups"), a few thousand rows, not from the points.

import type Database from 'better-sqlite3';

import { bestMetric, listCheckpoints, listRuns, metricKeys, ROLLUP_SHIFTS, schemaVersion, type CheckpointRow, type RunRow } from './db.js';

/** Default and largest column count of a series answer. */
export const SERIES_WIDTH = 1000;
export const SERIES_MAX_WIDTH = 4000;
/** Most events one answer carries (the newest). */
export const EVENTS_LIMIT = 20_000;

export interface RunSummary {
  id: string;
  name: string;
  status: string;
  preset: string;
  backend: string | null;
  /** Unix seconds. */
  createdAt: number;
  endedAt: number | null;
  lastStep: number;
  /** The run's config.maxSteps, when it has one. */
  maxSteps: number | null;
  /** The highest validation gain over bicubic, when measured. */
  best: { key: 'val_gain'; step: number; value: number } | null;
  /** The daemon serving this is training it. */
  live: boolean;
}

/** One curve, one entry per chart column that has points (docs/protocol.md, "Series"). */
export interface SeriesColumns {
  step: number[];
  time: number[];
  last: number[];
  min: number[];
  max: number[];
  mean: number[];
  n: number[];
}

export interface SeriesAnswer {
  runId: string;
  from: number;
  to: number;
  width: number;
  /** The resolution read: 1 (the points themselves) or the rollup bucket width in steps. */
  bucket: number;
  series: Record<string, SeriesColumns>;
}

export interface EventEntry {
  id: number;
  time: number;
  step: number | null;
  kind: string;
  message: string;
}

export interface PreviewIndex {
  previews: { id: number[]; step: number[]; time: number[] };
  width: number | null;
  height: number | null;
  panels: string[];
}

/** A bad request parameter, named; the server answers 400 with it. */
export class BadParameter extends Error {}

/** Seven significant digits (values) and milliseconds (times) keep the answers short; a chart shows no more. */
const sig = (v: number): number => Number(v.toPrecision(7));
const ms = (t: number): number => Math.round(t * 1000) / 1000;

/** Reads runs.db for the monitor. Holds no state but the connection; every method is one snapshot read. */
export class MonitorData {
  constructor(readonly db: Database.Database) {}

  runs(liveRunId: string | null): RunSummary[] {
    return listRuns(this.db).map((r) => this.#summary(r, liveRunId));
  }

  /** The run and its metric keys; null when there is no such run. */
  run(runId: string, liveRunId: string | null): { run: RunSummary & { config: unknown }; keys: string[] } | null {
    const row = this.#row(runId);
    if (!row) return null;
    return { run: { ...this.#summary(row, liveRunId), config: parseJson(row.config) }, keys: metricKeys(this.db, runId) };
  }

  /**
   * The curves of `keys` between steps `from` and `to` (default: each curve's whole extent, together),
   * cut into `width` equal columns. Null when there is no such run.
   */
  series(runId: string, keys: readonly string[], opts: { from?: number; to?: number; width?: number } = {}): SeriesAnswer | null {
    if (!this.#row(runId)) return null;
    const width = opts.width ?? SERIES_WIDTH;
    if (!Number.isInteger(width) || width < 1 || width > SERIES_MAX_WIDTH) {
      throw new BadParameter(`"width" must be an integer in 1..${SERIES_MAX_WIDTH}, got ${width}`);
    }
    for (const [name, v] of [
      ['from', opts.from],
      ['to', opts.to],
    ] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 0))
        throw new BadParameter(`"${name}" must be a step (an integer >= 0), got ${v}`);
    }
    if (keys.length === 0) throw new BadParameter('"keys" must name at least one metric key');
    let from = opts.from;
    let to = opts.to;
    if (from === undefined || to === undefined) {
      const ext = this.#extent(runId, keys);
      from ??= ext?.first ?? 0;
      to ??= ext?.last ?? from;
    }
    if (to < from) throw new BadParameter(`"to" (${to}) is before "from" (${from})`);
    const colWidth = (to - from + 1) / width;
    const shift = schemaVersion(this.db) >= 5 ? [...ROLLUP_SHIFTS].reverse().find((s) => 2 ** s <= colWidth) : undefined;
    const series: Record<string, SeriesColumns> = {};
    for (const key of keys) series[key] = this.#curve(runId, key, from, to, width, shift);
    return { runId, from, to, width, bucket: shift === undefined ? 1 : 2 ** shift, series };
  }

  /**
   * The run's events in time order (the newest EVENTS_LIMIT), each placed at a step: its own (an event
   * about a step says so in its data), else the step the run had reached by then.
   */
  events(runId: string): EventEntry[] | null {
    if (!this.#row(runId)) return null;
    const rows = this.db
      .prepare(
        `SELECT * FROM (SELECT id, time, kind, message, data FROM events WHERE run_id = ? ORDER BY time DESC, id DESC LIMIT ?)
         ORDER BY time, id`,
      )
      .all(runId, EVENTS_LIMIT) as { id: number; time: number; kind: string; message: string; data: string | null }[];
    const clock = this.#stepClock(runId);
    return rows.map((r) => {
      const own = (parseJson(r.data) as { step?: unknown } | null)?.step;
      return {
        id: r.id,
        time: r.time,
        kind: r.kind,
        message: r.message,
        step: typeof own === 'number' && Number.isInteger(own) ? own : clock(r.time),
      };
    });
  }

  /** Every preview strip of the run, by step (columnar), and the newest's size and captions. */
  previews(runId: string): PreviewIndex | null {
    if (!this.#row(runId)) return null;
    const rows = this.db.prepare('SELECT id, step, time FROM previews WHERE run_id = ? ORDER BY step, id').raw().all(runId) as [
      number,
      number,
      number,
    ][];
    const newest = this.db.prepare('SELECT width, height, panels FROM previews WHERE run_id = ? ORDER BY id DESC LIMIT 1').get(runId) as
      { width: number; height: number; panels: string } | undefined;
    return {
      previews: { id: rows.map((r) => r[0]), step: rows.map((r) => r[1]), time: rows.map((r) => ms(r[2])) },
      width: newest?.width ?? null,
      height: newest?.height ?? null,
      panels: newest ? ((parseJson(newest.panels) as string[] | null) ?? []) : [],
    };
  }

  /** One stored preview strip, or null. */
  previewPng(id: number): { png: Buffer; runId: string; step: number } | null {
    const row = this.db.prepare('SELECT run_id, step, png FROM previews WHERE id = ?').get(id) as
      { run_id: string; step: number; png: Buffer } | undefined;
    return row ? { png: row.png, runId: row.run_id, step: row.step } : null;
  }

  /** The run's checkpoints by step, removed ones included (marked). */
  checkpoints(runId: string): CheckpointRow[] | null {
    if (!this.#row(runId)) return null;
    return listCheckpoints(this.db, runId, { includeDeleted: true });
  }

  #row(runId: string): RunRow | undefined {
    return this.db.prepare('SELECT * FROM runs WHERE id = ?').get(runId) as RunRow | undefined;
  }

  #summary(r: RunRow, liveRunId: string | null): RunSummary {
    const maxSteps = (parseJson(r.config) as { maxSteps?: unknown } | null)?.maxSteps;
    const best = bestMetric(this.db, r.id, 'val_gain', 'max');
    return {
      id: r.id,
      name: r.name,
      status: r.status,
      preset: r.preset,
      backend: r.backend,
      createdAt: r.created_at,
      endedAt: r.ended_at,
      lastStep: r.last_step,
      maxSteps: typeof maxSteps === 'number' ? maxSteps : null,
      best: best && { key: 'val_gain', ...best },
      live: r.id === liveRunId,
    };
  }

  /** The first and last step over `keys` (one index seek each). */
  #extent(runId: string, keys: readonly string[]): { first: number; last: number } | null {
    const lo = this.db.prepare('SELECT min(step) FROM metrics WHERE run_id = ? AND key = ?').pluck();
    const hi = this.db.prepare('SELECT max(step) FROM metrics WHERE run_id = ? AND key = ?').pluck();
    let first = Infinity;
    let last = -Infinity;
    for (const k of keys) {
      const a = lo.get(runId, k) as number | null;
      const b = hi.get(runId, k) as number | null;
      if (a !== null) first = Math.min(first, a);
      if (b !== null) last = Math.max(last, b);
    }
    return Number.isFinite(first) ? { first, last } : null;
  }

  /**
   * One curve in `width` columns over [from, to]. With `shift`, the buckets inside the range come from
   * the rollups (a stale one from its points) and the partial buckets at its ends from the points, so
   * the envelope counts exactly the points in range; a bucket goes to the column of its last point.
   */
  #curve(runId: string, key: string, from: number, to: number, width: number, shift: number | undefined): SeriesColumns {
    const cols = new ColumnBuilder(from, (to - from + 1) / width, width);
    const points = this.db.prepare(
      'SELECT step, wall_time, value FROM metrics WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ? ORDER BY step',
    );
    const addPoints = (a: number, b: number): void => {
      if (b < a) return;
      for (const [step, time, value] of points.raw().iterate(runId, key, a, b) as Iterable<[number, number, number]>) {
        cols.add(step, time, value, value, value, 1, value);
      }
    };
    if (shift === undefined) {
      addPoints(from, to);
      return cols.done();
    }
    const size = 2 ** shift;
    const firstInner = Math.ceil(from / size);
    const lastInner = Math.floor((to + 1) / size) - 1;
    if (firstInner > lastInner) {
      addPoints(from, to);
      return cols.done();
    }
    addPoints(from, firstInner * size - 1);
    const rollups = this.db
      .prepare(
        `SELECT bucket, n, lo, hi, sum, last_step, last_value, last_time, stale FROM metric_rollups
         WHERE run_id = ? AND key = ? AND shift = ? AND bucket BETWEEN ? AND ? ORDER BY bucket`,
      )
      .raw()
      .iterate(runId, key, shift, firstInner, lastInner) as Iterable<
      [number, number, number, number, number, number, number, number, number]
    >;
    for (const [bucket, n, lo, hi, sum, lastStep, lastValue, lastTime, stale] of rollups) {
      if (stale) addPoints(bucket * size, bucket * size + size - 1);
      else cols.add(lastStep, lastTime, lo, hi, sum, n, lastValue);
    }
    addPoints((lastInner + 1) * size, to);
    return cols.done();
  }

  /** Maps a unix time to the step the run had reached then (from its longest curve's finest rollups); null before the first. */
  #stepClock(runId: string): (time: number) => number | null {
    const key = this.db
      .prepare('SELECT key FROM metrics WHERE run_id = ? AND key IN (?, ?) LIMIT 1')
      .pluck()
      .get(runId, 'g_loss', 'g_pix') as string | undefined;
    const k = key ?? metricKeys(this.db, runId)[0];
    if (k === undefined) return () => null;
    const rows = (
      schemaVersion(this.db) >= 5
        ? this.db
            .prepare('SELECT last_time, last_step FROM metric_rollups WHERE run_id = ? AND key = ? AND shift = ? ORDER BY bucket')
            .raw()
            .all(runId, k, ROLLUP_SHIFTS[0])
        : this.db.prepare('SELECT wall_time, step FROM metrics WHERE run_id = ? AND key = ? ORDER BY step').raw().all(runId, k)
    ) as [number, number][];
    return (time) => {
      // The last row at or before `time` (times grow with steps within a run).
      let lo = 0;
      let hi = rows.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (rows[mid][0] <= time) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found < 0 ? null : rows[found][1];
    };
  }
}

/** Accumulates points or buckets, in step order, into chart columns. */
class ColumnBuilder {
  readonly #out: SeriesColumns = { step: [], time: [], last: [], min: [], max: [], mean: [], n: [] };
  #col = -1;
  #lo = 0;
  #hi = 0;
  #sum = 0;
  #n = 0;
  #step = 0;
  #time = 0;
  #last = 0;

  constructor(
    readonly from: number,
    readonly colWidth: number,
    readonly width: number,
  ) {}

  add(step: number, time: number, lo: number, hi: number, sum: number, n: number, last: number): void {
    const col = Math.min(this.width - 1, Math.floor((step - this.from) / this.colWidth));
    if (col !== this.#col) {
      this.#flush();
      this.#col = col;
      this.#lo = lo;
      this.#hi = hi;
      this.#sum = 0;
      this.#n = 0;
    }
    this.#lo = Math.min(this.#lo, lo);
    this.#hi = Math.max(this.#hi, hi);
    this.#sum += sum;
    this.#n += n;
    this.#step = step;
    this.#time = time;
    this.#last = last;
  }

  done(): SeriesColumns {
    this.#flush();
    return this.#out;
  }

  #flush(): void {
    if (this.#col < 0 || this.#n === 0) return;
    const o = this.#out;
    o.step.push(this.#step);
    o.time.push(ms(this.#time));
    o.last.push(sig(this.#last));
    o.min.push(sig(this.#lo));
    o.max.push(sig(this.#hi));
    o.mean.push(sig(this.#sum / this.#n));
    o.n.push(this.#n);
    this.#col = -1;
  }
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
