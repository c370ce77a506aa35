// Reading several runs databases as one (`srgan runs|show|metrics|compare --db A --db B`, docs/scale.md):
// every worker of the run queue keeps its own runs.db, and a run that moved between workers has part of
// its history in each. The files are ATTACHed to an in-memory connection whose TEMP views, named like
// the tables (runs, metrics, events, ...), union them; SQLite looks up TEMP before the other schemas, so
// the read queries of db.ts run on the merged views unchanged. The connection is query_only.
//
// A run found in several files (it failed over) is one run: its row and params come from the file that
// holds its latest stretch (the highest continued_from, then the highest last_step), and where two files
// hold a point of the same key at the same step, that file's wins. Events, checkpoints, previews and
// evaluations of every file are kept.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openDb, SCHEMA_VERSION } from './db.js';
import { SrganError } from '../util/errors.js';
import { waitForLocks } from '../util/sqlite.js';

/** SQLite's default limit on attached databases. */
export const MAX_DATABASES = 10;

/** The tables merged, as their views; each file contributes the columns it has (older files lack some). */
const MERGED_TABLES = ['runs', 'params', 'metrics', 'events', 'previews', 'checkpoints', 'evals'] as const;

interface Column {
  name: string;
  /** The SQL of its default, for a file whose schema predates the column. */
  dflt: string | null;
}

let latestColumns: Map<string, Column[]> | null = null;

/** The columns of each merged table at SCHEMA_VERSION, read from a database migrated in memory. */
function columnsAtLatest(): Map<string, Column[]> {
  if (latestColumns) return latestColumns;
  const db = openDb(':memory:');
  try {
    latestColumns = new Map(
      MERGED_TABLES.map((t) => [
        t,
        (db.pragma(`table_info(${t})`) as { name: string; dflt_value: string | null }[]).map((c) => ({ name: c.name, dflt: c.dflt_value })),
      ]),
    );
  } finally {
    db.close();
  }
  return latestColumns;
}

/**
 * Opens runs databases read-only: one file as openDb does; several as one connection over all of them
 * (see above). SRGAN_ERR_CONFIG naming the file when one is missing, not a runs database, or newer than
 * this srgan; or when more than MAX_DATABASES are given.
 */
export function openRunsDbs(files: readonly string[]): Database.Database {
  const unique = [...new Set(files.map((f) => path.resolve(f)))];
  if (unique.length === 0) throw new RangeError('openRunsDbs: no files');
  for (const f of unique) {
    if (!fs.existsSync(f)) throw new SrganError('SRGAN_ERR_CONFIG', `--db ${f}: no such file`);
  }
  if (unique.length === 1) return openDb(unique[0], { readonly: true });
  if (unique.length > MAX_DATABASES) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--db: at most ${MAX_DATABASES} databases can be read at once, got ${unique.length}`);
  }
  const latest = columnsAtLatest();
  const db = new Database(':memory:');
  try {
    waitForLocks(db);
    const present: Map<string, Set<string>>[] = [];
    unique.forEach((file, i) => {
      let version: number;
      try {
        db.prepare(`ATTACH DATABASE ? AS db${i}`).run(file);
        version = db.pragma(`db${i}.user_version`, { simple: true }) as number;
        db.prepare(`SELECT count(*) FROM db${i}.sqlite_master`).get();
      } catch (err) {
        throw new SrganError('SRGAN_ERR_CONFIG', `--db ${file}: not a runs database (${(err as Error).message})`, { cause: err });
      }
      if (version > SCHEMA_VERSION) {
        throw new SrganError(
          'SRGAN_ERR_CONFIG',
          `--db ${file} has schema version ${version}, newer than this srgan (${SCHEMA_VERSION}); upgrade srgan`,
        );
      }
      const tables = new Map<string, Set<string>>();
      for (const t of MERGED_TABLES) {
        const cols = db.pragma(`db${i}.table_info(${t})`) as { name: string }[];
        if (cols.length > 0) tables.set(t, new Set(cols.map((c) => c.name)));
      }
      if (version > 0 && !tables.has('runs')) throw new SrganError('SRGAN_ERR_CONFIG', `--db ${file}: not a runs database (no runs table)`);
      present.push(tables);
    });
    const better = preferences(db, present);
    db.exec('CREATE TEMP TABLE merge_shadow (db INTEGER NOT NULL, run_id TEXT NOT NULL)');
    db.exec('CREATE TEMP TABLE merge_better (worse INTEGER NOT NULL, better INTEGER NOT NULL, run_id TEXT NOT NULL)');
    const shadow = db.prepare('INSERT INTO temp.merge_shadow VALUES (?, ?)');
    const pair = db.prepare('INSERT INTO temp.merge_better VALUES (?, ?, ?)');
    for (const [runId, order] of better) {
      order.forEach((dbIndex, rank) => {
        if (rank > 0) shadow.run(dbIndex, runId);
        for (const b of order.slice(0, rank)) pair.run(dbIndex, b, runId);
      });
    }
    const pairs = new Set([...better.values()].flatMap((order) => order.flatMap((w, r) => order.slice(0, r).map((b) => `${w}>${b}`))));

    for (const t of MERGED_TABLES) {
      const cols = latest.get(t)!;
      const parts: string[] = [];
      present.forEach((tables, i) => {
        const have = tables.get(t);
        if (!have) return;
        const list = cols.map((c) => (have.has(c.name) ? `x.${c.name}` : `${c.dflt ?? 'NULL'} AS ${c.name}`));
        if (t !== 'params') list.unshift('x.rowid AS rowid'); // params is WITHOUT ROWID
        let where = '';
        if (t === 'runs') where = ` WHERE x.id NOT IN (SELECT run_id FROM temp.merge_shadow WHERE db = ${i})`;
        if (t === 'params') where = ` WHERE x.run_id NOT IN (SELECT run_id FROM temp.merge_shadow WHERE db = ${i})`;
        if (t === 'metrics') {
          const clauses = present
            .map((other, j) => ({ other, j }))
            .filter(({ other, j }) => j !== i && other.has('metrics') && pairs.has(`${i}>${j}`))
            .map(
              ({ j }) =>
                `NOT (x.run_id IN (SELECT run_id FROM temp.merge_better WHERE worse = ${i} AND better = ${j}) AND EXISTS ` +
                `(SELECT 1 FROM db${j}.metrics y WHERE y.run_id = x.run_id AND y.key = x.key AND y.step = x.step))`,
            );
          if (clauses.length) where = ` WHERE ${clauses.join(' AND ')}`;
        }
        parts.push(`SELECT ${list.join(', ')} FROM db${i}.${t} x${where}`);
      });
      if (parts.length === 0) {
        const list = cols.map((c) => `NULL AS ${c.name}`);
        if (t !== 'params') list.unshift('NULL AS rowid');
        parts.push(`SELECT ${list.join(', ')} WHERE 0`);
      }
      db.exec(`CREATE TEMP VIEW ${t} AS ${parts.join('\nUNION ALL\n')}`);
    }
    // db.ts's latest_metrics finds each point by rowid, which is only unique within one file.
    db.exec(`CREATE TEMP VIEW latest_metrics AS
      SELECT run_id, key, step, value, wall_time FROM (
        SELECT run_id, key, step, value, wall_time,
               row_number() OVER (PARTITION BY run_id, key ORDER BY step DESC, rowid DESC) AS n
        FROM metrics
      ) WHERE n = 1`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    db.pragma('query_only = ON');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * For each run found in more than one file: the files holding it, the one with its latest stretch first
 * (highest continued_from, then highest last_step, then the earlier --db).
 */
function preferences(db: Database.Database, present: Map<string, Set<string>>[]): Map<string, number[]> {
  const seen = new Map<string, { i: number; from: number; last: number }[]>();
  present.forEach((tables, i) => {
    const cols = tables.get('runs');
    if (!cols) return;
    const from = cols.has('continued_from') ? 'coalesce(continued_from, -1)' : '-1';
    const rows = db.prepare(`SELECT id, ${from} AS c, last_step AS l FROM db${i}.runs`).all() as { id: string; c: number; l: number }[];
    for (const r of rows) {
      const list = seen.get(r.id) ?? [];
      list.push({ i, from: r.c, last: r.l });
      seen.set(r.id, list);
    }
  });
  const out = new Map<string, number[]>();
  for (const [id, list] of seen) {
    if (list.length < 2) continue;
    list.sort((a, b) => b.from - a.from || b.last - a.last || a.i - b.i);
    out.set(
      id,
      list.map((x) => x.i),
    );
  }
  return out;
}
