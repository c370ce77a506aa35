// Locks that the kernel releases when their holder dies: one daemon per home (store/home.ts) and one
// `srgan prepare` per data folder (data/prepare/pipeline.ts). docs/reliability.md, "Liveness".
//
// A pid alone cannot tell whether its owner lives: a killed daemon stays a zombie until its parent
// reaps it (forever where init never reaps), and its pid may be reused by an unrelated process; both
// answer kill(pid, 0). So the lock is a POSIX advisory lock (fcntl) on the lock file, held through
// SQLite (better-sqlite3, which every srgan process loads anyway) for the holder's lifetime: the kernel
// drops it when the process exits, before it becomes a zombie, and no other process holds it after. The
// lock file is a small SQLite database whose header field `user_version` (4 bytes, big-endian, at byte
// 60 of the file, per SQLite's file format) holds the holder's pid, for messages; a process that checks
// reads those bytes directly, since the holder's exclusive lock keeps SQLite readers out.

import fs from 'node:fs';
import Database from 'better-sqlite3';
import { SrganError } from './errors.js';

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). A zombie counts. */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process `pid` has ended: no such process, or a zombie (exited, not yet reaped by its
 * parent; Linux's /proc tells). For waiting on a process known to be ours; liveness is lockHeld's.
 */
export function hasExited(pid: number): boolean {
  if (!isAlive(pid)) return true;
  try {
    // /proc/PID/stat: "pid (comm) S ...": the state letter follows the last ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false; // no /proc (macOS): kill(pid, 0) is all there is
  }
}

/** The SQLite header's user_version field: the holder's pid. */
const PID_OFFSET = 60;
/** How long taking a lock waits out another process that is only checking it (a shared lock for a read). */
const ACQUIRE_WAIT_MS = 500;

/** The connections holding our locks, by file: a collected connection would close and let go. */
const held = new Map<string, Database.Database>();

/** Whether `err` is SQLite saying another connection holds a conflicting lock. */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_');
}

function isNotLockFile(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT';
}

/**
 * The pid written in the lock file's header (0 when the file is too short). Never called by the holder
 * itself: closing the descriptor would drop its lock (POSIX locks belong to the process and the file).
 */
function recordedPid(file: string): number {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(4);
      return fs.readSync(fd, b, 0, 4, PID_OFFSET) === 4 ? b.readUInt32BE(0) : 0;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return 0;
  }
}

function inode(file: string): number | null {
  try {
    return fs.statSync(file).ino;
  } catch {
    return null;
  }
}

/** Whether some live process holds the lock `file`: a zombie or a process that reused a pid never does. */
export function lockHeld(file: string): boolean {
  if (held.has(file)) return true;
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 0 });
  } catch {
    return false; // no file: nobody ever held it, or it was cleaned up
  }
  try {
    db.pragma('user_version', { simple: true });
    return false;
  } catch (err) {
    return isBusy(err);
  } finally {
    db.close();
  }
}

/** The pid of the live process holding the lock `file`, or null when no live process holds it. */
export function lockFileOwner(file: string): number | null {
  if (held.has(file)) return process.pid;
  return lockHeld(file) ? recordedPid(file) : null;
}

export interface LockFileOptions {
  /** Mode of a new lock file. Default 0o666 (less the umask). */
  mode?: number;
  /** The error when another live process holds the lock. */
  held: (owner: number) => Error;
  /** The error when the file cannot be created for another reason. Default: the error as it comes. */
  cannotCreate?: (err: Error) => Error;
}

/**
 * Takes the lock `file` for this process, for as long as it lives or until releaseLockFile: a lock whose
 * holder died is free at once (zombie or not). Holding it already is fine. Throws `held(owner)` while
 * another live process holds it. A file that is not one of our lock files (an older srgan's pid file) is
 * replaced.
 */
export function acquireLockFile(file: string, o: LockFileOptions): void {
  if (held.has(file)) return;
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = inode(file);
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: ACQUIRE_WAIT_MS });
      if (o.mode !== undefined) fs.chmodSync(file, o.mode);
    } catch (err) {
      throw o.cannotCreate ? o.cannotCreate(err as Error) : err;
    }
    try {
      // EXCLUSIVE locking mode: the first write takes the exclusive lock and the connection keeps it
      // until it closes. No journal file: the one write is the pid.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = MEMORY');
      db.pragma(`user_version = ${process.pid}`);
    } catch (err) {
      db.close();
      if (isBusy(err)) throw o.held(recordedPid(file));
      if (isNotLockFile(err) && attempt === 0) {
        fs.rmSync(file, { force: true });
        continue;
      }
      throw o.cannotCreate ? o.cannotCreate(err as Error) : err;
    }
    // The file we locked may have been removed by its last holder (releaseLockFile) after we looked:
    // then the path names another file, or none. Take it again; likewise when we made the file (it did
    // not exist when we looked). Only stat here: closing any descriptor of a file drops every POSIX
    // lock this process holds on it, so the holder never opens the file itself.
    const after = inode(file);
    if (after !== null && before === after) {
      held.set(file, db);
      return;
    }
    db.close();
  }
  throw new SrganError('SRGAN_ERR_ALREADY_RUNNING', `could not take the lock ${file}: it keeps changing hands`);
}

/** Lets go of the lock `file` if this process holds it, and removes the file. */
export function releaseLockFile(file: string): void {
  const db = held.get(file);
  if (!db) return;
  held.delete(file);
  fs.rmSync(file, { force: true }); // removed while still locked: a process that opened it retries (above)
  db.close();
}
