// srgan eval's protocol pinned against numbers computed outside this code: test/fixtures/eval_reference.py
// (NumPy, a port of MATLAB imresize and of BasicSR's PSNR-Y / SSIM-Y) wrote eval_reference.json once; the
// tests draw the same pictures from the same integer formula and compare. Nothing here computes a
// metric or a resampling: a broken src/ cannot agree with the fixture by sharing code with it.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import type { RgbImage } from '../../src/data/image/rgb-image.js';

export interface ReferenceScore {
  psnr: number;
  ssim: number;
}

export interface ReferenceRow {
  image: string;
  scale: 2 | 4;
  border: number;
  /** HR size after mod-crop. */
  width: number;
  height: number;
  /** sha256 of the LR's RGB bytes (MATLAB imresize bicubic ÷scale). */
  lrSha256: string;
  /** sha256 of the bicubic ×scale enlargement's RGB bytes with `border` pixels shaved from every side. */
  bicubicShavedSha256: string;
  bicubic: ReferenceScore;
  /** A model that enlarges by nearest neighbour. */
  nearest: ReferenceScore;
  /** Bicubic ×scale of the LR made by `--lr-filter area` (the mean of each scale×scale block). */
  bicubicOfArea: ReferenceScore;
}

export interface EvalReference {
  images: { name: string; width: number; height: number; k: number }[];
  scores: ReferenceRow[];
  alpha: { width: number; height: number; scale: number; values: number[] }[];
}

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/eval_reference.json');

export const evalReference: EvalReference = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as EvalReference;

/** eval_reference.py's picture(): a triangle wave, a checker and integer pseudo-noise, integers only. */
export function referencePicture(width: number, height: number, k: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const t = (3 * x + 2 * y + 40 * c + 17 * k) % 128;
        const tri = Math.abs(t - 64) * 3;
        const noise = ((x * x * 31 + y * y * 17 + x * y * 7 + c * 101 + k * 13) % 41) - 20;
        const checker = (Math.floor(x / 5) + Math.floor(y / 3) + k) % 2 === 1 ? 24 : 0;
        data[(y * width + x) * 3 + c] = Math.min(255, Math.max(0, tri + noise + checker));
      }
    }
  }
  return { width, height, data };
}

/** The fixture's pictures written as PNGs into `dir`; returns their paths in fixture order. */
export async function writeReferencePictures(dir: string): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const { name, width, height, k } of evalReference.images) {
    const file = path.join(dir, name);
    await sharp(referencePicture(width, height, k).data, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(file);
    files.push(file);
  }
  return files;
}

/** The fixture rows at one scale, in image order. */
export function referenceRows(scale: 2 | 4): ReferenceRow[] {
  return evalReference.scores.filter((r) => r.scale === scale);
}

/** The alpha plane eval_reference.py enlarges: ((5i + 3) mod 17) / 16, exact in float32. */
export function referenceAlpha(width: number, height: number): Float32Array {
  return Float32Array.from({ length: width * height }, (_, i) => ((5 * i + 3) % 17) / 16);
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** `img` with `border` pixels shaved from every side (RGB bytes). */
export function shaved(img: RgbImage, border: number): Uint8Array {
  const w = img.width - 2 * border;
  const h = img.height - 2 * border;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    out.set(img.data.subarray(((y + border) * img.width + border) * 3, ((y + border) * img.width + border + w) * 3), y * w * 3);
  return out;
}

/**
 * Tolerances against the fixture: the images compared are byte-identical, so only float64 summation order
 * differs (measured ≤ 2e-14); one LR byte off by 1 moves PSNR-Y by ~1e-4 dB.
 */
export const PSNR_TOL = 1e-6;
export const SSIM_TOL = 1e-9;
