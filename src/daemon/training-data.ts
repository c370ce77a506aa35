// Where a run's patches come from: a data set made by `srgan prepare`, a folder of photos, or the demo
// set; which images are held out for validation; and the fixed pair the monitor's preview strip shows.

import fs from 'node:fs';
import path from 'node:path';
import { listImages } from '../data/image/files.js';
import { listPatchesBySource, listPatchFiles, MANIFEST_FILE } from '../data/prepare/manifest.js';
import { generateDemoData } from '../data/demo/generate.js';
import { crop, loadRgb } from '../data/image/patches.js';
import type { RgbImage } from '../data/image/rgb-image.js';
import { downscale } from '../data/image/degrade.js';
import { deriveSeed, mulberry32 } from '../util/prng.js';
import type { RunConfig } from '../config/presets.js';
import { SrganError } from '../util/errors.js';

const PREVIEW_HR = 128;

export interface TrainingData {
  kind: 'prepared' | 'photos';
  /** What the loader visits, in a stable order. */
  files: string[];
  /** Held out for validation, never trained on. */
  val: string[];
  /** Crops per visit: 1 for prepared patches, `patchesPerImage` for photos. */
  patchesPerImage: number;
}

/**
 * What the loader reads: a prepared DATA_DIR (its manifest's patches, one crop each per epoch), a
 * folder of photos (`patchesPerImage` crops per visit), or the demo set; and the images held out for
 * validation (chosen by the seed, never trained on).
 */
export async function trainingData(cfg: RunConfig, demoDir: string, log: (line: string) => void): Promise<TrainingData> {
  const dir = cfg.dataDir;
  let all: string[];
  let kind: 'prepared' | 'photos' = 'photos';
  if (dir) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      throw new SrganError('SRGAN_ERR_CONFIG', `config field "dataDir": ${dir} is not a directory`);
    }
    if (fs.existsSync(path.join(dir, MANIFEST_FILE))) {
      kind = 'prepared';
      all = listPatchFiles(dir);
      if (all.length === 0)
        throw new SrganError('SRGAN_ERR_DATA', `${dir} is a prepared data set with no patches yet (run srgan prepare to completion)`);
    } else {
      all = listImages(dir);
      if (all.length === 0) throw new SrganError('SRGAN_ERR_DATA', `no images (png, jpeg, webp, tiff, gif, avif) under ${dir}`);
    }
  } else {
    log(`making the demo data set in ${demoDir}`);
    all = await generateDemoData(demoDir, {
      seed: cfg.seed,
      onProgress: (done, total) => done === total && log(`demo data: ${total} images`),
    });
  }
  // Hold out at most a quarter, and never the last training image.
  const nVal = Math.min(cfg.valEvery > 0 ? cfg.valImages : 0, Math.floor((all.length - 1) / 4));
  const rand = mulberry32(deriveSeed(cfg.seed, 7));
  const split = kind === 'prepared' && nVal > 0 ? holdOutPhotos(listPatchesBySource(dir!), nVal, rand, log) : null;
  if (split) return { kind, ...split, patchesPerImage: 1 };
  const held = new Set(shuffled(all.length, rand).slice(0, nVal));
  return {
    kind,
    files: all.filter((_, i) => !held.has(i)),
    val: all.filter((_, i) => held.has(i)),
    patchesPerImage: kind === 'prepared' ? 1 : cfg.patchesPerImage,
  };
}

/** 0..n-1 in a seeded Fisher–Yates order. */
function shuffled(n: number, rand: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * The validation split of a prepared set, by whole source photo: patches of one photo overlap and share
 * its content, so validating on patches of photos the run trains on rewards memorising them and hides
 * the drift that held-out photos show (docs/degradations.md, "Validation: which images are held out").
 * Photos are held out in a seeded order until they hold `nVal` patches, but never more than a quarter of
 * the photos; `nVal` of their patches, evenly spaced (so across levels), are validated on and none of
 * them is trained on. Null when there are fewer than 4 photos: then single patches are held out, and the
 * log says so.
 */
export function holdOutPhotos(
  patches: readonly { file: string; source: number }[],
  nVal: number,
  rand: () => number,
  log: (line: string) => void,
): { files: string[]; val: string[] } | null {
  const sources = [...new Set(patches.map((p) => p.source))];
  const maxPhotos = Math.floor(sources.length / 4);
  if (maxPhotos === 0) {
    log(
      `validation: ${sources.length} source photo(s), too few to hold one out; validating on ${nVal} patches of photos it also trains on, so val_gain will flatter it`,
    );
    return null;
  }
  const heldPhotos = new Set<number>();
  let heldPatches: { file: string; source: number }[] = [];
  for (const i of shuffled(sources.length, rand)) {
    if (heldPatches.length >= nVal || heldPhotos.size >= maxPhotos) break;
    heldPhotos.add(sources[i]);
    heldPatches = patches.filter((p) => heldPhotos.has(p.source));
  }
  const take = Math.min(nVal, heldPatches.length);
  const val = Array.from({ length: take }, (_, k) => heldPatches[Math.floor((k * heldPatches.length) / take)].file);
  log(
    `validation: ${val.length} patches of ${heldPhotos.size} held-out photo(s) of ${sources.length}; ${heldPatches.length} patches of them are not trained on`,
  );
  return { files: patches.filter((p) => !heldPhotos.has(p.source)).map((p) => p.file), val };
}

/** A fixed centre crop of the first image (and its LR) for the preview strip. */
export async function previewPair(files: string[], cfg: RunConfig): Promise<{ hr: RgbImage; lr: RgbImage } | null> {
  for (const file of files.slice(0, 8)) {
    try {
      const img = await loadRgb(file);
      // A multiple of 16: every generator takes it at ×2 and ×4 (the U-Net needs /8 at LR size too).
      const side = Math.min(PREVIEW_HR, img.width, img.height) & ~31;
      if (side < 16) continue;
      const hr = crop(img, (img.width - side) >> 1, (img.height - side) >> 1, side, side);
      // The standard protocol's LR (MATLAB-style bicubic), the one the bicubic panel and srgan eval use.
      return { hr, lr: downscale(hr, cfg.scale, 'bicubic-aa') };
    } catch {
      /* try the next one */
    }
  }
  return null;
}
