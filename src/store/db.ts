// The runs database: schema, migrations and the read queries the CLI uses. Writes during training go
// through the MetricsStore actor, the one owner of the daemon's connection. Documented in docs/sqlite.md.
//
// Migration policy: MIGRATIONS[v] takes a database from `PRAGMA user_version` v to v + 1, in one
// transaction. A released migration never changes; a schema change is a new entry. Readers (the CLI)
// open read-only and never migrate, so they must cope with any version from 1 to SCHEMA_VERSION.

import Database from 'better-sqlite3';
import { SrganError } from '../util/errors.js';
import { configureWriter, waitForLocks } from '../util/sqlite.js';

export const SCHEMA_VERSION = 7;

/** Exported for tests, which build old databases from the old SQL. */
export const MIGRATIONS: readonly string[] = [
  // v1
  `
  CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,            -- starting | training | paused | stopped | failed
    created_at    REAL NOT NULL,            -- unix seconds
    ended_at      REAL,
    preset        TEXT NOT NULL,
    backend       TEXT,
    backend_reason TEXT,
    config        TEXT NOT NULL,            -- effective config, JSON
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    data_dir      TEXT NOT NULL,
    last_step     INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE metrics (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    step      INTEGER NOT NULL,
    key       TEXT NOT NULL,
    value     REAL NOT NULL,
    wall_time REAL NOT NULL                 -- unix seconds
  );
  CREATE INDEX metrics_run_key_step ON metrics (run_id, key, step);
  CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT REFERENCES runs(id),
    time    REAL NOT NULL,
    kind    TEXT NOT NULL,                  -- start | pause | resume | stop | error | restart | ...
    message TEXT NOT NULL DEFAULT '',
    data    TEXT                            -- JSON or NULL
  );
  CREATE INDEX events_run_time ON events (run_id, time);
  CREATE TABLE previews (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(id),
    step    INTEGER NOT NULL,
    time    REAL NOT NULL,
    width   INTEGER NOT NULL,
    height  INTEGER NOT NULL,
    panels  TEXT NOT NULL,                  -- JSON array of panel captions, left to right
    png     BLOB NOT NULL
  );
  CREATE INDEX previews_run_step ON previews (run_id, step);
  `,
  // v2: params, latest_metrics, checkpoints, evals. The params backfill is the same derivation as
  // PARAMS_OF_CONFIG below, written out because a released migration must not change with it.
  `
  CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,                  -- dotted path into the config: generator.channels, phases.0.steps
    value,                                  -- no type, so no affinity: INTEGER, REAL, TEXT or NULL as in the JSON
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX params_key_value ON params (key, value);
  INSERT INTO params (run_id, key, value)
    SELECT r.id,
           replace(replace(substr(t.fullkey, 3), '[', '.'), ']', ''),
           CASE WHEN t.type IN ('object', 'array') THEN t.value ELSE t.atom END
    FROM runs r, json_tree(CASE WHEN json_valid(r.config) THEN r.config ELSE '{}' END) t
    WHERE t.fullkey <> '$' AND (t.type NOT IN ('object', 'array') OR t.value IN ('[]', '{}'));

  -- The latest point of each (run, key). A skip-scan over metrics_run_key_step: one index seek per
  -- key of each run, so it costs microseconds however long the curves are (a GROUP BY would read them all).
  CREATE VIEW latest_metrics AS
    WITH RECURSIVE k(run_id, key) AS (
      SELECT id, (SELECT min(key) FROM metrics WHERE run_id = runs.id) FROM runs
      UNION ALL
      SELECT run_id, (SELECT min(key) FROM metrics WHERE run_id = k.run_id AND key > k.key) FROM k WHERE key IS NOT NULL
    )
    SELECT k.run_id, k.key, m.step, m.value, m.wall_time
    FROM k JOIN metrics m ON m.rowid = (
      SELECT rowid FROM metrics WHERE run_id = k.run_id AND key = k.key ORDER BY step DESC, rowid DESC LIMIT 1
    );

  CREATE TABLE checkpoints (
    id       INTEGER PRIMARY KEY,
    run_id   TEXT NOT NULL REFERENCES runs(id),
    step     INTEGER NOT NULL,
    time     REAL NOT NULL,                 -- unix seconds
    path     TEXT NOT NULL,
    checksum TEXT NOT NULL,
    psnr     REAL,                          -- dB on the eval set, when measured
    kind     TEXT NOT NULL CHECK (kind IN ('periodic', 'best', 'manual', 'stop', 'error')),
    deleted  INTEGER NOT NULL DEFAULT 0     -- 1 once the file has been removed (retention)
  );
  CREATE INDEX checkpoints_run_step ON checkpoints (run_id, step);

  CREATE TABLE evals (
    id       INTEGER PRIMARY KEY,
    run_id   TEXT REFERENCES runs(id),      -- NULL for a baseline or a model file not tied to a run
    time     REAL NOT NULL,                 -- unix seconds
    data_dir TEXT NOT NULL,
    model    TEXT NOT NULL,                 -- 'model' | 'bicubic' | a checkpoint path
    psnr     REAL,
    ssim     REAL,
    images   INTEGER NOT NULL,
    json     TEXT                           -- full report, JSON
  );
  CREATE INDEX evals_run_time ON evals (run_id, time);
  `,
  // v3: the validation gain over bicubic of each checkpoint, which 'best' now means (NULL for
  // checkpoints written before it was measured, and for those written between validations).
  `
  ALTER TABLE checkpoints ADD COLUMN gain REAL;  -- dB over bicubic on the validation set, when measured
  `,
  // v4: one row per (run, key, step), enforced. A step has one value of each metric; a resumed run
  // trains the steps after its checkpoint again, and their first values must not stay beside the new
  // ones. Repeats already in the file are resolved as latest_metrics always resolved them: the later
  // row (higher rowid) stays.
  `
  DELETE FROM metrics WHERE EXISTS (
    SELECT 1 FROM metrics later
    WHERE later.run_id = metrics.run_id AND later.key = metrics.key AND later.step = metrics.step AND later.rowid > metrics.rowid
  );
  DROP INDEX metrics_run_key_step;
  CREATE UNIQUE INDEX metrics_run_key_step ON metrics (run_id, key, step);
  `,
  // v5: rollups of every metric curve and checkpoint pins. A rollup row summarises the points of one
  // key in a bucket of 2^shift steps (shift 6, 10, 14: 64, 1024, 16384 steps), so the monitor draws a
  // curve of a million points from a few thousand rows (docs/sqlite.md, "metric_rollups"). Triggers
  // keep them: an insert folds its point in; an update or delete cannot take a point out of a min or
  // max, so it marks the bucket stale, and the writer recomputes stale buckets from the points before
  // it commits (refreshRollups). Existing points are rolled up here.
  `
  CREATE TABLE metric_rollups (
    run_id     TEXT NOT NULL,
    key        TEXT NOT NULL,
    shift      INTEGER NOT NULL,            -- bucket = step >> shift
    bucket     INTEGER NOT NULL,
    n          INTEGER NOT NULL,            -- points in the bucket
    lo         REAL NOT NULL,               -- their min
    hi         REAL NOT NULL,               -- their max
    sum        REAL NOT NULL,
    last_step  INTEGER NOT NULL,            -- the bucket's last point
    last_value REAL NOT NULL,
    last_time  REAL NOT NULL,               -- unix seconds
    stale      INTEGER NOT NULL DEFAULT 0,  -- 1: a point was changed or removed; recompute from metrics
    PRIMARY KEY (run_id, key, shift, bucket)
  ) WITHOUT ROWID;
  CREATE INDEX metric_rollups_stale ON metric_rollups (stale) WHERE stale = 1;
  INSERT INTO metric_rollups (run_id, key, shift, bucket, n, lo, hi, sum, last_step, last_value, last_time)
    SELECT m.run_id, m.key, s.shift, m.step >> s.shift, count(*), min(m.value), max(m.value), total(m.value), max(m.step), 0, 0
    FROM metrics m, (SELECT 6 AS shift UNION ALL SELECT 10 UNION ALL SELECT 14) s
    GROUP BY m.run_id, m.key, s.shift, m.step >> s.shift;
  UPDATE metric_rollups SET (last_value, last_time) = (
    SELECT value, wall_time FROM metrics m
    WHERE m.run_id = metric_rollups.run_id AND m.key = metric_rollups.key AND m.step = metric_rollups.last_step
  );
  CREATE TRIGGER metrics_rollup_insert AFTER INSERT ON metrics BEGIN
    INSERT INTO metric_rollups (run_id, key, shift, bucket, n, lo, hi, sum, last_step, last_value, last_time)
      SELECT NEW.run_id, NEW.key, s.shift, NEW.step >> s.shift, 1, NEW.value, NEW.value, NEW.value, NEW.step, NEW.value, NEW.wall_time
      FROM (SELECT 6 AS shift UNION ALL SELECT 10 UNION ALL SELECT 14) s WHERE true
    ON CONFLICT (run_id, key, shift, bucket) DO UPDATE SET
      n = n + 1, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), sum = sum + excluded.sum,
      last_value = CASE WHEN excluded.last_step >= last_step THEN excluded.last_value ELSE last_value END,
      last_time = CASE WHEN excluded.last_step >= last_step THEN excluded.last_time ELSE last_time END,
      last_step = max(last_step, excluded.last_step);
  END;
  CREATE TRIGGER metrics_rollup_update AFTER UPDATE ON metrics BEGIN
    UPDATE metric_rollups SET stale = 1
    WHERE (run_id = OLD.run_id AND key = OLD.key AND shift IN (6, 10, 14) AND bucket = OLD.step >> shift)
       OR (run_id = NEW.run_id AND key = NEW.key AND shift IN (6, 10, 14) AND bucket = NEW.step >> shift);
  END;
  CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics BEGIN
    UPDATE metric_rollups SET stale = 1 WHERE run_id = OLD.run_id AND key = OLD.key AND shift IN (6, 10, 14) AND bucket = OLD.step >> shift;
  END;

  -- A pinned checkpoint is never removed by retention (srgan checkpoint --keep, the monitor's pin).
  ALTER TABLE checkpoints ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
  `,
  // v6: thinning old points and previews (store/thinning.ts, docs/reliability.md "Bounded growth").
  // While a thinning pass runs (a row in \`thinning\`, inside its transaction) deleted points leave their
  // rollup buckets as they were: the rollups keep the full-resolution min, max and mean of the thinned
  // stretch. thin_marks: how far each run has been thinned.
  `
  CREATE TABLE thinning (active INTEGER NOT NULL);
  DROP TRIGGER metrics_rollup_delete;
  CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics WHEN NOT EXISTS (SELECT 1 FROM thinning) BEGIN
    UPDATE metric_rollups SET stale = 1 WHERE run_id = OLD.run_id AND key = OLD.key AND shift IN (6, 10, 14) AND bucket = OLD.step >> shift;
  END;
  CREATE TABLE thin_marks (
    run_id       TEXT PRIMARY KEY,
    metrics_step INTEGER NOT NULL DEFAULT 0,  -- points at steps up to this one are thinned
    preview_time REAL NOT NULL DEFAULT 0      -- previews before this time (unix seconds) are thinned
  );
  CREATE INDEX previews_run_time ON previews (run_id, time);
  `,
  // v7: runs from the run queue (docs/scale.md): the worker and job a run came from, and, for a run this
  // database took over from another worker's checkpoint, the step it continued from (its earlier steps
  // are in that worker's runs.db).
  `
  ALTER TABLE runs ADD COLUMN worker TEXT;
  ALTER TABLE runs ADD COLUMN job TEXT;
  ALTER TABLE runs ADD COLUMN continued_from INTEGER;
  `,
];

/** The bucket widths of metric_rollups, as shifts (bucket = step >> shift), finest first. */
export const ROLLUP_SHIFTS = [6, 10, 14] as const;

/**
 * Recomputes every stale rollup bucket from the points it covers (removing buckets left empty). The
 * writer calls it in the transaction that changed or removed points, so readers never see a stale
 * bucket it wrote; readers that meet one anyway (a file another tool changed) read its points instead.
 */
export function refreshRollups(db: Database.Database): number {
  if (schemaVersion(db) < 5) return 0;
  const stale = db.prepare('SELECT run_id, key, shift, bucket FROM metric_rollups WHERE stale = 1').all() as {
    run_id: string;
    key: string;
    shift: number;
    bucket: number;
  }[];
  if (stale.length === 0) return 0;
  const aggregate = db.prepare(
    'SELECT count(*) AS n, min(value) AS lo, max(value) AS hi, total(value) AS sum FROM metrics WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ?',
  );
  const last = db.prepare(
    'SELECT step, value, wall_time FROM metrics WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ? ORDER BY step DESC LIMIT 1',
  );
  const update = db.prepare(
    `UPDATE metric_rollups SET n = ?, lo = ?, hi = ?, sum = ?, last_step = ?, last_value = ?, last_time = ?, stale = 0
     WHERE run_id = ? AND key = ? AND shift = ? AND bucket = ?`,
  );
  const remove = db.prepare('DELETE FROM metric_rollups WHERE run_id = ? AND key = ? AND shift = ? AND bucket = ?');
  for (const b of stale) {
    const first = b.bucket * 2 ** b.shift;
    const range = [b.run_id, b.key, first, first + 2 ** b.shift - 1] as const;
    const a = aggregate.get(...range) as { n: number; lo: number | null; hi: number | null; sum: number };
    if (a.n === 0) {
      remove.run(b.run_id, b.key, b.shift, b.bucket);
      continue;
    }
    const l = last.get(...range) as { step: number; value: number; wall_time: number };
    update.run(a.n, a.lo, a.hi, a.sum, l.step, l.value, l.wall_time, b.run_id, b.key, b.shift, b.bucket);
  }
  return stale.length;
}

/** Opens (creating and migrating) the runs database. `readonly` opens without migrating. */
export function openDb(file: string, opts: { readonly?: boolean } = {}): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new SrganError('SRGAN_ERR_CONFIG', `cannot open runs database ${file}: ${(err as Error).message}`, { cause: err });
  }
  waitForLocks(db);
  // Checked before any pragma that writes, so a newer file is left exactly as it was.
  const version = schemaVersion(db);
  if (version > SCHEMA_VERSION) {
    db.close();
    throw newerError(file, version);
  }
  if (opts.readonly) return db;
  try {
    configureWriter(db);
    migrate(db, file);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function migrate(db: Database.Database, file: string): void {
  // Each step re-reads the version inside an IMMEDIATE transaction: two processes opening the same old
  // file must not both run a migration.
  const step = db.transaction((): boolean => {
    const v = schemaVersion(db);
    if (v > SCHEMA_VERSION) throw newerError(file, v);
    if (v === SCHEMA_VERSION) return false;
    try {
      db.exec(MIGRATIONS[v]);
    } catch (err) {
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `cannot migrate runs database ${file} from schema version ${v} to ${v + 1}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  while (step.immediate()) {
    /* next version */
  }
}

function newerError(file: string, version: number): SrganError {
  return new SrganError(
    'SRGAN_ERR_CONFIG',
    `runs database ${file} has schema version ${version}, newer than this srgan (${SCHEMA_VERSION}); upgrade srgan`,
  );
}

/** `PRAGMA user_version`: 0 for an empty file. */
export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

// ---- runs ----------------------------------------------------------------------------------------

export const RUN_STATUSES = ['starting', 'training', 'paused', 'stopped', 'failed'] as const;

export interface RunRow {
  id: string;
  name: string;
  status: string;
  created_at: number;
  ended_at: number | null;
  preset: string;
  backend: string | null;
  backend_reason: string | null;
  config: string;
  host: string;
  pid: number;
  data_dir: string;
  last_step: number;
  /** The `srgan worker` (host:pid) and queue job a run came from; null for `srgan start` (and before v7). */
  worker?: string | null;
  job?: string | null;
  /** The step this database's record of the run starts from when it took the run over from another worker's checkpoint. */
  continued_from?: number | null;
}

/** Runs, newest first; `status` keeps those with that status (or any of those statuses). */
export function listRuns(db: Database.Database, opts: { status?: string | readonly string[] } = {}): RunRow[] {
  if (schemaVersion(db) === 0) return []; // an empty file no daemon has opened yet
  const statuses = opts.status === undefined ? [] : typeof opts.status === 'string' ? [opts.status] : [...opts.status];
  if (statuses.length > 0) {
    return db
      .prepare(`SELECT * FROM runs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at DESC`)
      .all(...statuses) as RunRow[];
  }
  return db.prepare('SELECT * FROM runs ORDER BY created_at DESC').all() as RunRow[];
}

/**
 * The run a user means by `ref`: its full id, a unique prefix of an id, or its name. Throws
 * SRGAN_ERR_CONFIG naming the candidates when none or several match.
 */
export function resolveRun(db: Database.Database, ref: string): RunRow {
  if (ref === '') throw new SrganError('SRGAN_ERR_CONFIG', 'a run must be named by its id, a prefix of its id, or its name; got ""');
  const exact = db.prepare('SELECT * FROM runs WHERE id = ?').get(ref) as RunRow | undefined;
  if (exact) return exact;
  const matches = db
    .prepare('SELECT * FROM runs WHERE substr(id, 1, length(@ref)) = @ref OR name = @ref ORDER BY created_at DESC')
    .all({ ref }) as RunRow[];
  if (matches.length === 1) return matches[0];
  const describe = (r: RunRow) => `  ${r.id}  ${r.status.padEnd(8)}  ${r.name}`;
  if (matches.length > 1) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `"${ref}" matches ${matches.length} runs; use more of the id:\n${matches.map(describe).join('\n')}`,
    );
  }
  const recent = db.prepare('SELECT * FROM runs ORDER BY created_at DESC LIMIT 10').all() as RunRow[];
  throw new SrganError(
    'SRGAN_ERR_CONFIG',
    recent.length === 0
      ? `no run matches "${ref}": the database has no runs`
      : `no run matches "${ref}" (by id, id prefix or name); the latest runs are:\n${recent.map(describe).join('\n')}`,
  );
}

// ---- params --------------------------------------------------------------------------------------

export type ParamValue = string | number | null;

// The leaves of a JSON config as (key, value) rows: dotted keys (arrays by index), JSON numbers as
// INTEGER or REAL, booleans as 1/0 (as json_extract gives them), empty arrays and objects as '[]'/'{}'.
const PARAMS_OF_CONFIG = `
  SELECT replace(replace(substr(t.fullkey, 3), '[', '.'), ']', '') AS key,
         CASE WHEN t.type IN ('object', 'array') THEN t.value ELSE t.atom END AS value
  FROM json_tree(?) t
  WHERE t.fullkey <> '$' AND (t.type NOT IN ('object', 'array') OR t.value IN ('[]', '{}'))`;

/**
 * Writes the flattened effective config of a run into `params`, replacing any rows it had. `config` is
 * the config object, or its JSON text (as stored in runs.config).
 */
export function insertParams(db: Database.Database, runId: string, config: object | string): void {
  const text = typeof config === 'string' ? config : JSON.stringify(config);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TypeError(`insertParams: "config" must be a JSON object, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`insertParams: "config" must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : String(parsed)}`);
  }
  db.transaction(() => {
    db.prepare('DELETE FROM params WHERE run_id = ?').run(runId);
    db.prepare(`INSERT INTO params (run_id, key, value) SELECT ?, key, value FROM (${PARAMS_OF_CONFIG})`).run(runId, text);
  })();
}

/** A run's params in key order; derived from runs.config on a database older than v2. */
export function getParams(db: Database.Database, runId: string): Map<string, ParamValue> {
  const rows = (
    schemaVersion(db) >= 2
      ? db.prepare('SELECT key, value FROM params WHERE run_id = ? ORDER BY key').all(runId)
      : db
          .prepare(`SELECT key, value FROM (${PARAMS_OF_CONFIG}) ORDER BY key`)
          .all(db.prepare('SELECT config FROM runs WHERE id = ?').pluck().get(runId) ?? '{}')
  ) as { key: string; value: ParamValue }[];
  return new Map(rows.map((r) => [r.key, r.value]));
}

// ---- metrics -------------------------------------------------------------------------------------

/** One row of the metrics table: one key at one step (MetricsPoint in protocol/ is every key of a step). */
export interface MetricRow {
  step: number;
  key: string;
  value: number;
  wall_time: number;
}

/** The latest point of each key of a run, by key. Works on a v1 database too (no view there). */
export function latestMetrics(db: Database.Database, runId: string): MetricRow[] {
  if (schemaVersion(db) >= 2) {
    return db.prepare('SELECT key, step, value, wall_time FROM latest_metrics WHERE run_id = ? ORDER BY key').all(runId) as MetricRow[];
  }
  return metricKeys(db, runId).map(
    (key) =>
      db
        .prepare('SELECT key, step, value, wall_time FROM metrics WHERE run_id = ? AND key = ? ORDER BY step DESC, rowid DESC LIMIT 1')
        .get(runId, key) as MetricRow,
  );
}

/**
 * The metric keys a run has logged, sorted. A skip-scan over metrics_run_key_step (one index seek per
 * key), so it costs the same for a run of a million steps as for one of ten.
 */
export function metricKeys(db: Database.Database, runId: string): string[] {
  return db
    .prepare(
      `WITH RECURSIVE k(key) AS (
         SELECT min(key) FROM metrics WHERE run_id = @runId
         UNION ALL
         SELECT (SELECT min(key) FROM metrics WHERE run_id = @runId AND key > k.key) FROM k WHERE k.key IS NOT NULL
       )
       SELECT key FROM k WHERE key IS NOT NULL`,
    )
    .pluck()
    .all({ runId }) as string[];
}

/**
 * The curves of `keys` for a run, ordered by step then key. `every` (default 1) keeps every Nth point of
 * each curve, counting from its first, and always its last.
 */
export function metricCurves(db: Database.Database, runId: string, keys: readonly string[], every = 1): MetricRow[] {
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`metricCurves: "every" must be an integer >= 1, got ${every}`);
  if (keys.length === 0) return [];
  return db
    .prepare(
      `SELECT step, key, value, wall_time FROM (
         SELECT step, key, value, wall_time,
                row_number() OVER (PARTITION BY key ORDER BY step, rowid) - 1 AS i,
                count(*) OVER (PARTITION BY key) AS n
         FROM metrics WHERE run_id = ? AND key IN (${keys.map(() => '?').join(', ')})
       ) WHERE i % ? = 0 OR i = n - 1
       ORDER BY step, key`,
    )
    .all(runId, ...keys, every) as MetricRow[];
}

/** The lowest or highest value of a key over a run, with its step; null when the run never logged it. */
export function bestMetric(
  db: Database.Database,
  runId: string,
  key: string,
  direction: 'min' | 'max',
): { step: number; value: number } | null {
  // A lone min()/max() makes SQLite take `step` from the row that holds the extreme.
  const row = db.prepare(`SELECT ${direction}(value) AS value, step FROM metrics WHERE run_id = ? AND key = ?`).get(runId, key) as
    { value: number | null; step: number | null } | undefined;
  return row && row.value !== null ? { step: row.step as number, value: row.value } : null;
}

/** The validation at one step: the model's PSNR, bicubic's on the same images, and the difference (dB). */
export interface ValidationPoint {
  step: number;
  psnr: number | null;
  bicubic: number | null;
  gain: number;
}

/**
 * A run's validation against bicubic: the latest `val_gain` point (with `val_psnr` and `val_bicubic` of
 * the same step) and the best gain with its step, counting steps up to `uptoStep` only when given (a
 * resumed run's later steps are trained again). Nulls when the run never logged `val_gain` (validation
 * off, or a run from before it was measured).
 */
export function validationSummary(
  db: Database.Database,
  runId: string,
  uptoStep = Number.MAX_SAFE_INTEGER,
): { latest: ValidationPoint | null; best: { step: number; gain: number } | null } {
  const last = db
    .prepare("SELECT step, value FROM metrics WHERE run_id = ? AND key = 'val_gain' AND step <= ? ORDER BY step DESC, rowid DESC LIMIT 1")
    .get(runId, uptoStep) as { step: number; value: number } | undefined;
  if (!last) return { latest: null, best: null };
  const at = (key: string): number | null =>
    (db
      .prepare('SELECT value FROM metrics WHERE run_id = ? AND key = ? AND step = ? ORDER BY rowid DESC LIMIT 1')
      .pluck()
      .get(runId, key, last.step) as number | undefined) ?? null;
  // On a tie the earliest step: an equal gain later is no new best (the trainer writes a 'best'
  // checkpoint only on a strictly higher one). Validation points are few, so reading them all is cheap.
  const best = db
    .prepare("SELECT step, value FROM metrics WHERE run_id = ? AND key = 'val_gain' AND step <= ? ORDER BY value DESC, step ASC LIMIT 1")
    .get(runId, uptoStep) as { step: number; value: number };
  return {
    latest: { step: last.step, psnr: at('val_psnr'), bicubic: at('val_bicubic'), gain: last.value },
    best: { step: best.step, gain: best.value },
  };
}

// ---- events --------------------------------------------------------------------------------------

export interface EventRow {
  id: number;
  run_id: string | null;
  time: number;
  kind: string;
  message: string;
  data: string | null;
}

/** Number of events of each kind for a run, most frequent first. */
export function eventCounts(db: Database.Database, runId: string): { kind: string; count: number }[] {
  return db.prepare('SELECT kind, count(*) AS count FROM events WHERE run_id = ? GROUP BY kind ORDER BY count DESC, kind').all(runId) as {
    kind: string;
    count: number;
  }[];
}

/** The run's latest event of `kind`, or null. */
export function lastEvent(db: Database.Database, runId: string, kind: string): EventRow | null {
  return (
    (db.prepare('SELECT * FROM events WHERE run_id = ? AND kind = ? ORDER BY time DESC, id DESC LIMIT 1').get(runId, kind) as
      EventRow | undefined) ?? null
  );
}

// ---- checkpoints ---------------------------------------------------------------------------------

/** Why a checkpoint was written; the one list of them (the writer, the wire and this table use it). */
export const CHECKPOINT_KINDS = ['periodic', 'best', 'manual', 'stop', 'error'] as const;
export type CheckpointKind = (typeof CHECKPOINT_KINDS)[number];

export interface CheckpointRow {
  id: number;
  run_id: string;
  step: number;
  /** Unix seconds. */
  time: number;
  path: string;
  checksum: string;
  /** Validation PSNR (dB), when measured at this step. */
  psnr: number | null;
  /** Validation gain over bicubic (dB), when measured at this step; always null on a v2 database. */
  gain: number | null;
  kind: CheckpointKind;
  /** 1 once the file has been removed. */
  deleted: number;
  /** 1: retention never removes it (always 0 before v5). */
  pinned: number;
}

export type NewCheckpoint = Omit<CheckpointRow, 'id' | 'psnr' | 'gain' | 'deleted' | 'pinned'> & {
  psnr?: number | null;
  gain?: number | null;
  deleted?: boolean;
};

/** Records a checkpoint (psnr and gain default to NULL, deleted to 0); returns its id. */
export function recordCheckpoint(db: Database.Database, row: NewCheckpoint): number {
  if (!(CHECKPOINT_KINDS as readonly string[]).includes(row.kind)) {
    throw new RangeError(`recordCheckpoint: "kind" must be one of ${CHECKPOINT_KINDS.join(', ')}, got ${JSON.stringify(row.kind)}`);
  }
  const info = db
    .prepare('INSERT INTO checkpoints (run_id, step, time, path, checksum, psnr, gain, kind, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    .run(row.run_id, row.step, row.time, row.path, row.checksum, row.psnr ?? null, row.gain ?? null, row.kind, row.deleted ? 1 : 0);
  return Number(info.lastInsertRowid);
}

/** Marks a checkpoint's file as removed (the row stays, for history). */
export function markCheckpointDeleted(db: Database.Database, id: number): void {
  db.prepare('UPDATE checkpoints SET deleted = 1 WHERE id = ?').run(id);
}

/**
 * A run's checkpoints by step; deleted ones only with `includeDeleted`. Empty on a v1 database; `gain`
 * is null on a v2 one (the CLI reads files no daemon has upgraded yet).
 */
export function listCheckpoints(db: Database.Database, runId: string, opts: { includeDeleted?: boolean } = {}): CheckpointRow[] {
  const version = schemaVersion(db);
  if (version < 2) return [];
  const columns =
    'id, run_id, step, time, path, checksum, psnr, ' +
    (version >= 3 ? 'gain' : 'NULL AS gain') +
    ', kind, deleted, ' +
    (version >= 5 ? 'pinned' : '0 AS pinned');
  return db
    .prepare(`SELECT ${columns} FROM checkpoints WHERE run_id = ? ${opts.includeDeleted ? '' : 'AND deleted = 0'} ORDER BY step, id`)
    .all(runId) as CheckpointRow[];
}

/**
 * Pins (or unpins) run `runId`'s checkpoints at `step`, those whose files still exist; returns them as
 * they are now (empty when there is none). A pinned checkpoint is never removed by retention.
 */
export function pinCheckpoint(db: Database.Database, runId: string, step: number, pinned: boolean): CheckpointRow[] {
  db.prepare('UPDATE checkpoints SET pinned = ? WHERE run_id = ? AND step = ? AND deleted = 0').run(pinned ? 1 : 0, runId, step);
  return listCheckpoints(db, runId).filter((c) => c.step === step);
}

/** The steps of run `runId` whose checkpoints are pinned. */
export function pinnedSteps(db: Database.Database, runId: string): Set<number> {
  if (schemaVersion(db) < 5) return new Set();
  return new Set(
    db.prepare('SELECT DISTINCT step FROM checkpoints WHERE run_id = ? AND pinned = 1 AND deleted = 0').pluck().all(runId) as number[],
  );
}

// ---- evals ---------------------------------------------------------------------------------------

export interface EvalRow {
  id: number;
  run_id: string | null;
  /** Unix seconds. */
  time: number;
  data_dir: string;
  /**
   * 'model', 'bicubic' or a compared model's path; `srgan eval` appends `@LR` (e.g. 'model@area') when
   * the LR synthesis is not the standard 'bicubic-aa', whose name is also json's `lr` (docs/sqlite.md).
   */
  model: string;
  psnr: number | null;
  ssim: number | null;
  images: number;
  /** The full report, JSON. */
  json: string | null;
}

export type NewEval = Omit<EvalRow, 'id' | 'json'> & { json?: unknown };

/** Records an evaluation; `json` is stored as JSON text (a string is stored as is). Returns its id. */
export function recordEval(db: Database.Database, row: NewEval): number {
  const json = row.json === undefined || row.json === null ? null : typeof row.json === 'string' ? row.json : JSON.stringify(row.json);
  const info = db
    .prepare('INSERT INTO evals (run_id, time, data_dir, model, psnr, ssim, images, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run(row.run_id, row.time, row.data_dir, row.model, row.psnr, row.ssim, row.images, json);
  return Number(info.lastInsertRowid);
}

/** A run's evaluations, oldest first. Empty on a v1 database. */
export function listEvals(db: Database.Database, runId: string): EvalRow[] {
  if (schemaVersion(db) < 2) return [];
  return db.prepare('SELECT * FROM evals WHERE run_id = ? ORDER BY time, id').all(runId) as EvalRow[];
}

/** What one run takes in runs.db: its metric rows and previews, beside the whole file's. */
export interface RunStorage {
  metricRows: number;
  /** Every run's metric rows (the run's share of the file's metric pages is metricRows / allMetricRows). */
  allMetricRows: number;
  previews: number;
  previewBytes: number;
  allPreviewBytes: number;
  /** The database file's size (pages in use and free), without its WAL; the sum of the files when several are read as one. */
  fileBytes: number;
}

export function runStorage(db: Database.Database, runId: string): RunStorage {
  const count = (sql: string, ...args: unknown[]) =>
    db
      .prepare(sql)
      .pluck()
      .get(...args) as number;
  const previews = db.prepare('SELECT count(*) AS n, total(length(png)) AS bytes FROM previews WHERE run_id = ?').get(runId) as {
    n: number;
    bytes: number;
  };
  return {
    metricRows: count('SELECT count(*) FROM metrics WHERE run_id = ?', runId),
    allMetricRows: count('SELECT count(*) FROM metrics'),
    previews: previews.n,
    previewBytes: previews.bytes,
    allPreviewBytes: count('SELECT total(length(png)) FROM previews'),
    // Every file of the connection: several when store/multi-db.ts merged them.
    fileBytes: (db.pragma('database_list') as { name: string; file: string }[])
      .filter((d) => d.name !== 'temp' && d.file !== '')
      .reduce(
        (n, d) =>
          n +
          (db.pragma(`"${d.name}".page_count`, { simple: true }) as number) *
            (db.pragma(`"${d.name}".page_size`, { simple: true }) as number),
        0,
      ),
  };
}
