// Pid lock files: a file that holds its owner's pid, created exclusively. A lock whose owner is gone
// (killed, crashed) is taken over. Used for one daemon per home (store/home.ts) and one
// `srgan prepare` per data folder (data/prepare/pipeline.ts).

import fs from 'node:fs';
import { SrganError } from './errors.js';

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live process holding the lock `file`, or null when the file is missing or its owner is gone. */
export function lockFileOwner(file: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return isAlive(pid) ? pid : null;
}

export interface LockFileOptions {
  /** The owner written into the file. Default this process. */
  pid?: number;
  /** Mode of a new lock file. Default 0o666 (less the umask). */
  mode?: number;
  /** The error when another live process holds the lock. */
  held: (owner: number) => Error;
  /** The error when the file cannot be created for another reason than that it exists. Default: the fs error. */
  cannotCreate?: (err: Error) => Error;
}

/**
 * Takes the lock `file` for `pid`: creates it holding the pid, or takes it over from an owner that is
 * gone. Holding it already is fine. Throws `held(owner)` while another live process holds it, and
 * SRGAN_ERR_ALREADY_RUNNING when it keeps changing hands.
 */
export function acquireLockFile(file: string, o: LockFileOptions): void {
  const pid = o.pid ?? process.pid;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', o.mode ?? 0o666);
      try {
        fs.writeSync(fd, `${pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw o.cannotCreate ? o.cannotCreate(err as Error) : err;
    }
    const owner = lockFileOwner(file);
    if (owner === pid) return;
    if (owner !== null) throw o.held(owner);
    fs.rmSync(file, { force: true }); // stale: its owner is gone
  }
  throw new SrganError('SRGAN_ERR_ALREADY_RUNNING', `could not take the lock ${file}`);
}

/** Removes the lock `file` if `pid` (default this process) holds it. */
export function releaseLockFile(file: string, pid = process.pid): void {
  try {
    if (Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10) === pid) fs.rmSync(file, { force: true });
  } catch {
    /* already gone */
  }
}
