// The monitor page in headless Chromium over real data: a runs.db written by the real MetricsStore, preview
// strips encoded by the real encoder with pixels that say which panel and which step they are, served by the
// real `srgan monitor` (read-only). What is asserted is what a person sees: the step and pixels shown while
// scrubbing, which panel a canvas pixel comes from on either side of the wipe divider, 8×8 blocks at 8×, the
// smoothed curves, two runs on one chart, the token gone from the address bar, a pinned checkpoint.
// Screenshots of each view go to test-output/monitor/ (and the test's temp dir) for a reviewer.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsStore } from '../../src/actors/metrics-store.js';
import { encodePng, PREVIEW_FILL, PREVIEW_GAP, PREVIEW_PANELS } from '../../src/data/image/patches.js';
import type { MetricsPoint } from '../../src/protocol/messages.js';
import { launchChromium } from '../support/browser.js';
import { srgan, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/srgan.js');
const SHOTS_OUT = path.join(ROOT, 'test-output/monitor');

/** Panel k of every strip has red 40 + 50k: a canvas pixel's red says which panel it shows. */
const panelRed = (k: number) => 40 + 50 * k;
/** Green says which preview: alpha's i-th strip 10·i, beta's 200 + 5·i. */
const ALPHA_GREEN = (i: number) => 10 * i;
const BETA_GREEN = (i: number) => 200 + 5 * i;
const SIZE = 16; // panel side, source pixels

/** A strip laid out as the daemon's (4 square panels, PREVIEW_GAP apart); blue is a 1-pixel checkerboard. */
function strip(green: number): { width: number; height: number; data: Uint8Array } {
  const n = PREVIEW_PANELS.length;
  const width = n * SIZE + (n - 1) * PREVIEW_GAP;
  const data = new Uint8Array(width * SIZE * 3).fill(PREVIEW_FILL);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const i = (y * width + k * (SIZE + PREVIEW_GAP) + x) * 3;
        data[i] = panelRed(k);
        data[i + 1] = green;
        data[i + 2] = (x + y) & 1 ? 255 : 0;
      }
    }
  }
  return { width, height: SIZE, data };
}

interface RunSpec {
  id: string;
  name: string;
  steps: number;
  createdAt: number;
  previewEvery: number;
  green: (i: number) => number;
  /** Loss level, so the two runs' curves differ. */
  level: number;
}

// Runs of a few hours ago, one step a second; beta is the newer.
const NOW = Math.floor(Date.now() / 1000);
const ALPHA: RunSpec = {
  id: 'a1fa0000-run',
  name: 'alpha',
  steps: 2400,
  createdAt: NOW - 4 * 3600,
  previewEvery: 200,
  green: ALPHA_GREEN,
  level: 1,
};
const BETA: RunSpec = {
  id: 'be7a0000-run',
  name: 'beta',
  steps: 1200,
  createdAt: NOW - 2 * 3600,
  previewEvery: 300,
  green: BETA_GREEN,
  level: 2,
};

/** Writes both runs through the real MetricsStore: metrics, previews, checkpoints, events. */
async function writeRuns(file: string): Promise<void> {
  const store = new MetricsStore({ file });
  await store.start();
  // A seeded generator: the curves' noise is the same on every run of the test.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const spec of [ALPHA, BETA]) {
    store.send({
      type: 'createRun',
      run: {
        id: spec.id,
        name: spec.name,
        status: 'stopped',
        created_at: spec.createdAt,
        preset: 'espcn-x2-fast',
        backend: 'cpu',
        backend_reason: 'test',
        config: JSON.stringify({
          maxSteps: 5000,
          phases: [
            { steps: 1000, lrG: 1e-3, lrD: 1e-4 },
            { steps: null, lrG: 1e-4, lrD: 1e-4 },
          ],
        }),
        pid: process.pid,
        data_dir: '/nowhere',
      },
    });
    const points: MetricsPoint[] = [];
    for (let step = 1; step <= spec.steps; step++) {
      const values: Record<string, number> = {
        g_loss: spec.level * (0.05 + 1 / Math.sqrt(step)) * (0.6 + 0.8 * rand()),
        d_loss: 0.5 + 0.2 * rand(),
        psnr_train: 20 + Math.log(step) + rand(),
        lr_g: step <= 1000 ? 1e-3 : 1e-4,
        steps_per_sec: 5 + rand(),
        data_wait: 0.05 * rand(),
        rss_mib: 400 + step / 100,
      };
      if (step % 200 === 0) Object.assign(values, { val_gain: Math.log(step) / 4 - 1, val_psnr: 30, val_bicubic: 29 });
      points.push({ step, wallTime: (spec.createdAt + step) * 1000, values });
    }
    store.send({ type: 'metrics', runId: spec.id, points });
    for (let i = 0, step = spec.previewEvery; step <= spec.steps; i++, step += spec.previewEvery) {
      const img = strip(spec.green(i));
      const png = await encodePng(img);
      store.send({ type: 'preview', runId: spec.id, step, width: img.width, height: img.height, panels: [...PREVIEW_PANELS], png });
    }
    for (const step of [500, 1000]) {
      store.send({
        type: 'checkpoint',
        row: {
          run_id: spec.id,
          step,
          time: spec.createdAt + step,
          path: `/nowhere/${spec.name}/${step}`,
          checksum: 'x',
          kind: 'periodic',
          psnr: 30,
          gain: 0.2,
        },
      });
    }
    store.send({ type: 'event', runId: spec.id, kind: 'pause', message: 'paused from the monitor', data: { step: 700 } });
    store.send({ type: 'updateRun', id: spec.id, status: 'stopped', lastStep: spec.steps, ended: true });
  }
  store.flushNow();
  await store.stop();
}

/** `srgan monitor --port 0` on `home`; resolves with the URL it prints. */
function startMonitor(home: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'monitor', '--port', '0'], { env: { ...process.env, SRGAN_HOME: home }, stdio: 'pipe' });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`srgan monitor printed no URL in 30 s: ${out}${err}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /monitor: (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`srgan monitor exited ${code}: ${out}${err}`));
    });
  });
}

/** Scrolls `selector` to the middle of the viewport, clear of the sticky header, for the mouse to reach it. */
async function centre(page: Page, selector: string): Promise<void> {
  await page.locator(selector).evaluate((e) => e.scrollIntoView({ block: 'center' }));
}

/** RGBA of canvas pixel (x, y), in canvas (device) pixels. */
function pixel(page: Page, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([px, py]) => {
      const c = document.querySelector<HTMLCanvasElement>('#compare-canvas')!;
      return Array.from(c.getContext('2d')!.getImageData(px, py, 1, 1).data);
    },
    [x, y],
  );
}

/** The compare canvas' size in device pixels and its data-* hooks (web-monitor/monitor.js lists them). */
interface CanvasState {
  width: number;
  height: number;
  step?: string;
  stepB?: string;
  runB?: string;
  mode?: string;
  zoom?: string;
  scale?: string;
  u?: string;
  v?: string;
  divider?: string;
}

function canvasState(page: Page): Promise<CanvasState> {
  return page.evaluate(() => {
    const c = document.querySelector<HTMLCanvasElement>('#compare-canvas')!;
    return { ...c.dataset, width: c.width, height: c.height };
  });
}

/** The curves of a chart by label, through the page's documented test hook. */
function chartCurves(page: Page, id: string): Promise<Record<string, (number | null)[]>> {
  return page.evaluate((chartId) => {
    const c = (
      globalThis as unknown as { srganMonitor: { chart(id: string): { labels: string[]; data: (number | null)[][] } | null } }
    ).srganMonitor.chart(chartId);
    if (!c) return {};
    return Object.fromEntries(c.labels.map((l, i) => [l, c.data[i]]));
  }, id);
}

describe('the monitor page', () => {
  const tmp = tempDir('srgan-monitor-page-');
  const home = path.join(tmp.dir, 'home');
  const shots = path.join(tmp.dir, 'screenshots');
  let monitor: { child: ChildProcess; url: string } | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const errors: string[] = [];

  const shot = async (name: string, opts: { fullPage?: boolean; selector?: string } = {}) => {
    const file = path.join(shots, `${name}.png`);
    if (opts.selector) await page.locator(opts.selector).screenshot({ path: file });
    else {
      // From the top: the sticky header would otherwise be drawn where the page was scrolled to.
      if (opts.fullPage) await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: file, fullPage: opts.fullPage ?? false });
    }
    fs.mkdirSync(SHOTS_OUT, { recursive: true });
    fs.copyFileSync(file, path.join(SHOTS_OUT, `${name}.png`));
  };

  beforeAll(async () => {
    fs.mkdirSync(home, { recursive: true });
    fs.mkdirSync(shots, { recursive: true });
    await writeRuns(path.join(home, 'runs.db'));
    // Pinned with the CLI: the read-only page must show it pinned (pinning from the page needs a daemon,
    // see daemon.test.ts).
    const keep = srgan(home, ['checkpoint', '--keep', '1000', '--run', ALPHA.id]);
    expect(keep.status, keep.stderr).toBe(0);
    monitor = await startMonitor(home);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => errors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    monitor?.child.kill('SIGTERM');
    console.log(`monitor screenshots: ${shots} (copied to ${SHOTS_OUT})`);
  });

  it('loads the newest run read-only, and takes the token out of the address bar', async () => {
    expect(monitor!.url).toMatch(/\?token=/);
    await page.goto(monitor!.url);
    await page.waitForFunction(() => document.body.dataset.loaded === 'true' && document.body.dataset.run !== undefined);
    expect(page.url()).not.toContain('token');
    expect(await page.evaluate(() => document.body.dataset.run)).toBe(BETA.id); // newest first
    expect(await page.evaluate(() => document.body.dataset.readonly)).toBe('true');
    // Read-only: no controls, no pin buttons.
    expect(await page.locator('#controls').isHidden()).toBe(true);
    // The token survives a reload (sessionStorage), still not in the address bar.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.loaded === 'true');
    expect(page.url()).not.toContain('token');
    expect(await page.evaluate(() => document.body.dataset.auth)).toBe('ok');
  });

  it('opens a run from the runs panel; its checkpoint pinned with the CLI shows pinned', async () => {
    await page.click(`#runs-table tr[data-run-id="${ALPHA.id}"] button.link`);
    await page.waitForFunction((id) => document.body.dataset.run === id && document.body.dataset.loaded === 'true', ALPHA.id);
    await page.waitForSelector('#checkpoints-table tr[data-step="1000"]');
    expect(await page.locator('#checkpoints-table tr[data-step="1000"]').getAttribute('data-pinned')).toBe('true');
    expect(await page.locator('#checkpoints-table tr[data-step="500"]').getAttribute('data-pinned')).toBe('false');
    expect(await page.locator('#checkpoints-table .pin-btn').count()).toBe(0);
    // Every key is charted, in its group; the run's columns are in.
    await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) > 0);
    for (const id of ['loss-chart', 'psnr-chart', 'val-chart', 'lr-chart', 'rate-chart', 'wait-chart', 'memory-chart']) {
      expect(Number(await page.locator(`#${id}`).getAttribute('data-points')), id).toBeGreaterThan(0);
    }
    // Events are marks on the x axis with their text on hover.
    const mark = page.locator('#loss-chart .event-mark[data-kind="pause"]');
    expect(await mark.getAttribute('title')).toContain('paused from the monitor');
    await shot('charts', { fullPage: true });
  });

  it('scrubbing changes the shown step and the pixels; a click on a chart shows the nearest preview', async () => {
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-step') === '2400');
    const count = ALPHA.steps / ALPHA.previewEvery;
    expect(await page.locator('#scrubber').getAttribute('data-count')).toBe(String(count));
    let c = await canvasState(page);
    const y = Math.round(c.height / 2) - 20; // off the divider's grip
    const left = Math.round(c.width * 0.25);
    expect((await pixel(page, left, y)).slice(0, 2)).toEqual([panelRed(1), ALPHA_GREEN(count - 1)]);

    await page.locator('#scrubber').focus();
    await page.keyboard.press('Home');
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-step') === '200');
    expect((await pixel(page, left, y))[1]).toBe(ALPHA_GREEN(0));
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-step') === '600');
    expect((await pixel(page, left, y))[1]).toBe(ALPHA_GREEN(2));
    // The shown step is marked on every chart.
    for (const id of ['loss-chart', 'psnr-chart', 'memory-chart'])
      expect(await page.locator(`#${id}`).getAttribute('data-preview-x')).toBe('600');
    expect(await page.locator('#latest-btn').getAttribute('aria-pressed')).toBe('false');

    // A click at about step 1,900 of the loss chart shows the preview nearest to it.
    const over = page.locator('#loss-chart .u-over');
    await centre(page, '#loss-chart .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.click(box.x + box.width * (1900 / ALPHA.steps), box.y + box.height / 2);
    await page.waitForFunction(() => Number(document.querySelector('#compare-canvas')?.getAttribute('data-step')) >= 1800);
    c = await canvasState(page);
    expect(Math.abs(Number(c.step) - 1900)).toBeLessThanOrEqual(ALPHA.previewEvery);
  });

  it('the wipe divider decides which panel a pixel comes from', async () => {
    await centre(page, '#compare-canvas');
    let c = await canvasState(page);
    expect(c.mode).toBe('wipe');
    const y = Math.round(c.height / 2) - 20;
    const at = Math.round(c.width * 0.75);
    // Fit: the panel fills the canvas; A (bicubic) left of the divider, B (model output) right of it.
    expect((await pixel(page, Math.round(c.width * 0.25), y))[0]).toBe(panelRed(1));
    expect((await pixel(page, at, y))[0]).toBe(panelRed(2));
    await shot('compare-wipe', { selector: '.compare-card' });

    const box = (await page.locator('#compare-canvas').boundingBox())!;
    const divider = Number(c.divider);
    await page.mouse.move(box.x + divider, box.y + box.height / 2 - 30);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2 - 30, { steps: 6 });
    await page.mouse.up();
    c = await canvasState(page);
    expect(Number(c.divider)).toBeGreaterThan(box.width * 0.85);
    expect((await pixel(page, at, y))[0]).toBe(panelRed(1));
    await shot('compare-wipe-moved', { selector: '.compare-card' });
  });

  it('at 8× one source pixel covers an 8×8 block, and the view stays while scrubbing', async () => {
    await page.click('.zooms button[data-zoom="8"]');
    let c = await canvasState(page);
    expect([c.zoom, c.scale]).toEqual(['8', '8']);
    // Runs of equal colour along a row and a column through the panel (the checkerboard flips at every
    // source pixel): every run inside the panel is 8 canvas pixels long.
    const runs = await page.evaluate(() => {
      const cv = document.querySelector<HTMLCanvasElement>('#compare-canvas')!;
      const ctx = cv.getContext('2d')!;
      const lengths = (d: Uint8ClampedArray) => {
        const out: number[] = [];
        let run = 0;
        for (let i = 0; i < d.length / 4; i++) {
          const inPanel = d[i * 4] === 90; // panel 1 (bicubic), the A side
          if (!inPanel) {
            if (run) out.push(run);
            run = 0;
            continue;
          }
          if (run && d[i * 4 + 2] !== d[i * 4 - 2]) {
            out.push(run);
            run = 0;
          }
          run++;
        }
        if (run) out.push(run);
        return out;
      };
      const y = Math.floor(cv.height / 2) - 20;
      const x = Math.floor(cv.width / 2) - 20;
      return {
        row: lengths(ctx.getImageData(0, y, cv.width, 1).data),
        col: lengths(ctx.getImageData(x, 0, 1, cv.height).data),
      };
    });
    for (const r of [runs.row, runs.col]) {
      expect(r.length).toBeGreaterThan(8);
      expect(r.slice(1, -1).every((n) => n === 8)).toBe(true);
    }
    // Pan by dragging: the centre moves; the same view is kept on another step.
    await centre(page, '#compare-canvas');
    const box = (await page.locator('#compare-canvas').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.3 + 40, box.y + box.height * 0.3 + 24, { steps: 4 });
    await page.mouse.up();
    c = await canvasState(page);
    expect(Number(c.u)).toBeLessThan(0.5);
    expect(Number(c.v)).toBeLessThan(0.5);
    const view = { u: c.u, v: c.v, zoom: c.zoom };
    await page.locator('#scrubber').focus();
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction((s) => document.querySelector('#compare-canvas')?.getAttribute('data-step') !== s, c.step);
    c = await canvasState(page);
    expect({ u: c.u, v: c.v, zoom: c.zoom }).toEqual(view);
    await shot('compare-zoomed', { selector: '.compare-card' });
    // The wheel zooms about the cursor: one step in (16×), and the pixel under it stays the same source pixel.
    await centre(page, '#compare-canvas');
    const wbox = (await page.locator('#compare-canvas').boundingBox())!;
    const cx = Math.round(wbox.width * 0.4);
    const cy = Math.round(wbox.height * 0.4);
    const under = await pixel(page, cx, cy);
    await page.mouse.move(wbox.x + cx, wbox.y + cy);
    await page.mouse.wheel(0, -100);
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-zoom') === '16');
    expect(await pixel(page, cx, cy)).toEqual(under);
    await page.click('.zooms button[data-zoom="fit"]');
  });

  it("side by side shows A and B; side B can show another run's nearest preview", async () => {
    await page.click('input[name="compare-mode"][value="side"]', { force: true });
    let c = await canvasState(page);
    expect(c.mode).toBe('side');
    const y = Math.round(c.height / 2);
    expect((await pixel(page, Math.round(c.width * 0.25), y))[0]).toBe(panelRed(1));
    expect((await pixel(page, Math.round(c.width * 0.75), y))[0]).toBe(panelRed(2));
    await shot('compare-side-by-side', { selector: '.compare-card' });

    // Alpha at step 800; beta's previews are at 300, 600, 900 and 1,200: side B shows beta's 900.
    await page.locator('#scrubber').focus();
    await page.keyboard.press('Home');
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-step') === '800');
    await page.selectOption('#run-b', BETA.id);
    await page.waitForFunction((id) => document.querySelector('#compare-canvas')?.getAttribute('data-run-b') === id, BETA.id);
    c = await canvasState(page);
    expect([c.step, c.stepB]).toEqual(['800', '900']);
    expect((await pixel(page, Math.round(c.width * 0.75), y)).slice(0, 2)).toEqual([panelRed(2), BETA_GREEN(2)]);
    expect((await pixel(page, Math.round(c.width * 0.25), y)).slice(0, 2)).toEqual([panelRed(1), ALPHA_GREEN(3)]);
    await shot('compare-two-runs', { selector: '.compare-card' });
    await page.selectOption('#run-b', '');
    await page.click('input[name="compare-mode"][value="wipe"]', { force: true });
  });

  it('the smoothing control changes the plotted values; the raw curve stays behind', async () => {
    await page.locator('#smoothing').fill('0');
    await page.waitForFunction(() => document.body.dataset.smoothing === '0.00');
    await page.waitForTimeout(100); // one animation frame
    let curves = await chartCurves(page, 'loss-chart');
    expect(curves['g_loss']).toEqual(curves['g_loss (raw)']);
    await page.locator('#smoothing').fill('0.9');
    await page.waitForFunction(() => document.body.dataset.smoothing === '0.90');
    await page.waitForTimeout(100);
    curves = await chartCurves(page, 'loss-chart');
    const raw = curves['g_loss (raw)'].filter((v): v is number => v != null);
    const sm = curves['g_loss'].filter((v): v is number => v != null);
    expect(sm.length).toBe(raw.length);
    // Debiased: the first value is the first raw value; after it the curve is much calmer than the raw.
    expect(sm[0]).toBeCloseTo(raw[0], 12);
    const jitter = (a: number[]) => a.slice(200).reduce((s, v, i, arr) => (i ? s + Math.abs(v - arr[i - 1]) : 0), 0);
    expect(jitter(sm)).toBeLessThan(jitter(raw) / 3);
    expect(curves['g_loss']).not.toEqual(curves['g_loss (raw)']);
  });

  it('two selected runs draw two series; drag zooms in with finer columns, double-click resets', async () => {
    await page.locator(`#runs-table tr[data-run-id="${BETA.id}"] .overlay-toggle`).check();
    await page.waitForFunction(() => document.body.dataset.overlays === '1');
    await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-series')) === 4);
    const curves = await chartCurves(page, 'loss-chart');
    expect(Object.keys(curves)).toEqual(expect.arrayContaining(['alpha · g_loss', 'beta · g_loss', 'alpha · d_loss', 'beta · d_loss']));
    const over = page.locator('#loss-chart .u-over');
    await centre(page, '#loss-chart .u-over');
    await shot('runs-overlay', { fullPage: false });

    // Drag over steps ~1,000 to ~1,200: the range is asked again, at about one column per pixel.
    const before = Number(await page.locator('#loss-chart').getAttribute('data-points'));
    const box = (await over.boundingBox())!;
    const xAt = (step: number) => box.x + (box.width * step) / ALPHA.steps;
    await page.mouse.move(xAt(1000), box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(xAt(1200), box.y + box.height / 2, { steps: 6 });
    await page.mouse.up();
    await page.waitForFunction(() => document.querySelector('#loss-chart')?.getAttribute('data-zoomed') === 'true');
    await waitFor('finer columns', async () => {
      const x = (await chartCurves(page, 'loss-chart'))['step'] ?? [];
      // Every step of the range is its own column now (the run logged every step).
      return x.length > 150 && (x[x.length - 1] ?? 0) - (x[0] ?? 0) < 400;
    });
    expect(before).toBeGreaterThan(0);
    await shot('charts-zoomed', { fullPage: false });
    await over.dblclick({ position: { x: box.width / 2, y: box.height / 2 } });
    await page.waitForFunction(() => document.querySelector('#loss-chart')?.getAttribute('data-zoomed') === 'false');
  });

  it('x by wall time: the curves are placed by their unix times, and a click shows the preview of the step there', async () => {
    await page.selectOption('#x-mode', 'time');
    await page.waitForFunction(() => document.body.dataset.xMode === 'time');
    await waitFor('time on x', async () => {
      const x = (await chartCurves(page, 'loss-chart'))['time'] ?? [];
      return x.length > 0 && (x[0] ?? 0) >= ALPHA.createdAt && (x[x.length - 1] ?? 0) <= BETA.createdAt + BETA.steps;
    });
    await centre(page, '#loss-chart .u-over');
    const box = (await page.locator('#loss-chart .u-over').boundingBox())!;
    // Alpha's steps are one second apart from its start, beta's from two hours later: the left part of the
    // axis is alpha's run.
    const x = (await chartCurves(page, 'loss-chart'))['time'] as number[];
    const [t0, t1] = [x[0], x[x.length - 1]];
    const at = ALPHA.createdAt + 1000; // alpha's step 1,000
    await page.mouse.click(box.x + (box.width * (at - t0)) / (t1 - t0), box.y + box.height / 2);
    await page.waitForFunction(() => document.querySelector('#compare-canvas')?.getAttribute('data-step') === '1000');
    await page.selectOption('#x-mode', 'step');
    expect(errors).toEqual([]);
  });
});
