// `srgan status` and the monitor page on a validation against bicubic, better and worse: the real CLI
// (built dist/) and the real control server and page, with the daemon's side played by a stub
// DaemonControl whose status and history this test sets (the history also written to runs.db by the real
// MetricsStore, where the page reads its charts). A real daemon cannot be made worse or
// better than bicubic on demand; daemon.test.ts checks the same output from real training.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Database from 'better-sqlite3';
import { ControlServer, type DaemonControl } from '../../src/actors/control-server.js';
import { MetricsStore } from '../../src/actors/metrics-store.js';
import { openDb } from '../../src/store/db.js';
import { MonitorData } from '../../src/store/monitor-data.js';
import { acquireLock, ensureToken, homePaths, releaseLock, writeDaemonInfo } from '../../src/store/home.js';
import type { DaemonStatus, MetricsPoint, ValidationStatus } from '../../src/protocol/messages.js';
import { SrganError } from '../../src/util/errors.js';
import { tempDir } from '../support/tmp.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/srgan.js');

const tmp = tempDir('srgan-status-cli-');
const paths = homePaths(path.join(tmp.dir, 'home'));

/** The CLI as a child process. Not spawnSync: the control server answering it runs in this process. */
function srganAsync(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, SRGAN_HOME: paths.root }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ status: err ? (((err as { code?: unknown }).code as number) ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const worse: ValidationStatus = { step: 1500, psnr: 31.2, bicubic: 32.1, gain: 31.2 - 32.1, best: { step: 500, gain: 0.125 } };
const better: ValidationStatus = { step: 2000, psnr: 32.5, bicubic: 32.1, gain: 32.5 - 32.1, best: { step: 2000, gain: 32.5 - 32.1 } };

let validation: ValidationStatus | null = worse;
let valEvery = 500;
let stepsPerSec = 2;
let maxSteps: number | null = null;
let pauseReason: string | null = null;

const status = (): DaemonStatus => ({
  state: pauseReason ? 'paused' : 'training',
  runId: RUN_ID,
  pid: process.pid,
  url: server.url,
  backend: 'wasm',
  backendReason: 'stub',
  step: 1500,
  dSteps: 1500,
  startedAt: Date.now(),
  stepsPerSec,
  patchesPerSec: 16,
  dataWaitFraction: 0,
  ringFrames: 3,
  epoch: 1,
  tensors: 100,
  losses: { g_loss: 0.01, lr_g: 1e-3 },
  lastCheckpoint: null,
  pauseReason,
  validation,
  preset: 'espcn-x2-fast',
  config: { valEvery, maxSteps },
});

// Validation every 500 steps among the losses, as the trainer logs it.
const history: MetricsPoint[] = [];
for (let step = 1; step <= 1500; step++) {
  const values: Record<string, number> = { g_loss: 0.01, psnr_train: 25 };
  if (step % 500 === 0)
    Object.assign(values, {
      val_psnr: 31,
      val_bicubic: 32,
      val_gain: step === 500 ? 0.125 : step === 1000 ? -0.5 : worse.gain,
      val_gain_mix: -1,
    });
  history.push({ step, wallTime: 1_765_000_000_000 + step, values });
}

const control: DaemonControl = {
  status,
  pause: () => 'paused',
  resume: () => 'training',
  stop: () => 'stopping',
  checkpoint: () => Promise.reject(new SrganError('SRGAN_ERR_BAD_STATE', 'stub')),
  history: (limit) => history.slice(-limit),
  latestPreview: () => null,
};

const RUN_ID = '20261205-120000-stat';
let server: ControlServer;
let reader: Database.Database | null = null;

beforeAll(async () => {
  // The page reads its charts from runs.db over the monitor API, as from a daemon's: the same history,
  // written by the real MetricsStore and read by the real MonitorData.
  fs.mkdirSync(paths.root, { recursive: true });
  const store = new MetricsStore({ file: paths.db });
  await store.start();
  store.send({
    type: 'createRun',
    run: {
      id: RUN_ID,
      name: 'stat',
      status: 'training',
      created_at: 1_765_000_000,
      preset: 'espcn-x2-fast',
      backend: 'wasm',
      backend_reason: 'stub',
      config: JSON.stringify({ valEvery, maxSteps }),
      pid: process.pid,
      data_dir: tmp.dir,
    },
  });
  store.send({ type: 'metrics', runId: RUN_ID, points: history });
  store.flushNow();
  await store.stop();
  reader = openDb(paths.db, { readonly: true });
  server = new ControlServer({
    port: 0,
    token: ensureToken(paths),
    control,
    monitor: { data: new MonitorData(reader), liveRunId: () => RUN_ID },
  });
  await server.start();
  // What `srgan status` looks for: a live daemon holding the lock and its daemon.json.
  acquireLock(paths);
  writeDaemonInfo(paths, {
    pid: process.pid,
    port: server.port,
    url: server.url,
    runId: RUN_ID,
    startedAt: Date.now(),
    logFile: '',
  });
});

afterAll(async () => {
  releaseLock(paths);
  await server.stop();
  reader?.close();
  tmp.cleanup();
});

describe('srgan status: validation against bicubic', () => {
  it('says plainly when the model is worse than bicubic, with the best gain and its step', async () => {
    validation = worse;
    const text = await srganAsync(['status']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain('validation: 31.20 dB vs bicubic 32.10 dB: −0.90 dB (worse than bicubic) at step 1500\n');
    expect(text.stdout).toContain('best gain:  +0.13 dB at step 500\n');
    const json = JSON.parse((await srganAsync(['status', '--json'])).stdout) as DaemonStatus;
    expect(json.validation).toEqual(worse);
  });

  it('a pause the daemon made by itself says why, and that it goes on by itself', async () => {
    pauseReason = 'the disk is nearly full: 12.0 MiB free for /home/u/.srgan (minFreeMiB 256)';
    try {
      const text = await srganAsync(['status']);
      expect(text.stdout).toContain(
        'state:    paused (by the daemon: the disk is nearly full: 12.0 MiB free for /home/u/.srgan (minFreeMiB 256); it goes on by itself once that has passed)\n',
      );
      expect(JSON.parse((await srganAsync(['status', '--json'])).stdout)).toMatchObject({ state: 'paused', pauseReason });
    } finally {
      pauseReason = null;
    }
    expect((await srganAsync(['status'])).stdout).toContain('state:    training\n');
  });

  it('better than bicubic; none yet; off', async () => {
    validation = better;
    const text = await srganAsync(['status']);
    expect(text.stdout).toContain('validation: 32.50 dB vs bicubic 32.10 dB: +0.40 dB (better than bicubic) at step 2000\n');
    expect(text.stdout).toContain('best gain:  +0.40 dB at step 2000\n');
    expect(text.stdout).not.toContain('worse');

    validation = null;
    expect((await srganAsync(['status'])).stdout).toContain('validation: none yet (every 500 steps)\n');
    valEvery = 0;
    expect((await srganAsync(['status'])).stdout).toContain('validation: off (valEvery 0)\n');
    expect(JSON.parse((await srganAsync(['status', '--json'])).stdout).validation).toBeNull();
    valEvery = 500;
  });
});

describe('the monitor page: validation gain', () => {
  it('draws the gain curve and shows the latest gain, flagged below bicubic when negative', async () => {
    validation = worse;
    let browser: Browser | null = null;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      // Three validations in the history: three points on the gain chart, among 1500 logged steps (which
      // the server gives in about one column per pixel of the chart).
      await page.waitForFunction(() => document.querySelector('#val-chart')?.getAttribute('data-points') === '3', null, {
        timeout: 30_000,
      });
      const lossPoints = Number(await page.locator('#loss-chart').getAttribute('data-points'));
      expect(lossPoints).toBeGreaterThan(200);
      expect(lossPoints).toBeLessThanOrEqual(1500);
      expect(await page.locator('#val-chart canvas').count()).toBeGreaterThan(0);
      await page.waitForFunction(() => document.querySelector('#val-gain')?.getAttribute('data-val') === 'below', null, {
        timeout: 30_000,
      });
      expect(await page.locator('#val-gain').textContent()).toBe('−0.90 dB · below bicubic');
      expect(await page.locator('#val-latest').getAttribute('data-val')).toBe('below');
      expect(await page.locator('#val-latest').textContent()).toBe(
        'latest −0.90 dB at step 1,500 (31.20 dB vs bicubic 32.10 dB): worse than bicubic · best +0.13 dB at step 500',
      );
      // The legend reads the latest point of each gain series (logged 1 step in 500).
      expect(await page.locator('#val-chart .u-legend').textContent()).toContain('−0.90 dB');
      await page.screenshot({ path: path.join(tmp.dir, 'monitor-val.png') });

      validation = better; // the page polls status every 2 s
      await page.waitForFunction(() => document.querySelector('#val-gain')?.getAttribute('data-val') === 'above', null, {
        timeout: 30_000,
      });
      expect(await page.locator('#val-gain').textContent()).toBe('+0.40 dB');
      expect(await page.locator('#val-latest').textContent()).toMatch(
        /^latest \+0\.40 dB at step 2,000 \(32\.50 dB vs bicubic 32\.10 dB\): above bicubic/,
      );
      expect(errors).toEqual([]);
    } finally {
      await browser?.close();
    }
  });
});

describe('srgan status: the training rate', () => {
  it('reads at any speed: steps per second, or time per step for a run on a CPU that takes minutes a step', async () => {
    for (const [rate, text] of [
      [2, '(2.00 G steps/s)'],
      [37.21, '(37.2 G steps/s)'],
      [1 / 30, '(30 s per G step)'],
      [1 / 290, '(4.8 min per G step)'],
      [0, '(no G step finished yet)'],
    ] as const) {
      stepsPerSec = rate;
      expect((await srganAsync(['status'])).stdout).toContain(`step:     1500 G, 1500 D  ${text}, epoch 1\n`);
    }
    stepsPerSec = 2;
  });

  it('with maxSteps, how long the rest takes at this rate (a CPU run of a GPU schedule says so in years)', async () => {
    expect((await srganAsync(['status'])).stdout).not.toContain('to go:');
    maxSteps = 400_000;
    stepsPerSec = 1 / 330;
    expect((await srganAsync(['status'])).stdout).toContain('to go:    398500 G steps to maxSteps 400000, ~4.2 years at this rate\n');
    maxSteps = 1_560;
    stepsPerSec = 2;
    expect((await srganAsync(['status'])).stdout).toContain('to go:    60 G steps to maxSteps 1560, ~30 s at this rate\n');
    maxSteps = null;
  });
});
