// Training on a data set made by `srgan prepare`: the daemon reads the manifest's patches (every patch
// once per epoch), and a damaged patch file is skipped with an event while training goes on.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { hasExited } from '../../src/util/lock-file.js';
import { listPatchFiles, listPatchesBySource } from '../../src/data/prepare/manifest.js';
import { holdOutPhotos, trainingData } from '../../src/daemon/training-data.js';
import { resolveConfig } from '../../src/config/resolve.js';

const tmp = tempDir('srgan-prepared-');
afterAll(() => process.env.KEEP_TMP || tmp.cleanup());

describe('training on a prepared data set', () => {
  it('reads the manifest and skips a damaged patch with an event', async () => {
    const photos = path.join(tmp.dir, 'photos');
    fs.mkdirSync(photos);
    for (let i = 0; i < 5; i++) {
      const w = 160,
        h = 128;
      const d = Buffer.alloc(w * h * 3);
      for (let p = 0; p < d.length; p++) d[p] = (p * (i + 2) + ((p / (w * 3)) | 0) * 5) & 255;
      await sharp(d, { raw: { width: w, height: h, channels: 3 } })
        .jpeg({ quality: 90 })
        .toFile(path.join(photos, `img${i}.jpg`));
    }
    const data = path.join(tmp.dir, 'data');
    const home = path.join(tmp.dir, 'home');
    const prep = srgan(home, [
      'prepare',
      photos,
      '--out',
      data,
      '--patch',
      '64',
      '--levels',
      '1,2',
      '--per-level',
      '2',
      '--quiet',
      '--json',
    ]);
    expect(prep.status, prep.stderr).toBe(0);
    const patches = listPatchFiles(data);
    expect(patches.length).toBeGreaterThanOrEqual(10);
    // One damaged patch file: the loader must skip it and say so.
    fs.writeFileSync(patches[0], 'not a png any more');

    const config = path.join(tmp.dir, 'tiny.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        backend: 'wasm',
        patchSize: 32,
        batchSize: 2,
        generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
        discriminator: { kind: 'patch', mid: 4 },
        previewEvery: 0,
        valEvery: 0,
        checkpointEvery: 0,
        loaderWorkers: 2,
      }),
    );
    const info = srganJson<{ pid: number; runId: string }>(home, [
      'start',
      '--data',
      data,
      '--config',
      config,
      '--max-steps',
      String(patches.length * 2),
    ]);
    try {
      await waitFor('the run to finish', () => hasExited(info.pid), 180_000, 100);
    } finally {
      if (!hasExited(info.pid)) process.kill(info.pid, 'SIGKILL');
    }
    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    try {
      const events = db.prepare('SELECT kind, message FROM events WHERE run_id = ? ORDER BY id').all(info.runId) as {
        kind: string;
        message: string;
      }[];
      expect(events.find((e) => e.kind === 'start')!.message).toContain(`on ${patches.length} prepared patches`);
      expect(events.some((e) => e.kind === 'data_error' && e.message.includes(path.basename(patches[0])))).toBe(true);
      // More steps than one epoch holds: the epochs go round, without the damaged patch.
      expect(
        events.some((e) => e.kind === 'epoch'),
        JSON.stringify(events),
      ).toBe(true);
      const last = db.prepare('SELECT max(step) FROM metrics WHERE run_id = ?').pluck().get(info.runId) as number;
      expect(last).toBe(patches.length * 2);
      const run = db.prepare('SELECT status, data_dir FROM runs WHERE id = ?').get(info.runId) as { status: string; data_dir: string };
      expect(run).toEqual({ status: 'stopped', data_dir: data });
    } finally {
      db.close();
    }
  }, 240_000);

  it('holds out whole photos for validation, never patches of photos it trains on', async () => {
    const photos = path.join(tmp.dir, 'split-photos');
    fs.mkdirSync(photos);
    for (let i = 0; i < 8; i++) {
      const w = 128 + 8 * i,
        h = 96;
      const d = Buffer.alloc(w * h * 3);
      for (let p = 0; p < d.length; p++) d[p] = (p * (i + 3) + ((p / (w * 3)) | 0) * 7) & 255;
      await sharp(d, { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(path.join(photos, `s${i}.png`));
    }
    const data = path.join(tmp.dir, 'split-data');
    const prep = srgan(path.join(tmp.dir, 'split-home'), [
      'prepare',
      photos,
      '--out',
      data,
      '--patch',
      '32',
      '--levels',
      '1,2',
      '--per-level',
      '2',
      '--quiet',
    ]);
    expect(prep.status, prep.stderr).toBe(0);
    const bySource = new Map(listPatchesBySource(data).map((p) => [p.file, p.source]));
    expect(new Set(bySource.values()).size).toBe(8);
    const lines: string[] = [];
    const cfg = resolveConfig({ dataDir: data, valEvery: 10, valImages: 3, seed: 5 });
    const split = await trainingData(cfg, path.join(tmp.dir, 'unused-demo'), (l) => lines.push(l));
    expect(split.kind).toBe('prepared');
    expect(split.val.length).toBe(3);
    const valPhotos = new Set(split.val.map((f) => bySource.get(f)));
    const trainPhotos = new Set(split.files.map((f) => bySource.get(f)));
    // At most a quarter of the 8 photos held out, and no photo on both sides.
    expect(valPhotos.size).toBeGreaterThanOrEqual(1);
    expect(valPhotos.size).toBeLessThanOrEqual(2);
    for (const p of valPhotos) expect(trainPhotos.has(p)).toBe(false);
    expect(trainPhotos.size + valPhotos.size).toBe(8);
    expect(lines.join('\n')).toMatch(/held-out photo/);
    // The split is the seed's: the same config gives the same split.
    const again = await trainingData(cfg, path.join(tmp.dir, 'unused-demo'), () => {});
    expect(again).toEqual(split);
  });

  it('falls back to single patches, and says so, with fewer than 4 photos', () => {
    const patches = [0, 0, 0, 1, 1, 2, 2].map((source, i) => ({ file: `p${i}.png`, source }));
    const lines: string[] = [];
    expect(
      holdOutPhotos(
        patches,
        2,
        () => 0.5,
        (l) => lines.push(l),
      ),
    ).toBeNull();
    expect(lines[0]).toMatch(/too few to hold one out/);
    const four = [...patches, { file: 'p7.png', source: 3 }];
    const split = holdOutPhotos(
      four,
      2,
      () => 0,
      () => {},
    )!;
    // One photo at most (a quarter of 4); all its patches leave training even when fewer are validated.
    const sourceOf = new Map(four.map((p) => [p.file, p.source]));
    const held = new Set(split.val.map((f) => sourceOf.get(f)));
    expect(held.size).toBe(1);
    expect(split.files.some((f) => held.has(sourceOf.get(f)))).toBe(false);
    expect(split.files.length + four.filter((p) => held.has(p.source)).length).toBe(8);
  });
});
