// `srgan monitor`: the monitor page over runs.db when no daemon runs (read-only: it shows past runs and
// controls nothing), and `srgan checkpoint --keep`: pinning a checkpoint so that retention keeps it.

import fs from 'node:fs';

import { ControlServer } from '../actors/control-server.js';
import { listCheckpoints, listRuns, openDb, pinCheckpoint, resolveRun } from '../store/db.js';
import { ensureToken, homePaths, readDaemonInfo, type HomePaths } from '../store/home.js';
import { MonitorData } from '../store/monitor-data.js';
import { SrganError } from '../util/errors.js';
import { intFlag, json, str, type Command } from './flags.js';

export const monitorCommand: Command = {
  summary: 'serve the monitor page for past runs (read-only) when no daemon runs',
  usage: 'srgan monitor [--port N] [--json]',
  options: { port: { type: 'string' }, json },
  help: {
    '--port N': 'port on 127.0.0.1 (default: a free port)',
    '--json': 'print {url, port, pid, readOnly} as one JSON object',
  },
  async run(v) {
    const paths = homePaths();
    const port = v.port === undefined ? 0 : intFlag('--port', v.port, 0);
    const daemon = readDaemonInfo(paths);
    if (daemon) {
      // The daemon serves the same page, with its controls: send people there.
      if (v.json) console.log(JSON.stringify({ url: daemon.url, port: daemon.port, pid: daemon.pid, readOnly: false }));
      else console.log(`a daemon is running (pid ${daemon.pid}); its monitor: ${daemon.url}`);
      return 0;
    }
    if (!fs.existsSync(paths.db))
      throw new SrganError('SRGAN_ERR_NOT_RUNNING', `no runs yet: ${paths.db} does not exist (srgan start makes it)`);
    openDb(paths.db).close(); // brings an older file up to date (the monitor reads its rollups)
    const db = openDb(paths.db, { readonly: true });
    const server = new ControlServer({
      port,
      token: ensureToken(paths),
      control: null,
      monitor: { data: new MonitorData(db), liveRunId: () => null },
    });
    try {
      await server.start();
    } catch (err) {
      db.close();
      throw new SrganError('SRGAN_ERR_CONFIG', `cannot serve the monitor on port ${port}: ${(err as Error).message}`, { cause: err });
    }
    if (v.json) console.log(JSON.stringify({ url: server.url, port: server.port, pid: process.pid, readOnly: true }));
    else console.log(`monitor: ${server.url}\n(read-only: past runs of ${paths.root}; Ctrl-C stops it)`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.stop();
    db.close();
    return 0;
  },
};

/**
 * `srgan checkpoint --keep STEP` / `--unkeep STEP`: pins (unpins) run RUN's checkpoint at STEP in
 * runs.db; the run is the daemon's when one runs, else the newest. Retention reads the pins each time
 * it prunes, so a running daemon honours the change at its next checkpoint.
 */
export function pinFromCli(paths: HomePaths, step: number, pinned: boolean, runRef: string | undefined, asJson: boolean): number {
  if (!fs.existsSync(paths.db)) throw new SrganError('SRGAN_ERR_CHECKPOINT', `no runs yet: ${paths.db} does not exist`);
  const db = openDb(paths.db);
  try {
    const daemon = readDaemonInfo(paths);
    const run = runRef !== undefined ? resolveRun(db, runRef) : daemon ? resolveRun(db, daemon.runId) : (listRuns(db)[0] ?? null);
    if (!run) throw new SrganError('SRGAN_ERR_CHECKPOINT', 'the database has no runs');
    const rows = pinCheckpoint(db, run.id, step, pinned);
    if (rows.length === 0) {
      const steps = listCheckpoints(db, run.id).map((c) => c.step);
      throw new SrganError(
        'SRGAN_ERR_CHECKPOINT',
        `run ${run.id} has no checkpoint at step ${step}` + (steps.length ? `; it has steps ${steps.join(', ')}` : '; it has none left'),
      );
    }
    const c = rows[rows.length - 1];
    if (asJson) console.log(JSON.stringify({ runId: run.id, step, pinned, path: c.path }));
    else console.log(`${pinned ? 'pinned' : 'unpinned'} run ${run.id} step ${step}: ${c.path}${pinned ? ' (retention keeps it)' : ''}`);
    return 0;
  } finally {
    db.close();
  }
}

/** The --keep/--unkeep/--run flags of `srgan checkpoint`, or null when none was given (write a checkpoint). */
export function pinRequest(v: Record<string, unknown>): { step: number; pinned: boolean; run: string | undefined } | null {
  if (v.keep !== undefined && v.unkeep !== undefined) throw new SrganError('SRGAN_ERR_CONFIG', 'give --keep or --unkeep, not both');
  const run = str(v.run as string | undefined);
  if (v.keep === undefined && v.unkeep === undefined) {
    if (run !== undefined) throw new SrganError('SRGAN_ERR_CONFIG', '--run goes with --keep STEP or --unkeep STEP');
    return null;
  }
  const pinned = v.keep !== undefined;
  return { step: intFlag(pinned ? '--keep' : '--unkeep', (pinned ? v.keep : v.unkeep) as string, 0), pinned, run };
}
