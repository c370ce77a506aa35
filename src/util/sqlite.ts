// How every SQLite file of ours is opened (runs.db, a data set's manifest.sqlite; docs/sqlite.md):
// readers and a writer in other processes wait for each other instead of failing, and a writer uses WAL.

import type Database from 'better-sqlite3';

/** Waits up to 5 s for another process's lock (a daemon writing while a command reads). Safe on read-only handles. */
export function waitForLocks(db: Database.Database): void {
  db.pragma('busy_timeout = 5000');
}

/** The writer's settings: WAL (readers see a consistent snapshot while it writes), fsync at checkpoints, foreign keys. */
export function configureWriter(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}
