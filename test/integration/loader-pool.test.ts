// The loader pool on real piscina worker threads, feeding a real shared ring.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LoaderPool, listImages } from '../../src/actors/loader-pool.js';
import { SharedRing } from '../../src/protocol/ring.js';
import { decodeFrame, type PatchFrame } from '../../src/protocol/codec.js';
import { DIST, tempDir } from '../support/tmp.js';

const LOADER_WORKER = path.join(DIST, 'actors/loader-worker.js');
import { waitFor } from '../support/cli.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');

async function makeImage(file: string, w: number, h: number, seed: number): Promise<void> {
  const data = Buffer.alloc(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17 + ((i / 3 / w) | 0) * 7) & 255;
  await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

async function readFrames(ring: SharedRing, n: number): Promise<PatchFrame[]> {
  const frames: PatchFrame[] = [];
  while (frames.length < n) {
    const bytes = await ring.readAsync(20_000);
    if (!bytes) throw new Error(`ring stayed empty after ${frames.length} frames`);
    const f = decodeFrame(bytes);
    // Copy out before release: the view dies with it.
    frames.push({ ...f, hr: { ...f.hr, data: f.hr.data.slice() }, lr: { ...f.lr, data: f.lr.data.slice() } });
    ring.release();
  }
  return frames;
}

describe('LoaderPool', () => {
  let tmp: ReturnType<typeof tempDir>;
  let ring: SharedRing;
  let pool: LoaderPool | null = null;
  beforeEach(() => {
    tmp = tempDir();
    ring = SharedRing.create(1 << 20);
  });
  afterEach(async () => {
    ring.close();
    await pool?.stop();
    pool = null;
    tmp.cleanup();
  });

  it('lists images recursively, sorted, by extension (any case)', async () => {
    fs.mkdirSync(path.join(tmp.dir, 'b/c'), { recursive: true });
    for (const f of ['b/c/z.PNG', 'a.jpg', 'b/y.webp', 'notes.txt', 'b/c/x.JPEG']) fs.writeFileSync(path.join(tmp.dir, f), '');
    expect(listImages(tmp.dir).map((f) => path.relative(tmp.dir, f))).toEqual(['a.jpg', 'b/c/x.JPEG', 'b/c/z.PNG', 'b/y.webp']);
  });

  it('fills the ring with HR/LR patch pairs; bad and too-small images are skipped with events', async () => {
    for (let i = 0; i < 4; i++) await makeImage(path.join(tmp.dir, `img${i}.png`), 96 + i * 8, 80, i);
    await makeImage(path.join(tmp.dir, 'tiny.png'), 20, 20, 9);
    fs.writeFileSync(path.join(tmp.dir, 'corrupt.png'), Buffer.from('this is not a png at all'));
    const events: { kind: string; message: string }[] = [];
    pool = new LoaderPool({
      ring: ring.buffer,
      files: listImages(tmp.dir),
      workers: 2,
      seed: 5,
      patchSize: 32,
      scale: 2,
      lrFilter: 'bilinear-aa',
      patchesPerImage: 3,
      workerFile: LOADER_WORKER,
      onEvent: (kind, message) => events.push({ kind, message }),
    });
    await pool.start();
    const frames = await readFrames(ring, 40);
    for (const f of frames) {
      expect(f.hr).toMatchObject({ width: 32, height: 32, channels: 3 });
      expect(f.lr).toMatchObject({ width: 16, height: 16, channels: 3 });
      expect(f.hr.data.length).toBe(32 * 32 * 3);
    }
    // Every patch of an image visit is distinct (random crops), and the images cycle through epochs.
    expect(new Set(frames.map((f) => Buffer.from(f.hr.data).toString('base64'))).size).toBeGreaterThan(30);
    await waitFor('data_error events', () => events.filter((e) => e.kind === 'data_error').length >= 2, 10_000);
    const errors = events.filter((e) => e.kind === 'data_error').map((e) => e.message);
    expect(errors.some((m) => m.includes('corrupt.png'))).toBe(true);
    expect(errors.some((m) => m.includes('tiny.png') && m.includes('smaller than a 32 px patch'))).toBe(true);
    expect(events.some((e) => e.kind === 'epoch')).toBe(true);
  });

  it('a worker that dies is replaced and its images handed out again, without stopping the flow', async () => {
    await makeImage(path.join(tmp.dir, 'a.png'), 64, 64, 1);
    await makeImage(path.join(tmp.dir, 'crash-once.png'), 64, 64, 2);
    const events: { kind: string; message: string }[] = [];
    pool = new LoaderPool({
      ring: ring.buffer,
      files: listImages(tmp.dir),
      workers: 1,
      seed: 1,
      patchSize: 32,
      scale: 2,
      lrFilter: 'bilinear-aa',
      patchesPerImage: 2,
      imagesPerTask: 1,
      workerFile: path.join(FIXTURES, 'crashing-loader.mjs'),
      onEvent: (kind, message) => events.push({ kind, message }),
    });
    await pool.start();
    const frames = await readFrames(ring, 12);
    expect(events.filter((e) => e.kind === 'loader_crash')).toHaveLength(1);
    expect(fs.existsSync(path.join(tmp.dir, 'crash-once.png.crashed'))).toBe(true);
    // Both images still produce patches after the crash.
    expect(new Set(frames.map((f) => f.index))).toEqual(new Set([0, 1]));
    expect(pool.status).toBe('Running');
  });

  it('fails (for its supervisor) when its worker entry cannot run', async () => {
    await makeImage(path.join(tmp.dir, 'a.png'), 64, 64, 1);
    const missing = new LoaderPool({ ring: ring.buffer, files: listImages(tmp.dir), workers: 1, seed: 1, patchSize: 32, scale: 2,
      lrFilter: 'bilinear-aa', patchesPerImage: 1, workerFile: path.join(tmp.dir, 'nope.js') });
    await expect(missing.start()).rejects.toThrow(/loader worker entry .*nope\.js does not exist/);
  });

  it('stops its workers when the ring is closed', async () => {
    await makeImage(path.join(tmp.dir, 'a.png'), 64, 64, 1);
    pool = new LoaderPool({ ring: ring.buffer, files: listImages(tmp.dir), workers: 1, seed: 1, patchSize: 32, scale: 2,
      lrFilter: 'bilinear-aa', patchesPerImage: 1, workerFile: LOADER_WORKER });
    await pool.start();
    await readFrames(ring, 2);
    ring.close();
    await pool.stop();
    expect(pool.status).toBe('Stopped');
  });
});
