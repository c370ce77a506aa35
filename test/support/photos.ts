// Small photo-like PNGs for tests that need a folder of images (training data, images to upscale):
// smooth sine patterns, different per image, written by sharp.

import fs from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';

/** Writes `count` RGB PNGs of `width`×`height` named p0.png, p1.png, … into `dir` (created); returns their paths. */
export async function writePhotos(dir: string, count: number, width: number, height: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.alloc(width * height * 3);
    for (let p = 0; p < data.length; p++) data[p] = (Math.sin(p * 0.013 * (i + 1)) * 110 + 128) & 255;
    const file = path.join(dir, `p${i}.png`);
    await sharp(data, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(file);
    files.push(file);
  }
  return files;
}
