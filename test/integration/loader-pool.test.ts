// The loader pool on real piscina worker threads, feeding a real shared ring.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LoaderPool } from '../../src/actors/loader-pool.js';
import { listImages } from '../../src/data/image/files.js';
import { SharedRing } from '../../src/protocol/ring.js';
import { decodeRingFrame, type PatchFrame, type SkipFrame } from '../../src/protocol/codec.js';
import { Sequencer } from '../../src/trainer/sequencer.js';
import { DIST, tempDir } from '../support/tmp.js';
import { downscale } from '../../src/data/image/degrade.js';

const LOADER_WORKER = path.join(DIST, 'actors/loader-worker.js');
import { waitFor } from '../support/cli.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');

async function makeImage(file: string, w: number, h: number, seed: number): Promise<void> {
  const data = Buffer.alloc(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17 + ((i / 3 / w) | 0) * 7) & 255;
  await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
}

/** The next `n` patch frames in ring order (skip frames are collected in `skips`). */
async function readFrames(ring: SharedRing, n: number, skips: SkipFrame[] = []): Promise<PatchFrame[]> {
  const frames: PatchFrame[] = [];
  while (frames.length < n) {
    const bytes = await ring.readAsync(20_000);
    if (!bytes) throw new Error(`ring stayed empty after ${frames.length} frames`);
    const f = decodeRingFrame(bytes);
    // Copy out before release: the view dies with it.
    if (f.type === 'skip') skips.push(f);
    else frames.push({ ...f, hr: { ...f.hr, data: f.hr.data.slice() }, lr: { ...f.lr, data: f.lr.data.slice() } });
    ring.release();
  }
  return frames;
}

/** The next `n` patches in sequence order, as the trainer takes them. */
async function readInSequence(ring: SharedRing, n: number, sequencer: Sequencer): Promise<PatchFrame[]> {
  const out: PatchFrame[] = [];
  while (out.length < n) {
    const early = sequencer.take();
    if (early) {
      out.push(early);
      continue;
    }
    const bytes = await ring.readAsync(20_000);
    if (!bytes) throw new Error(`ring stayed empty after ${out.length} patches (next seq ${sequencer.next})`);
    const f = sequencer.offer(decodeRingFrame(bytes));
    if (f) out.push({ ...f, hr: { ...f.hr, data: f.hr.data.slice() }, lr: { ...f.lr, data: f.lr.data.slice() } });
    ring.release();
  }
  return out;
}

const digest = (frames: PatchFrame[]): string[] =>
  frames.map((f) => `${f.seq}:${f.index}:${Buffer.from(f.hr.data).toString('base64').slice(0, 64)}`);

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
  });

  it('makes each LR from its HR with a synthesis of the mix: every frame equals downscale(hr, filter) for a filter of the mix, several filters appear', async () => {
    for (let i = 0; i < 3; i++) await makeImage(path.join(tmp.dir, `img${i}.png`), 96, 80, i);
    const mix = ['bicubic-aa', 'area', 'lanczos3'] as const;
    pool = new LoaderPool({
      ring: ring.buffer,
      files: listImages(tmp.dir),
      workers: 1,
      seed: 3,
      patchSize: 32,
      scale: 2,
      lrFilter: { 'bicubic-aa': 1, area: 1, lanczos3: 1 },
      lrBlur: null,
      patchesPerImage: 8,
      workerFile: LOADER_WORKER,
    });
    await pool.start();
    const frames = await readFrames(ring, 24);
    const used = new Set<string>();
    for (const f of frames) {
      const hr = { width: 32, height: 32, data: f.hr.data };
      const matches = mix.filter((m) => Buffer.from(downscale(hr, 2, m).data).equals(Buffer.from(f.lr.data)));
      expect(matches.length, `frame ${f.seq}: its LR is none of ${mix.join(', ')} of its HR`).toBeGreaterThan(0);
      used.add(matches[0]);
    }
    expect(used.size).toBeGreaterThanOrEqual(2);
  });

  it('in sequence order, the patches are the same whatever the thread timing, and a later start continues them', async () => {
    for (let i = 0; i < 7; i++) await makeImage(path.join(tmp.dir, `img${i}.png`), 64 + i * 8, 72, i);
    fs.writeFileSync(path.join(tmp.dir, 'broken.png'), 'not an image');
    const files = listImages(tmp.dir);
    const options = {
      files,
      seed: 11,
      patchSize: 32,
      scale: 2 as const,
      lrFilter: 'bilinear-aa' as const,
      patchesPerImage: 3,
      imagesPerTask: 1,
      workerFile: LOADER_WORKER,
    };
    const run = async (workers: number, startPosition: number, n: number): Promise<{ seqs: string[]; ringOrder: number[] }> => {
      const r = SharedRing.create(1 << 20);
      const p = new LoaderPool({ ...options, ring: r.buffer, workers, startPosition });
      await p.start();
      try {
        const frames = await readInSequence(r, n, new Sequencer(startPosition * 3));
        return { seqs: digest(frames), ringOrder: frames.map((f) => f.seq) };
      } finally {
        r.close();
        await p.stop();
      }
    };
    // 8 files × 3 patches, one file broken: 21 patches per epoch; read 2½ epochs.
    const one = await run(1, 0, 52);
    const two = await run(3, 0, 52);
    expect(two.seqs).toEqual(one.seqs);
    // Strictly increasing seqs, with exactly the broken file's 3 patches missing per epoch.
    const seqs = one.ringOrder;
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
    expect(seqs[20]).toBe(23);
    // Starting at position 10 (epoch 1, third image) gives the same patches as the tail of the first run.
    const resumed = await run(2, 10, 20);
    const from = one.seqs.findIndex((d) => Number(d.split(':')[0]) >= 30);
    expect(resumed.seqs).toEqual(one.seqs.slice(from, from + 20));
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
    const missing = new LoaderPool({
      ring: ring.buffer,
      files: listImages(tmp.dir),
      workers: 1,
      seed: 1,
      patchSize: 32,
      scale: 2,
      lrFilter: 'bilinear-aa',
      patchesPerImage: 1,
      workerFile: path.join(tmp.dir, 'nope.js'),
    });
    await expect(missing.start()).rejects.toThrow(/loader worker entry .*nope\.js does not exist/);
  });

  it('stops its workers when the ring is closed', async () => {
    await makeImage(path.join(tmp.dir, 'a.png'), 64, 64, 1);
    pool = new LoaderPool({
      ring: ring.buffer,
      files: listImages(tmp.dir),
      workers: 1,
      seed: 1,
      patchSize: 32,
      scale: 2,
      lrFilter: 'bilinear-aa',
      patchesPerImage: 1,
      workerFile: LOADER_WORKER,
    });
    await pool.start();
    await readFrames(ring, 2);
    ring.close();
    await pool.stop();
    expect(pool.status).toBe('Stopped');
  });
});
