// SRGAN_HOME on a small tmpfs, filled while the daemon trains (docs/reliability.md, "A locked or full
// database"): below minFreeMiB training pauses, with the reason in `srgan status`, and goes on once
// space is freed; on a disk filled to the last byte (minFreeMiB 0) writes fail, training pauses until
// they work again, and in the end runs.db passes integrity_check with every step's metrics once and
// every checkpoint verifies. Mounting needs root (CI runs as root); elsewhere the test says why it skips.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { hasExited } from '../../src/util/lock-file.js';
import { launchChromium } from '../support/browser.js';
import { checkpointFolders, verifyCheckpoint } from '../../src/models/train/checkpoint.js';
import { DIST } from '../support/tmp.js';

const tmp = tempDir('srgan-diskfull-');
const photos = path.join(tmp.dir, 'photos');
const mounts: string[] = [];
const pids: number[] = [];
let cannotMount: string | null = null;

/** A fresh tmpfs of `mib` MiB at `dir`; null when this machine may not mount (not root). */
function mountTmpfs(dir: string, mib: number): string | null {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return (r.stderr || String(r.error)).trim();
  mounts.push(dir);
  return null;
}

beforeAll(async () => {
  await writePhotos(photos, 6, 80, 72);
  cannotMount = mountTmpfs(path.join(tmp.dir, 'probe'), 1);
});
afterAll(() => {
  for (const pid of pids) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  tmp.cleanup();
});

interface Status {
  state: string;
  step: number;
  pauseReason: string | null;
}

function startOn(home: string, extra: Record<string, unknown>): { pid: number; runId: string } {
  const cfg = path.join(tmp.dir, `${path.basename(home)}.json`); // off the tmpfs
  fs.writeFileSync(cfg, JSON.stringify(tinyRun(photos, { previewEvery: 10, checkpointEvery: 20, checkpointKeep: 2, seed: 8, ...extra })));
  const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', cfg]);
  pids.push(info.pid);
  return info;
}

/** Fills the file system of `dir` up to `leaveMiB` free (0: until it refuses another byte). */
function fill(dir: string, leaveMiB: number): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) {
      const st = fs.statfsSync(dir);
      const free = st.bavail * st.bsize;
      if (free <= leaveMiB * 2 ** 20) break;
      const n = Math.min(chunk.length, free - leaveMiB * 2 ** 20);
      fs.writeSync(fd, chunk, 0, Math.max(1, n));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** The run's database and checkpoints are whole: integrity_check, one metrics row per step, checkpoints verify. */
function expectIntact(home: string, runId: string): void {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const last = db.prepare('SELECT last_step FROM runs WHERE id = ?').pluck().get(runId) as number;
    const steps = db.prepare("SELECT step FROM metrics WHERE run_id = ? AND key = 'g_loss' ORDER BY step").pluck().all(runId) as number[];
    expect(steps).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  } finally {
    db.close();
  }
  const dir = path.join(home, 'checkpoints', runId);
  const folders = checkpointFolders(dir);
  expect(folders.length).toBeGreaterThan(0);
  for (const f of folders) expect(() => verifyCheckpoint(f.dir)).not.toThrow();
  expect(fs.readdirSync(dir).filter((d) => !/^step-\d+$/.test(d))).toEqual([]); // no half-written folder left
}

describe('a full disk', () => {
  it('below minFreeMiB training pauses with the reason, and goes on once space is freed', async (ctx) => {
    if (cannotMount) {
      console.log(`skipped: cannot mount a tmpfs here (${cannotMount})`);
      return ctx.skip();
    }
    const home = path.join(tmp.dir, 'threshold');
    expect(mountTmpfs(home, 48)).toBeNull();
    const info = startOn(home, { minFreeMiB: 16 });
    const status = () => srganJson<Status>(home, ['status']);
    await waitFor('training', () => status().step >= 10, 120_000);
    const filler = fill(home, 8);
    const paused = await waitFor(
      'a pause for the disk',
      () => {
        const s = status();
        return s.state === 'paused' && s.pauseReason ? s : null;
      },
      20_000,
      200,
    );
    expect(paused.pauseReason).toMatch(/^the disk is nearly full: \d+\.\d MiB free for .* \(minFreeMiB 16\)$/);
    expect(srgan(home, ['status']).stdout).toMatch(
      /^state: {4}paused \(by the daemon: the disk is nearly full: .*; it goes on by itself once that has passed\)$/m,
    );
    const frozen = status().step;
    // The monitor says why, on its status line and its state badge.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(srganJson<{ url: string }>(home, ['status']).url);
      await page.waitForFunction(() => document.getElementById('status-line')?.textContent?.includes('paused by the daemon'), null, {
        timeout: 20_000,
      });
      expect(await page.textContent('#status-line')).toMatch(
        /training paused by the daemon: the disk is nearly full: .*minFreeMiB 16\); it goes on by itself/,
      );
      expect(await page.getAttribute('#state-badge', 'title')).toMatch(/^paused by the daemon: the disk is nearly full/);
      expect(await page.textContent('#state-badge')).toBe('paused');
    } finally {
      await browser.close();
    }
    expect(status().step).toBe(frozen);
    fs.rmSync(filler);
    await waitFor(
      'training again',
      () => {
        const s = status();
        return s.state === 'training' && s.step > frozen + 10 && s.pauseReason === null;
      },
      30_000,
      200,
    );
    expect(srganJson<{ state: string }>(home, ['stop']).state).toBe('stopped');
    expectIntact(home, info.runId);
  }, 240_000);

  it('filled to the last byte, writes fail, training pauses until they work again, and nothing is corrupt or lost', async (ctx) => {
    if (cannotMount) {
      console.log(`skipped: cannot mount a tmpfs here (${cannotMount})`);
      return ctx.skip();
    }
    const home = path.join(tmp.dir, 'full');
    expect(mountTmpfs(home, 48)).toBeNull();
    const info = startOn(home, { minFreeMiB: 0 });
    const status = () => srganJson<Status>(home, ['status']);
    await waitFor('training', () => status().step >= 10, 120_000);
    const filler = fill(home, 0);
    const paused = await waitFor(
      'a pause for runs.db',
      () => {
        const s = status();
        return s.state === 'paused' && s.pauseReason ? s : null;
      },
      30_000,
      200,
    );
    expect(paused.pauseReason).toMatch(/^runs\.db cannot be written \(SQLITE_(FULL|IOERR)/);
    fs.rmSync(filler);
    await waitFor(
      'training again',
      () => {
        const s = status();
        return s.state === 'training' && s.step > paused.step + 10 && s.pauseReason === null;
      },
      30_000,
      200,
    );
    expect(srganJson<{ state: string }>(home, ['stop']).state).toBe('stopped');
    expectIntact(home, info.runId);
  }, 240_000);

  it('srgan prepare stops cleanly on a full disk and, with room again, finishes the same data set as an uninterrupted run', async (ctx) => {
    if (cannotMount) {
      console.log(`skipped: cannot mount a tmpfs here (${cannotMount})`);
      return ctx.skip();
    }
    const src = path.join(tmp.dir, 'big-photos');
    await writePhotos(src, 8, 320, 256);
    const bin = path.join(DIST, '../bin/srgan.js');
    const prepare = (out: string) =>
      spawnSync(
        process.execPath,
        [bin, 'prepare', src, '--out', out, '--patch', '64', '--levels', '1', '--per-level', '8', '--png-level', '0', '--json'],
        {
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
    const small = path.join(tmp.dir, 'small');
    expect(mountTmpfs(small, 1)).toBeNull(); // room for a few photos' patches, not for all
    const out = path.join(small, 'data');
    const full = prepare(out);
    expect(full.status).not.toBe(0);
    expect(full.stderr).toMatch(/SRGAN_ERR_DATA: cannot write patch .*ENOSPC|SRGAN_ERR_DATA: .*(database or disk is full|ENOSPC)/);
    const manifest = new Database(path.join(out, 'manifest.sqlite'), { readonly: true });
    const committed = manifest.prepare('SELECT count(*) FROM sources').pluck().get() as number;
    expect(manifest.pragma('integrity_check', { simple: true })).toBe('ok');
    manifest.close();
    expect(committed).toBeLessThan(8);

    expect(spawnSync('mount', ['-o', 'remount,size=64m', small]).status).toBe(0);
    const resumed = prepare(out);
    expect(resumed.status, resumed.stderr).toBe(0);
    const whole = prepare(path.join(tmp.dir, 'whole'));
    expect(whole.status, whole.stderr).toBe(0);
    const listing = (dir: string) => {
      const db = new Database(path.join(dir, 'manifest.sqlite'), { readonly: true });
      try {
        return db.prepare('SELECT id, level, x, y, size FROM patches ORDER BY id').all();
      } finally {
        db.close();
      }
    };
    expect(listing(out)).toEqual(listing(path.join(tmp.dir, 'whole')));
    const files = (dir: string) =>
      fs
        .readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.png'))
        .sort();
    expect(files(out)).toEqual(files(path.join(tmp.dir, 'whole')));
  }, 240_000);
});
