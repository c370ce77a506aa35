import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { canRenderText, generateDemoData, readDemoManifest } from '../../src/data/demo/generate.js';
import { tempDir } from '../support/tmp.js';

const dirs: Array<() => void> = [];
function fresh(): string {
  const t = tempDir('srgan-demo-');
  dirs.push(t.cleanup);
  return t.dir;
}
afterAll(() => dirs.forEach((c) => c()));

const hashes = (files: string[]): string[] => files.map((f) => createHash('sha256').update(fs.readFileSync(f)).digest('hex'));

// 12 images cover each of the 6 scene kinds twice.
const COUNT = 12;
// Text renders as real glyphs only where fontconfig finds a font (else pango draws boxes); generation works either way.
const fonts = await canRenderText();

describe('generateDemoData', () => {
  const dirA = fresh();
  let filesA: string[] = [];

  it('makes `count` valid RGB PNGs of varied sizes between 192 and 512 px', async () => {
    const progress: number[] = [];
    filesA = await generateDemoData(dirA, { count: COUNT, seed: 7, onProgress: (d, t) => progress.push(d * 1000 + t) });
    expect(filesA).toHaveLength(COUNT);
    expect(progress).toHaveLength(COUNT);
    expect(progress.at(-1)).toBe(COUNT * 1000 + COUNT);
    const sizes = new Set<string>();
    for (const f of filesA) {
      expect(path.isAbsolute(f)).toBe(true);
      const m = await sharp(f).metadata();
      expect(m.format).toBe('png');
      expect(m.channels).toBe(3);
      expect(m.width).toBeGreaterThanOrEqual(192);
      expect(m.width).toBeLessThanOrEqual(512);
      expect(m.height).toBeGreaterThanOrEqual(192);
      expect(m.height).toBeLessThanOrEqual(512);
      sizes.add(`${m.width}x${m.height}`);
    }
    expect(sizes.size).toBeGreaterThan(COUNT / 2);
  });

  it('makes images that are not trivial: contrast and detail in every one', async () => {
    for (const f of filesA) {
      const { data, info } = await sharp(f).raw().toBuffer({ resolveWithObject: true });
      let s = 0;
      let s2 = 0;
      let grad = 0;
      const n = info.width * info.height;
      for (let i = 0, p = 0; p < n; p++, i += 3) {
        const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
        s += y;
        s2 += y * y;
        if (p % info.width !== 0) grad += Math.abs(data[i] - data[i - 3]);
      }
      const std = Math.sqrt(s2 / n - (s / n) ** 2);
      expect(std, `${f} luma std`).toBeGreaterThan(8);
      expect(grad / n, `${f} mean |dx|`).toBeGreaterThan(0.2);
    }
  });

  it('records the content in the manifest: every scene kind, and text in many images', async () => {
    const m = await readDemoManifest(dirA);
    expect(m).not.toBeNull();
    expect(m!.params).toEqual({ generator: expect.any(Number), count: COUNT, seed: 7 });
    const scenes = new Set(m!.images.map((im) => im.kinds[0]));
    expect([...scenes].sort()).toEqual(['document', 'landscape', 'lines', 'mixed', 'shapes', 'texture']);
    expect(m!.images.filter((im) => im.kinds.includes('text')).length).toBeGreaterThanOrEqual(COUNT / 3);
  });

  it.skipIf(!fonts)('draws text with ink (fonts available)', async () => {
    // Document pages: dark glyphs on light paper, with many dark/light transitions along rows.
    const m = (await readDemoManifest(dirA))!;
    const doc = m.images.find((im) => im.kinds[0] === 'document' && im.kinds[1] === 'paper');
    expect(doc).toBeDefined();
    const { data, info } = await sharp(path.join(dirA, doc!.file)).greyscale().raw().toBuffer({ resolveWithObject: true });
    let transitions = 0;
    for (let i = 1; i < data.length; i++) if (i % info.width !== 0 && Math.abs(data[i] - data[i - 1]) > 60) transitions++;
    expect(transitions).toBeGreaterThan(500);
  });

  it('is deterministic: the same seed gives the same bytes, another seed different ones', async () => {
    const dirB = fresh();
    const filesB = await generateDemoData(dirB, { count: COUNT, seed: 7 });
    expect(hashes(filesB)).toEqual(hashes(filesA));
    const dirC = fresh();
    const filesC = await generateDemoData(dirC, { count: COUNT, seed: 8 });
    const a = hashes(filesA);
    expect(hashes(filesC).filter((h, i) => h === a[i])).toHaveLength(0);
  });

  it('is idempotent: a second call reuses the complete set without rewriting it', async () => {
    const before = filesA.map((f) => fs.statSync(f).mtimeMs);
    const progress: Array<[number, number]> = [];
    const again = await generateDemoData(dirA, { count: COUNT, seed: 7, onProgress: (d, t) => progress.push([d, t]) });
    expect(again).toEqual(filesA);
    expect(again.map((f) => fs.statSync(f).mtimeMs)).toEqual(before);
    expect(progress).toEqual([[COUNT, COUNT]]);
  });

  it('regenerates when parameters change or the set is damaged, removing stale files', async () => {
    const dir = fresh();
    await generateDemoData(dir, { count: 6, seed: 3 });
    fs.writeFileSync(path.join(dir, 'mine.txt'), 'not ours');
    const fewer = await generateDemoData(dir, { count: 3, seed: 3 });
    expect(fewer).toHaveLength(3);
    expect(fs.readdirSync(dir).sort()).toEqual(['demo-0000.png', 'demo-0001.png', 'demo-0002.png', 'demo-manifest.json', 'mine.txt']);

    const good = hashes(fewer);
    fs.truncateSync(fewer[1], 10);
    const repaired = await generateDemoData(dir, { count: 3, seed: 3 });
    expect(hashes(repaired)).toEqual(good);

    fs.writeFileSync(path.join(dir, 'demo-manifest.json'), '{"format":"srgan-demo"');
    expect(await readDemoManifest(dir)).toBeNull();
    expect(hashes(await generateDemoData(dir, { count: 3, seed: 3 }))).toEqual(good);
  });

  it('validates its options, naming the field', async () => {
    const dir = fresh();
    await expect(generateDemoData(dir, { count: 0 })).rejects.toThrow(/count/);
    await expect(generateDemoData(dir, { seed: 1.5 })).rejects.toThrow(/seed/);
    await expect(generateDemoData(dir, { cont: 3 } as never)).rejects.toThrow(/opts\.cont/);
  });
});
