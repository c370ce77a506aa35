// The runs database: schema, migrations and the read queries the CLI uses. Writes during training go
// through the MetricsStore actor, the one owner of the daemon's connection. Documented in docs/sqlite.md.

import Database from 'better-sqlite3';
import { SrganError } from '../errors.js';

export const SCHEMA_VERSION = 1;

const MIGRATIONS: readonly string[] = [
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
];

/** Opens (creating and migrating) the runs database. `readonly` opens without migrating. */
export function openDb(file: string, opts: { readonly?: boolean } = {}): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new SrganError('SRGAN_ERR_CONFIG', `cannot open runs database ${file}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `runs database ${file} has schema version ${version}, newer than this srgan (${SCHEMA_VERSION}); upgrade srgan`,
    );
  }
  if (opts.readonly) return db;
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  for (let v = version; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}

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
}

/** Runs, newest first. */
export function listRuns(db: Database.Database, opts: { status?: string } = {}): RunRow[] {
  if (opts.status) {
    return db.prepare('SELECT * FROM runs WHERE status = ? ORDER BY created_at DESC').all(opts.status) as RunRow[];
  }
  return db.prepare('SELECT * FROM runs ORDER BY created_at DESC').all() as RunRow[];
}
