// The monitor left open while its daemon goes away and comes back (docs/monitor.md): the page says the
// daemon is gone, keeps what it showed, and when the run is resumed on the same port it reconnects by
// itself and follows the resumed run's new steps. Real daemon, real Chromium.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { hasExited } from '../../src/util/lock-file.js';
import { launchChromium } from '../support/browser.js';
import { srgan, srganJson } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { writePhotos } from '../support/photos.js';

const tmp = tempDir('srgan-reconnect-');
const home = path.join(tmp.dir, 'home');
const photos = path.join(tmp.dir, 'photos');
const pids: number[] = [];
let browser: Browser | null = null;

/** A port that was free a moment ago, so both daemons can be asked for it. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  await writePhotos(photos, 4, 96, 80);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const pid of pids) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

describe('the monitor across a stop and a resume', () => {
  it('shows the daemon gone, then reconnects by itself to the resumed run and follows its steps', async () => {
    const port = await freePort();
    const config = path.join(tmp.dir, 'run.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        backend: 'wasm',
        dataDir: photos,
        patchSize: 32,
        batchSize: 2,
        generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
        previewEvery: 5,
        checkpointEvery: 10,
        valEvery: 0,
      }),
    );
    const first = srganJson<{ pid: number; url: string; runId: string }>(home, ['start', '--config', config, '--port', String(port)]);
    pids.push(first.pid);
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(first.url);
    await page.waitForFunction((id) => document.body.dataset.run === id && document.body.dataset.conn === 'connected', first.runId, {
      timeout: 60_000,
    });
    await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points') ?? 0) > 0, null, {
      timeout: 60_000,
    });

    const stop = srgan(home, ['stop']);
    expect(stop.status, stop.stderr).toBe(0);
    await page.waitForFunction(() => !document.querySelector('#gone-banner')?.hasAttribute('hidden'), null, { timeout: 30_000 });
    expect(await page.locator('#gone-banner').isVisible()).toBe(true);
    // What it showed stays on the page.
    expect(Number(await page.locator('#loss-chart').getAttribute('data-points'))).toBeGreaterThan(0);
    const stoppedAt = srganJson<{ runs: { id: string; last_step: number }[] }>(home, ['runs']).runs[0].last_step;
    await page.screenshot({ path: path.join(tmp.dir, 'gone.png') });

    const again = srganJson<{ pid: number; runId: string }>(home, ['start', '--resume', first.runId, '--port', String(port)]);
    pids.push(again.pid);
    expect(again.runId).toBe(first.runId);
    await page.waitForFunction(
      () => document.body.dataset.conn === 'connected' && document.querySelector('#gone-banner')?.hasAttribute('hidden') === true,
      null,
      { timeout: 60_000 },
    );
    // It follows the resumed run: the step shown passes where the first daemon stopped.
    await page.waitForFunction((at) => Number((document.querySelector('#step')?.textContent ?? '').replace(/[^\d]/g, '')) > at, stoppedAt, {
      timeout: 60_000,
    });
    expect(await page.evaluate(() => document.body.dataset.run)).toBe(first.runId);
    expect(errors).toEqual([]);
    srgan(home, ['stop']);
  }, 240_000);
});
