// Where the daemon keeps its state: $SRGAN_HOME (default ~/.srgan). One daemon per home, guarded by a
// lock the kernel releases when the daemon dies (util/lock-file.ts): a killed daemon's lock is free at
// once, zombie or not, and a process that reused its pid holds nothing.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { SrganError } from '../util/errors.js';
import { acquireLockFile, lockFileOwner, releaseLockFile } from '../util/lock-file.js';

export interface HomePaths {
  root: string;
  lock: string;
  /** JSON written by a running daemon once it listens: pid, port, url, runId. */
  daemonInfo: string;
  token: string;
  db: string;
  checkpoints: string;
  logs: string;
  demoData: string;
}

/** Paths under $SRGAN_HOME (or `root`), creating the directories. */
export function homePaths(root = process.env.SRGAN_HOME || path.join(os.homedir(), '.srgan')): HomePaths {
  const abs = path.resolve(root);
  const p: HomePaths = {
    root: abs,
    lock: path.join(abs, 'daemon.lock'),
    daemonInfo: path.join(abs, 'daemon.json'),
    token: path.join(abs, 'token'),
    db: path.join(abs, 'runs.db'),
    checkpoints: path.join(abs, 'checkpoints'),
    logs: path.join(abs, 'logs'),
    demoData: path.join(abs, 'demo-data'),
  };
  for (const dir of [p.root, p.checkpoints, p.logs]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return p;
}

/**
 * The folder of run `runId`'s checkpoints: under its config's `checkpointRoot` when it has one (shared by
 * the workers of a run queue, docs/scale.md), else under the home's checkpoints/. `config` is the run's
 * config, or its JSON text as runs.config stores it.
 */
export function runCheckpointDir(
  p: Pick<HomePaths, 'checkpoints'>,
  runId: string,
  config: string | { checkpointRoot?: string | null },
): string {
  let root: unknown = null;
  try {
    root = (typeof config === 'string' ? (JSON.parse(config) as { checkpointRoot?: unknown }) : config).checkpointRoot;
  } catch {
    /* a config that does not parse has no root of its own */
  }
  return path.join(typeof root === 'string' && root !== '' ? root : p.checkpoints, runId);
}

/** The access token, created (mode 0600) on first use. */
export function ensureToken(p: HomePaths): string {
  try {
    const existing = fs.readFileSync(p.token, 'utf8').trim();
    if (/^[0-9a-f]{32,}$/.test(existing)) {
      fs.chmodSync(p.token, 0o600);
      return existing;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = crypto.randomBytes(24).toString('hex');
  const tmp = `${p.token}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, p.token);
  return token;
}

export function readToken(p: HomePaths): string {
  try {
    return fs.readFileSync(p.token, 'utf8').trim();
  } catch {
    throw new SrganError('SRGAN_ERR_NOT_RUNNING', `no token at ${p.token}: has a daemon ever started in ${p.root}?`);
  }
}

/** pid of the daemon holding the lock, or null when none is alive. */
export function lockOwner(p: HomePaths): number | null {
  return lockFileOwner(p.lock);
}

/**
 * Takes the lock for this process, until releaseLock or its death. Throws SRGAN_ERR_ALREADY_RUNNING when
 * another live process holds it.
 */
export function acquireLock(p: HomePaths): void {
  acquireLockFile(p.lock, {
    mode: 0o600,
    held: (owner) => new SrganError('SRGAN_ERR_ALREADY_RUNNING', `a daemon is already running in ${p.root} (pid ${owner})`),
  });
}

/** Releases the lock if this process holds it. */
export function releaseLock(p: HomePaths): void {
  releaseLockFile(p.lock);
}

export interface DaemonInfo {
  pid: number;
  port: number;
  url: string;
  runId: string;
  startedAt: number;
  logFile: string;
}

export function writeDaemonInfo(p: HomePaths, info: DaemonInfo): void {
  const tmp = `${p.daemonInfo}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, p.daemonInfo);
}

/** The running daemon's info, or null when no live daemon owns this home. */
export function readDaemonInfo(p: HomePaths): DaemonInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(p.daemonInfo, 'utf8')) as DaemonInfo;
    return lockOwner(p) === info.pid ? info : null;
  } catch {
    return null;
  }
}
