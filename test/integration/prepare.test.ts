// `srgan prepare` on real files, real worker threads (the built dist/ worker), a real SQLite manifest,
// and the real CLI killed with SIGKILL. Every fixture is drawn here with sharp, small (patches of 16–64 px).

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { listPatchFiles, patchPath, readPatchParams } from '../../src/data/prepare/manifest.js';
import { prepare, type PrepareOptions, type PrepareSummary } from '../../src/data/prepare/pipeline.js';
import { SrganError } from '../../src/util/errors.js';
import { DIST, tempDir } from '../support/tmp.js';

const WORKER = path.join(DIST, 'data/prepare/worker.js');
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/srgan.js');
const IS_ROOT = process.getuid?.() === 0;

type Rgb = [number, number, number];

function run(opts: Omit<PrepareOptions, 'workerFile'>): Promise<PrepareSummary> {
  return prepare({ workers: 2, ...opts, workerFile: WORKER });
}

/** A w×h image of one colour, as raw RGB. */
function solidRaw(w: number, h: number, [r, g, b]: Rgb): Buffer {
  const d = Buffer.alloc(w * h * 3);
  for (let i = 0; i < d.length; i += 3) {
    d[i] = r;
    d[i + 1] = g;
    d[i + 2] = b;
  }
  return d;
}

/** Seeded noise over a gradient: photo-like enough that PNGs take real work, and every file differs. */
function noiseRaw(w: number, h: number, seed: number): Buffer {
  const d = Buffer.alloc(w * h * 3);
  let s = seed >>> 0 || 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        d[(y * w + x) * 3 + c] = ((x * (c + 1) + y * 2 + seed * 13) & 255) ^ (s >>> 28);
      }
    }
  }
  return d;
}

function raw(data: Buffer | Uint16Array, w: number, h: number, channels: 1 | 2 | 3 | 4 = 3) {
  return sharp(data, { raw: { width: w, height: h, channels } });
}

/** Mean colour of a PNG patch. */
async function meanColour(file: string): Promise<Rgb> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(3);
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i++) sum[i % 3] += data[i];
  const n = data.length / 3;
  return sum.map((v) => v / n) as Rgb;
}

function expectColour(actual: Rgb, expected: Rgb, tolerance: number): void {
  for (let c = 0; c < 3; c++) {
    if (Math.abs(actual[c] - expected[c]) > tolerance) {
      throw new Error(`colour ${actual.map((v) => v.toFixed(1)).join(',')} is not within ${tolerance} of ${expected.join(',')}`);
    }
  }
}

interface SourceRow {
  id: number;
  path: string;
  status: string;
  reason: string | null;
  message: string | null;
  duplicate_of: number | null;
  width: number | null;
  height: number | null;
  camera: string | null;
  predownscaled: number;
  patches: number;
  hash: string | null;
}
interface PatchRow {
  id: number;
  source_id: number;
  level: number;
  x: number;
  y: number;
  size: number;
}

function readManifest(dataDir: string): { sources: SourceRow[]; patches: PatchRow[]; meta: Record<string, string> } {
  const db = new Database(path.join(dataDir, 'manifest.sqlite'), { readonly: true });
  try {
    return {
      sources: db.prepare('SELECT * FROM sources ORDER BY id').all() as SourceRow[],
      patches: db.prepare('SELECT * FROM patches ORDER BY id').all() as PatchRow[],
      meta: Object.fromEntries(
        (db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
      ),
    };
  } finally {
    db.close();
  }
}

/** Every file under a dataset, relative, with the sha256 of each PNG (the manifest's own files apart). */
function datasetFiles(dataDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.startsWith('manifest.sqlite'))
        out.set(path.relative(dataDir, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(dataDir);
  return out;
}

function byName(rows: SourceRow[], name: string): SourceRow {
  const r = rows.find((s) => path.basename(s.path) === name);
  if (!r) throw new Error(`no source row for ${name}`);
  return r;
}

function patchesOf(m: ReturnType<typeof readManifest>, name: string): PatchRow[] {
  const src = byName(m.sources, name);
  return m.patches.filter((p) => p.source_id === src.id);
}

describe('srgan prepare', () => {
  const tmp = tempDir('srgan-prepare-');
  const src = path.join(tmp.dir, 'photos');
  afterAll(() => tmp.cleanup());

  const RED: Rgb = [220, 20, 30];
  const GREY: Rgb = [90, 110, 130];

  beforeAll(async () => {
    fs.mkdirSync(path.join(src, 'nested/deeper'), { recursive: true });
    const solid = (_name: string, colour: Rgb, w = 40, h = 40) => raw(solidRaw(w, h, colour), w, h);
    // Orientation: 80×64 as stored, a red 32×32 block in the stored top-left corner.
    const stored = solidRaw(80, 64, GREY);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) stored.set(RED, (y * 80 + x) * 3);
    for (const o of [1, 6, 8])
      await raw(stored, 80, 64)
        .withMetadata({ orientation: o })
        .jpeg({ quality: 95 })
        .toFile(path.join(src, `orient-${o}.jpg`));
    // Colour forms, each one colour all over so any crop of it has that colour.
    await solid('', [200, 30, 40]).toColourspace('cmyk').withIccProfile('cmyk').jpeg({ quality: 95 }).toFile(path.join(src, 'cmyk.jpg'));
    const deep = new Uint16Array(40 * 40 * 3);
    for (let i = 0; i < deep.length; i += 3) [deep[i], deep[i + 1], deep[i + 2]] = [200 * 257, 50 * 257 + 100, 100 * 257 - 100];
    await raw(deep, 40, 40).toColourspace('rgb16').png().toFile(path.join(src, 'nested/deep16.png'));
    await raw(Buffer.alloc(40 * 40, 90), 40, 40, 1)
      .png()
      .toFile(path.join(src, 'nested/grey.png'));
    await solid('', [10, 200, 90]).png({ palette: true }).toFile(path.join(src, 'nested/palette.png'));
    const rgba = Buffer.alloc(40 * 40 * 4);
    for (let i = 0; i < rgba.length; i += 4) rgba.set([50, 100, 150, 64], i);
    await raw(rgba, 40, 40, 4).png().toFile(path.join(src, 'nested/rgba.png'));
    await solid('', [255, 0, 0]).withIccProfile('p3').png().toFile(path.join(src, 'nested/deeper/p3.png'));
    await solid('', [30, 60, 220]).webp({ lossless: true }).toFile(path.join(src, 'nested/deeper/blue.WEBP'));
    await solid('', [240, 200, 20]).tiff({ compression: 'lzw' }).toFile(path.join(src, 'nested/deeper/yellow.TIF'));
    await solid('', [0, 0, 0]).gif().toFile(path.join(src, 'nested/deeper/black.gif'));
    // Bad files.
    const noisy = await raw(noiseRaw(200, 200, 3), 200, 200)
      .jpeg({ quality: 90 })
      .toBuffer();
    fs.writeFileSync(path.join(src, 'truncated.jpg'), noisy.subarray(0, Math.floor(noisy.length / 2)));
    fs.writeFileSync(path.join(src, 'empty.png'), '');
    fs.writeFileSync(path.join(src, 'notes.jpg'), 'these are my holiday notes, not a picture\n');
    fs.writeFileSync(
      path.join(src, 'drawing.png'),
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>',
    );
    await solid('', GREY, 20, 20).png().toFile(path.join(src, 'tiny.png'));
    await raw(noiseRaw(300, 300, 5), 300, 300)
      .png()
      .toFile(path.join(src, 'huge.png'));
    fs.copyFileSync(path.join(src, 'nested/grey.png'), path.join(src, 'grey-copy.png'));
    fs.writeFileSync(path.join(src, 'readme.txt'), 'not listed: no image extension');
  });

  describe('one run over every kind of file', () => {
    let summary: PrepareSummary;
    let m: ReturnType<typeof readManifest>;
    const out = () => path.join(tmp.dir, 'out-drop');
    beforeAll(async () => {
      summary = await run({ sources: [src], out: out(), patch: 32, levels: [1], perLevel: 1, maxPixels: 50_000 });
      m = readManifest(out());
    });

    it('walks recursively in sorted order, by extension in any case', () => {
      const names = m.sources.map((s) => path.relative(src, s.path));
      expect(names).toEqual([...names].sort());
      expect(names).toContain('nested/deeper/blue.WEBP');
      expect(names).toContain('nested/deeper/yellow.TIF');
      expect(names).not.toContain('readme.txt');
      expect(summary.found).toBe(m.sources.length);
    });

    it('skips each bad file with its reason, and counts them', () => {
      const reason = (n: string) => [byName(m.sources, n).status, byName(m.sources, n).reason];
      expect(reason('truncated.jpg')).toEqual(['skipped', 'corrupt']);
      expect(reason('empty.png')).toEqual(['skipped', 'empty']);
      expect(reason('notes.jpg')).toEqual(['skipped', 'not-an-image']);
      expect(reason('drawing.png')).toEqual(['skipped', 'unsupported']);
      expect(reason('tiny.png')).toEqual(['skipped', 'too-small']);
      expect(reason('huge.png')).toEqual(['skipped', 'too-large']);
      expect(byName(m.sources, 'huge.png').width).toBeNull(); // refused from the header, never decoded
      // Usually "VipsJpeg: premature end of JPEG image"; libvips's one process-wide error buffer can lose
      // the text while another worker's operation clears it, so only the prefix is certain.
      expect(byName(m.sources, 'truncated.jpg').message).toMatch(/^cannot decode: /);
      expect(summary.reasons).toEqual({
        corrupt: 1,
        empty: 1,
        'not-an-image': 1,
        unsupported: 1,
        'too-small': 1,
        'too-large': 1,
        duplicate: 1,
      });
      expect(summary.skipped).toBe(6);
      expect(summary.totals.reasons).toEqual({ corrupt: 1, empty: 1, 'not-an-image': 1, unsupported: 1, 'too-small': 1, 'too-large': 1 });
      expect(summary.skippedFiles.map((f) => path.basename(f.path))).toContain('notes.jpg');
    });

    it('processes identical files once: the later one is a duplicate of the first', () => {
      const first = byName(m.sources, 'grey-copy.png'); // sorts before nested/grey.png
      const second = byName(m.sources, 'grey.png');
      expect(first.status).toBe('done');
      expect(second.status).toBe('duplicate');
      expect(second.duplicate_of).toBe(first.id);
      expect(second.hash).toBe(first.hash);
      expect(second.patches).toBe(0);
      expect(m.patches.filter((p) => p.source_id === second.id)).toEqual([]);
    });

    it('applies EXIF orientation 6 and 8 to the pixels', async () => {
      for (const o of [1, 6, 8]) {
        const row = byName(m.sources, `orient-${o}.jpg`);
        expect([row.width, row.height]).toEqual(o === 1 ? [80, 64] : [64, 80]);
        const [p] = patchesOf(m, `orient-${o}.jpg`);
        const { data, info } = await sharp(patchPath(out(), p.id)).raw().toBuffer({ resolveWithObject: true });
        expect(info.width).toBe(32);
        // Where the red block is in the upright photo: o=1 top-left, o=6 (rotate 90° cw) top-right,
        // o=8 (rotate 90° ccw) bottom-left; 32×32 in every case.
        const red = o === 1 ? { x0: 0, y0: 0 } : o === 6 ? { x0: 32, y0: 0 } : { x0: 0, y0: 48 };
        let checked = 0;
        for (let y = 0; y < 32; y += 3) {
          for (let x = 0; x < 32; x += 3) {
            const ux = p.x + x;
            const uy = p.y + y;
            // Stay 3 px away from the block's edges (JPEG ringing).
            const inside = ux >= red.x0 + 3 && ux < red.x0 + 29 && uy >= red.y0 + 3 && uy < red.y0 + 29;
            const outside = ux < red.x0 - 3 || ux >= red.x0 + 35 || uy < red.y0 - 3 || uy >= red.y0 + 35;
            if (!inside && !outside) continue;
            const i = (y * 32 + x) * 3;
            const px: Rgb = [data[i], data[i + 1], data[i + 2]];
            expectColour(px, inside ? RED : GREY, 24);
            checked++;
          }
        }
        expect(checked).toBeGreaterThan(50);
      }
    });

    it('converts every colour form to 8-bit sRGB', async () => {
      const colour = async (name: string) => meanColour(patchPath(out(), patchesOf(m, name)[0].id));
      expectColour(await colour('cmyk.jpg'), [200, 30, 40], 14); // through the CMYK ICC profile and back
      expectColour(await colour('deep16.png'), [200, 50, 100], 1);
      expectColour(await colour('grey-copy.png'), [90, 90, 90], 0.5); // its twin nested/grey.png is the duplicate
      expectColour(await colour('palette.png'), [10, 200, 90], 2);
      expectColour(await colour('rgba.png'), [50, 100, 150], 0.5); // alpha dropped, colour kept
      expectColour(await colour('p3.png'), [255, 0, 0], 3); // the P3 profile applied, back to sRGB red
      expectColour(await colour('blue.WEBP'), [30, 60, 220], 0.5);
      expectColour(await colour('yellow.TIF'), [240, 200, 20], 0.5);
      expectColour(await colour('black.gif'), [0, 0, 0], 0.5);
    });

    it('lays the patches out 1000 per folder, ids dense from 0, and lists them through the manifest', () => {
      expect(m.patches.map((p) => p.id)).toEqual(m.patches.map((_, i) => i));
      const files = listPatchFiles(out());
      expect(files).toEqual(m.patches.map((p) => path.join(out(), '0', `${p.id}.png`)));
      for (const f of files) expect(fs.existsSync(f)).toBe(true);
      expect(summary.patches).toBe(files.length);
      expect(JSON.parse(m.meta.params)).toMatchObject({ patch: 32, levels: [1], perLevel: 1, alpha: 'drop', linear: false });
      expect(readPatchParams(out())).toMatchObject({ patch: 32, levels: [1], perLevel: 1, seed: 1 });
      expect(readPatchParams(tmp.dir)).toBeNull();
      expect(() => listPatchFiles(tmp.dir)).toThrow(expect.objectContaining({ code: 'SRGAN_ERR_MANIFEST' }));
    });

    it('composites alpha on white with alpha "flatten"', async () => {
      const flat = path.join(tmp.dir, 'out-flatten');
      await run({ sources: [path.join(src, 'nested/rgba.png')], out: flat, patch: 32, levels: [1], perLevel: 1, alpha: 'flatten' });
      const a = 64 / 255;
      expectColour(await meanColour(patchPath(flat, 0)), [50 * a + 255 * (1 - a), 100 * a + 255 * (1 - a), 150 * a + 255 * (1 - a)], 1.5);
    });

    it('refuses to resume with different parameters, naming them', async () => {
      const err = await run({ sources: [src], out: out(), patch: 16, levels: [1], perLevel: 2, maxPixels: 50_000 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SrganError);
      expect((err as SrganError).code).toBe('SRGAN_ERR_MANIFEST');
      expect((err as Error).message).toMatch(/--patch 32 \(this run: 16\)/);
      expect((err as Error).message).toMatch(/--per-level 1 \(this run: 2\)/);
      expect((err as Error).message).not.toMatch(/--levels/);
    });

    it('does nothing on a rerun with the same parameters', async () => {
      const before = datasetFiles(out());
      const again = await run({ sources: [src], out: out(), patch: 32, levels: [1], perLevel: 1, maxPixels: 50_000 });
      expect(again.previouslyDone).toBe(again.found);
      expect(again.processed).toBe(0);
      expect(datasetFiles(out())).toEqual(before);
    });
  });

  it('makes the same dataset with 1 and 2 workers, cutting several levels', async () => {
    const photos = path.join(tmp.dir, 'levels');
    fs.mkdirSync(photos);
    for (let i = 0; i < 5; i++)
      await raw(noiseRaw(160 + i * 16, 140, i + 1), 160 + i * 16, 140)
        .png()
        .toFile(path.join(photos, `p${i}.png`));
    const opts = { sources: [photos], patch: 32, levels: [4, 1, 2], perLevel: 3 };
    await run({ ...opts, out: path.join(tmp.dir, 'w1'), workers: 1 });
    const s2 = await run({ ...opts, out: path.join(tmp.dir, 'w2'), workers: 2 });
    const a = readManifest(path.join(tmp.dir, 'w1'));
    const b = readManifest(path.join(tmp.dir, 'w2'));
    expect(b.patches).toEqual(a.patches);
    expect(datasetFiles(path.join(tmp.dir, 'w2'))).toEqual(datasetFiles(path.join(tmp.dir, 'w1')));
    // p0 is 160×140: level 1 gives 3, level 2 (80×70) 3, level 4 (40×35, ceil(2·1400/1024) = 3) 3.
    const p0 = patchesOf(a, 'p0.png');
    expect(p0.map((p) => p.level)).toEqual([1, 1, 1, 2, 2, 2, 4, 4, 4]);
    for (const p of p0) {
      expect(p.x + p.size).toBeLessThanOrEqual(Math.floor(160 / p.level));
      expect(p.y + p.size).toBeLessThanOrEqual(Math.floor(140 / p.level));
    }
    // A level patch is the photo downscaled: compare with sharp's own resize of the same region.
    const lvl2 = p0.find((p) => p.level === 2)!;
    const ref = await sharp(path.join(photos, 'p0.png'))
      .resize(80, 70, { kernel: 'lanczos3' })
      .extract({ left: lvl2.x, top: lvl2.y, width: 32, height: 32 })
      .raw()
      .toBuffer();
    const got = await sharp(patchPath(path.join(tmp.dir, 'w1'), lvl2.id))
      .raw()
      .toBuffer();
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
    expect(maxDiff).toBeLessThanOrEqual(1);
    expect(s2.patches).toBe(b.patches.length);
  });

  it('downscales in linear light with linear: a 1-px checkerboard halves to ≈187, not ≈128', async () => {
    const n = 64;
    const cb = Buffer.alloc(n * n * 3);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) cb.fill((x + y) % 2 ? 255 : 0, (y * n + x) * 3, (y * n + x) * 3 + 3);
    const dir = path.join(tmp.dir, 'checker');
    fs.mkdirSync(dir);
    await raw(cb, n, n).png().toFile(path.join(dir, 'checker.png'));
    const opts = { sources: [dir], patch: 16, levels: [2], perLevel: 1 };
    await run({ ...opts, out: path.join(tmp.dir, 'gamma') });
    await run({ ...opts, out: path.join(tmp.dir, 'linear'), linear: true });
    // Mean over the patch's pixels at least 4 px inside the 32×32 level (its border rings a little).
    const interiorMean = async (dataDir: string): Promise<number> => {
      const [p] = readManifest(dataDir).patches;
      const data = await sharp(patchPath(dataDir, p.id)).raw().toBuffer();
      let sum = 0;
      let count = 0;
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          const lx = p.x + x;
          const ly = p.y + y;
          if (lx < 4 || ly < 4 || lx >= 28 || ly >= 28) continue;
          for (let c = 0; c < 3; c++) sum += data[(y * 16 + x) * 3 + c];
          count += 3;
        }
      }
      expect(count).toBeGreaterThan(0);
      return sum / count;
    };
    const linear = await interiorMean(path.join(tmp.dir, 'linear'));
    const gamma = await interiorMean(path.join(tmp.dir, 'gamma'));
    expect(linear).toBeGreaterThanOrEqual(186);
    expect(linear).toBeLessThanOrEqual(188);
    expect(Math.abs(gamma - 127.5)).toBeLessThan(1.5);
  });

  it('pre-downscales ×2 by flag, or by EXIF camera model', async () => {
    const dir = path.join(tmp.dir, 'cameras');
    fs.mkdirSync(dir);
    await raw(noiseRaw(128, 128, 7), 128, 128)
      .withExif({ IFD0: { Make: 'Google', Model: 'Pixel 3' } })
      .jpeg()
      .toFile(path.join(dir, 'pixel.jpg'));
    await raw(noiseRaw(128, 128, 8), 128, 128)
      .withExif({ IFD0: { Make: 'Apple', Model: 'iPhone 12' } })
      .jpeg()
      .toFile(path.join(dir, 'iphone.jpg'));
    const byModel = path.join(tmp.dir, 'cam-model');
    await run({ sources: [dir], out: byModel, patch: 64, levels: [1], perLevel: 4, predownscaleModels: ['iPhone X', 'Pixel 3'] });
    const m = readManifest(byModel);
    expect(byName(m.sources, 'pixel.jpg')).toMatchObject({ camera: 'Google Pixel 3', predownscaled: 1, width: 128, patches: 2 });
    expect(byName(m.sources, 'iphone.jpg')).toMatchObject({ camera: 'Apple iPhone 12', predownscaled: 0, patches: 4 });
    // 64×64 after the pre-downscale: the only 64 px crop is the whole of it.
    for (const p of patchesOf(m, 'pixel.jpg')) expect([p.x, p.y]).toEqual([0, 0]);

    const byFlag = path.join(tmp.dir, 'cam-flag');
    await run({ sources: [dir], out: byFlag, patch: 64, levels: [1], perLevel: 4, predownscale: true });
    expect(readManifest(byFlag).sources.map((s) => s.predownscaled)).toEqual([1, 1]);
  });

  // Root reads anything: as root, the CLI runs as nobody (setpriv) for this one, or the test is skipped.
  const AS_NOBODY = IS_ROOT && fs.existsSync('/usr/bin/setpriv');
  it.skipIf(IS_ROOT && !AS_NOBODY)('skips a file it may not read as unreadable, and retries it next time', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-locked-'));
    try {
      fs.chmodSync(root, 0o777);
      const dir = path.join(root, 'photos');
      fs.mkdirSync(dir, { mode: 0o777 });
      const file = path.join(dir, 'secret.png');
      await raw(noiseRaw(64, 64, 9), 64, 64)
        .png()
        .toFile(file);
      fs.chmodSync(file, 0o000);
      const out = path.join(root, 'out');
      const cli = (): PrepareSummary => {
        const args = [BIN, 'prepare', dir, '--out', out, '--patch', '32', '--levels', '1', '--per-level', '1', '--json'];
        const r = AS_NOBODY
          ? spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...args], {
              encoding: 'utf8',
              timeout: 30_000,
            })
          : spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as PrepareSummary;
      };
      const s = cli();
      expect(s.reasons).toEqual({ unreadable: 1 });
      expect(s.skippedFiles[0].message).toMatch(/EACCES/);
      fs.chmodSync(file, 0o644);
      const again = cli();
      expect([again.previouslyDone, again.done]).toEqual([0, 1]);
      expect(readManifest(out).sources.map((r) => r.status)).toEqual(['done']);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('removes uncommitted patch files left by a killed run', async () => {
    const dir = path.join(tmp.dir, 'strays');
    fs.mkdirSync(dir);
    await raw(noiseRaw(64, 64, 11), 64, 64)
      .png()
      .toFile(path.join(dir, 'a.png'));
    const out = path.join(tmp.dir, 'out-strays');
    const first = await run({ sources: [dir], out, patch: 32, levels: [1], perLevel: 2 });
    expect(first.patches).toBe(2);
    fs.writeFileSync(path.join(out, '0', '2.png'), 'half-written');
    fs.mkdirSync(path.join(out, '1'));
    fs.writeFileSync(path.join(out, '1', '1000.png'), 'half-written');
    const again = await run({ sources: [dir], out, patch: 32, levels: [1], perLevel: 2 });
    expect(again.straysRemoved).toBe(2);
    expect([...datasetFiles(out).keys()].sort()).toEqual(['0/0.png', '0/1.png']);
  });

  it('refuses a missing source, a non-empty folder that is not a dataset, and bad options', async () => {
    const missing = await run({ sources: [path.join(tmp.dir, 'nope')], out: path.join(tmp.dir, 'o1') }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'SRGAN_ERR_DATA' });
    expect(String((missing as Error).message)).toContain('nope');
    const err = await run({ sources: [src], out: src }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SRGAN_ERR_MANIFEST' });
    await expect(run({ sources: [src], out: path.join(tmp.dir, 'o2'), levels: [1, 1] })).rejects.toThrow(/levels: each factor once/);
    await expect(run({ sources: [src], out: path.join(tmp.dir, 'o2'), patch: 4 })).rejects.toThrow(RangeError);
    await expect(run({ sources: [src], out: path.join(tmp.dir, 'o2'), ...({ perlevel: 3 } as object) })).rejects.toThrow(
      /options.perlevel: unknown option/,
    );
  });

  it('the CLI checks its arguments', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [BIN, 'prepare', ...args], { encoding: 'utf8', timeout: 30_000 });
    const help = cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--predownscale-models');
    expect(cli([src]).status).toBe(2); // no --out
    expect(cli(['--out', path.join(tmp.dir, 'o3')]).status).toBe(2); // no source
    const bad = cli([src, '--out', path.join(tmp.dir, 'o3'), '--patch', 'big']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('SRGAN_ERR_CONFIG: --patch must be an integer, got "big"');
    const range = cli([src, '--out', path.join(tmp.dir, 'o3'), '--png-level', '12']);
    expect(range.stderr).toContain('SRGAN_ERR_CONFIG: --png-level: expected an integer in 0..9, got 12');
  });

  it('resumes after kill -9 and ends with the same patches as an uninterrupted run', async () => {
    const photos = path.join(tmp.dir, 'many');
    fs.mkdirSync(photos);
    const N = 48;
    for (let i = 0; i < N; i++)
      await raw(noiseRaw(192, 160, 100 + i), 192, 160)
        .png()
        .toFile(path.join(photos, `img-${String(i).padStart(2, '0')}.png`));
    fs.copyFileSync(path.join(photos, 'img-05.png'), path.join(photos, 'img-05-again.png'));
    const args = (out: string) => [
      'prepare',
      photos,
      '--out',
      out,
      '--patch',
      '32',
      '--levels',
      '1,2',
      '--per-level',
      '6',
      '--workers',
      '2',
      '--json',
    ];

    const killed = path.join(tmp.dir, 'killed');
    const child = spawn(process.execPath, [BIN, ...args(killed)], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    // Kill as soon as a few sources are committed: the run is then certainly in the middle.
    const deadline = Date.now() + 30_000;
    let committed = 0;
    while (Date.now() < deadline && committed < 3) {
      await new Promise((r) => setTimeout(r, 15));
      try {
        const db = new Database(path.join(killed, 'manifest.sqlite'), { readonly: true, fileMustExist: true });
        committed = db.prepare('SELECT count(*) FROM sources').pluck().get() as number;
        db.close();
      } catch {
        // not created yet
      }
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(committed).toBeGreaterThanOrEqual(3);
    expect(readManifest(killed).sources.length).toBeLessThan(N + 1);

    const resumed = spawnSync(process.execPath, [BIN, ...args(killed)], { encoding: 'utf8', timeout: 60_000 });
    expect(resumed.status, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as PrepareSummary;
    expect(summary.previouslyDone).toBeGreaterThanOrEqual(3);
    expect(summary.previouslyDone + summary.processed).toBe(N + 1);

    const whole = path.join(tmp.dir, 'whole');
    const full = spawnSync(process.execPath, [BIN, ...args(whole)], { encoding: 'utf8', timeout: 60_000 });
    expect(full.status, full.stderr).toBe(0);

    const a = readManifest(killed);
    const b = readManifest(whole);
    const key = (m: ReturnType<typeof readManifest>) => {
      const pathOf = new Map(m.sources.map((s) => [s.id, s.path]));
      return m.patches.map((p) => `${p.id} ${path.basename(pathOf.get(p.source_id)!)} ${p.level} ${p.x} ${p.y} ${p.size}`);
    };
    expect(key(a)).toEqual(key(b));
    expect(a.sources.map((s) => [path.basename(s.path), s.status, s.patches])).toEqual(
      b.sources.map((s) => [path.basename(s.path), s.status, s.patches]),
    );
    expect(byName(a.sources, 'img-05.png').status).toBe('duplicate');
    // Same ids, same bytes, nothing else: strays of the killed run are gone.
    const files = datasetFiles(killed);
    expect(files).toEqual(datasetFiles(whole));
    expect(files.size).toBe(a.patches.length);
    expect(fs.existsSync(path.join(killed, '.prepare.lock'))).toBe(false);
  });
});
