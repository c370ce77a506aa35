// Training on a data set made by `srgan prepare`: the daemon reads the manifest's patches (every patch
// once per epoch), and a damaged patch file is skipped with an event while training goes on.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { isAlive } from '../../src/daemon/home.js';
import { listPatchFiles } from '../../src/data/manifest.js';

const tmp = tempDir('srgan-prepared-');
afterAll(() => process.env.KEEP_TMP || tmp.cleanup());

describe('training on a prepared data set', () => {
  it('reads the manifest and skips a damaged patch with an event', async () => {
    const photos = path.join(tmp.dir, 'photos');
    fs.mkdirSync(photos);
    for (let i = 0; i < 5; i++) {
      const w = 160, h = 128;
      const d = Buffer.alloc(w * h * 3);
      for (let p = 0; p < d.length; p++) d[p] = (p * (i + 2) + ((p / (w * 3)) | 0) * 5) & 255;
      await sharp(d, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(path.join(photos, `img${i}.jpg`));
    }
    const data = path.join(tmp.dir, 'data');
    const home = path.join(tmp.dir, 'home');
    const prep = srgan(home, ['prepare', photos, '--out', data, '--patch', '64', '--levels', '1,2', '--per-level', '2', '--quiet', '--json']);
    expect(prep.status, prep.stderr).toBe(0);
    const patches = listPatchFiles(data);
    expect(patches.length).toBeGreaterThanOrEqual(10);
    // One damaged patch file: the loader must skip it and say so.
    fs.writeFileSync(patches[0]!, 'not a png any more');

    const config = path.join(tmp.dir, 'tiny.json');
    fs.writeFileSync(config, JSON.stringify({
      backend: 'wasm', patchSize: 32, batchSize: 2, generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
      discriminator: { kind: 'patch', mid: 4 }, previewEvery: 0, valEvery: 0, checkpointEvery: 0, loaderWorkers: 2,
    }));
    const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--data', data, '--config', config, '--max-steps', String(patches.length * 2)]);
    try {
      await waitFor('the run to finish', () => !isAlive(info.pid), 180_000, 100);
    } finally {
      if (isAlive(info.pid)) process.kill(info.pid, 'SIGKILL');
    }
    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    try {
      const events = db.prepare('SELECT kind, message FROM events WHERE run_id = ? ORDER BY id').all(info.runId) as { kind: string; message: string }[];
      expect(events.find((e) => e.kind === 'start')!.message).toContain(`on ${patches.length} prepared patches`);
      expect(events.some((e) => e.kind === 'data_error' && e.message.includes(path.basename(patches[0]!)))).toBe(true);
      // More steps than one epoch holds: the epochs go round, without the damaged patch.
      expect(events.some((e) => e.kind === 'epoch'), JSON.stringify(events)).toBe(true);
      const last = db.prepare('SELECT max(step) FROM metrics WHERE run_id = ?').pluck().get(info.runId) as number;
      expect(last).toBe(patches.length * 2);
      const run = db.prepare('SELECT status, data_dir FROM runs WHERE id = ?').get(info.runId) as { status: string; data_dir: string };
      expect(run).toEqual({ status: 'stopped', data_dir: data });
    } finally {
      db.close();
    }
  }, 240_000);
});
