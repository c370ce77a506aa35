// Liveness that a zombie or a reused pid cannot fool (docs/reliability.md, "Liveness"): the daemon's and
// prepare's locks are ones the kernel drops when the holder dies. A zombie is made for real: the holder
// runs under a python3 parent that never reaps it, and is killed with SIGKILL; /proc shows it as Z and
// kill(pid, 0) still answers for it, as it does after a kill -9 where init reaps late or never.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { srganJson, waitFor } from '../support/cli.js';
import { DIST, tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { acquireLockFile, hasExited, isAlive, lockFileOwner, lockHeld, releaseLockFile } from '../../src/util/lock-file.js';

const tmp = tempDir('srgan-liveness-');
const parents: ChildProcess[] = [];
const daemons: number[] = [];

// Forks `argv`, prints the child's pid, and never waits for it: once killed, the child stays a zombie.
const UNREAPED = `
import os, sys, time
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
pid = os.fork()
if pid == 0:
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.execv(sys.argv[2], sys.argv[2:])
print(pid, flush=True)
time.sleep(600)
`;

/** Starts `argv` under a parent that will not reap it; resolves with the child's pid. */
function spawnUnreaped(argv: string[], env: NodeJS.ProcessEnv, log: string): Promise<number> {
  const parent = spawn('python3', ['-c', UNREAPED, log, ...argv], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  parents.push(parent);
  return new Promise((resolve, reject) => {
    parent.once('error', reject);
    parent.stdout.once('data', (d: Buffer) => resolve(Number.parseInt(d.toString(), 10)));
  });
}

function procState(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/**
 * SIGKILLs `pid` and waits until it is a zombie (dead, unreaped, still there for kill(pid, 0)) whose
 * threads have all ended: /proc shows the thread-group leader as Z as soon as it has exited, while the
 * process's other threads, which share its open files and so its locks, may take a moment more.
 */
async function killToZombie(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(`pid ${pid} to be a zombie`, () => procState(pid) === 'Z', 30_000, 50);
  await waitFor(`pid ${pid}'s threads to end`, () => fs.readdirSync(`/proc/${pid}/task`).length <= 1, 10_000, 20);
  expect(isAlive(pid)).toBe(true); // what fooled the old pid check
  expect(hasExited(pid)).toBe(true);
}

const photos = path.join(tmp.dir, 'photos');
beforeAll(async () => {
  await writePhotos(photos, 6, 80, 72);
});
afterEach(() => {
  for (const pid of daemons.splice(0)) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
});
afterAll(() => {
  for (const p of parents) p.kill('SIGKILL'); // init reaps their zombies
  tmp.cleanup();
});

const HOLDER = `
const { acquireLockFile } = await import(${JSON.stringify(path.join(DIST, 'util/lock-file.js'))});
acquireLockFile(process.argv[1], { held: (pid) => new Error('held by ' + pid) });
console.log('held');
setInterval(() => {}, 1000);
`;

describe('the lock file', () => {
  it('is held while its holder lives, names it, and is free once the holder is a zombie', async () => {
    const file = path.join(tmp.dir, 'a.lock');
    const log = path.join(tmp.dir, 'holder.log');
    const pid = await spawnUnreaped([process.execPath, '--input-type=module', '-e', HOLDER, file], process.env, log);
    await waitFor('the holder to take the lock', () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('held'), 30_000, 50);
    expect(lockHeld(file)).toBe(true);
    expect(lockFileOwner(file)).toBe(pid);
    expect(() => acquireLockFile(file, { held: (owner) => new Error(`held by ${owner}`) })).toThrow(`held by ${pid}`);

    await killToZombie(pid);
    expect(lockHeld(file)).toBe(false);
    expect(lockFileOwner(file)).toBeNull();
    acquireLockFile(file, { held: (owner) => new Error(`held by ${owner}`) });
    expect(lockFileOwner(file)).toBe(process.pid);
    releaseLockFile(file);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('does not take a live process that reused the recorded pid for the holder, and replaces an old pid file', () => {
    const file = path.join(tmp.dir, 'b.lock');
    // A lock file left by a dead holder whose pid now belongs to a live process (this one's parent).
    const db = new Database(file);
    db.pragma(`user_version = ${process.ppid}`);
    db.close();
    expect(isAlive(process.ppid)).toBe(true);
    expect(lockFileOwner(file)).toBeNull();
    acquireLockFile(file, { held: () => new Error('held') });
    releaseLockFile(file);
    // An older srgan's lock: a text file with a live pid.
    fs.writeFileSync(file, `${process.ppid}\n`);
    expect(lockFileOwner(file)).toBeNull();
    acquireLockFile(file, { held: () => new Error('held') });
    expect(lockFileOwner(file)).toBe(process.pid);
    releaseLockFile(file);
  });
});

describe('the daemon', () => {
  const config = () => tinyRun(photos, { checkpointEvery: 4, seed: 5 });

  it('a killed daemon left a zombie blocks neither status, start --resume nor start', async () => {
    const home = path.join(tmp.dir, 'home-zombie');
    fs.mkdirSync(home);
    const pid = await spawnUnreaped(
      [process.execPath, path.join(DIST, 'daemon/main.js'), '--config-json', JSON.stringify(config())],
      { ...process.env, SRGAN_HOME: home },
      path.join(home, 'first.log'),
    );
    daemons.push(pid);
    const first = await waitFor(
      'the daemon to train a checkpoint',
      () => {
        const st = srganJson<{ pid: number; runId: string; step: number | null }>(home, ['status']);
        return (st.step ?? 0) >= 5 ? st : null;
      },
      180_000,
    );
    expect(first.pid).toBe(pid);

    await killToZombie(pid);
    expect(srganJson<{ state: string }>(home, ['status'])).toMatchObject({ state: 'stopped', pid: null });

    const resumed = srganJson<{ pid: number; runId: string }>(home, ['start', '--resume', first.runId]);
    daemons.push(resumed.pid);
    expect(resumed.runId).toBe(first.runId);
    expect(srganJson<{ state: string }>(home, ['stop']).state).toBe('stopped');
  }, 300_000);

  it('a reused pid in daemon.json and the lock does not block start', async () => {
    const home = path.join(tmp.dir, 'home-reused');
    fs.mkdirSync(home);
    // What a daemon that died long ago leaves when its pid now belongs to someone else: this test's parent.
    const db = new Database(path.join(home, 'daemon.lock'));
    db.pragma(`user_version = ${process.ppid}`);
    db.close();
    fs.writeFileSync(
      path.join(home, 'daemon.json'),
      JSON.stringify({ pid: process.ppid, port: 1, url: 'http://127.0.0.1:1/', runId: 'gone', startedAt: 0, logFile: '' }),
    );
    expect(srganJson<{ state: string }>(home, ['status'])).toMatchObject({ state: 'stopped', pid: null });
    const cfg = path.join(home, 'run.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...config(), maxSteps: 2 }));
    const started = srganJson<{ pid: number }>(home, ['start', '--config', cfg]);
    daemons.push(started.pid);
    expect(started.pid).not.toBe(process.ppid);
    await waitFor('the run to end at maxSteps', () => hasExited(started.pid), 120_000, 100);
  }, 200_000);
});
