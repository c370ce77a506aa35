// Patch-loader worker (a piscina task entry). Each task visits a few images, cuts random HR patches,
// makes their LR inputs, and writes msgpack frames straight into the shared ring. Nothing goes back
// through postMessage but a small summary.

import { workerData } from 'piscina';
import { SharedRing } from '../protocol/ring.js';
import { encodeFrameInto, encodeSkipInto } from '../protocol/codec.js';
import type { LoaderResult, LoaderTask, LoaderWorkerData } from '../protocol/loader-task.js';
import { augment, loadRgb, randomCrop } from '../data/image/patches.js';
import type { RgbImage } from '../data/image/rgb-image.js';
import { downscale, drawLrSynthesis } from '../data/image/degrade.js';
import { deriveSeed, mulberry32 } from '../util/prng.js';
import { SrganError } from '../util/errors.js';

let ring: SharedRing | null = null;
// Decoded images, kept while they fit: the demo set and small folders are visited many times.
const cache = new Map<string, RgbImage>();
let cachedBytes = 0;
const CACHE_LIMIT = 256 << 20;

async function load(file: string): Promise<RgbImage> {
  const hit = cache.get(file);
  if (hit) return hit;
  const img = await loadRgb(file);
  if (cachedBytes + img.data.length <= CACHE_LIMIT) {
    cache.set(file, img);
    cachedBytes += img.data.length;
  }
  return img;
}

export default async function loaderTask(task: LoaderTask): Promise<LoaderResult> {
  ring ??= SharedRing.attach((workerData as LoaderWorkerData).ring);
  const result: LoaderResult = { written: 0, unwritten: [], failed: [], closed: false };
  const ppi = task.patchesPerImage;
  for (let i = 0; i < task.items.length; i++) {
    const item = task.items[i];
    try {
      let img: RgbImage | null = null;
      if (!item.skip) {
        try {
          img = await load(item.file);
          if (img.width < task.patchSize || img.height < task.patchSize) {
            throw new SrganError('SRGAN_ERR_DATA', `${item.file}: ${img.width}×${img.height} is smaller than a ${task.patchSize} px patch`);
          }
        } catch (err) {
          result.failed.push({ file: item.file, message: (err as Error).message });
          img = null;
        }
      }
      if (!img) {
        // The trainer takes patches in sequence order: tell it these will never come.
        encodeSkipInto(ring, { type: 'skip', seq: item.pos * ppi, count: ppi, index: item.index }, task.writeTimeoutMs);
        continue;
      }
      const rand = mulberry32(deriveSeed(deriveSeed(task.seed, item.epoch), item.index));
      for (let p = 0; p < ppi; p++) {
        const hr = augment(randomCrop(img, task.patchSize, rand), rand);
        // Drawn from the patch's own stream after its crop: a function of the seed and the patch's place
        // in the data sequence, so a resumed run makes the same LR (the checkpoint holds the position).
        const how = drawLrSynthesis(task.lrFilter, task.lrBlur, rand);
        const lr = downscale(hr, task.scale, how.filter, how.blur);
        encodeFrameInto(
          ring,
          {
            type: 'patch',
            seq: item.pos * ppi + p,
            epoch: item.epoch,
            index: item.index,
            hr: { width: hr.width, height: hr.height, channels: 3, data: hr.data },
            lr: { width: lr.width, height: lr.height, channels: 3, data: lr.data },
          },
          task.writeTimeoutMs,
        );
        result.written++;
      }
    } catch (err) {
      const code = (err as SrganError).code;
      if (code === 'SRGAN_ERR_RING_CLOSED') {
        result.closed = true;
        return result;
      }
      if (code === 'SRGAN_ERR_RING_TIMEOUT') {
        // Patches of this item already in the ring come again on the retry; the trainer drops them.
        result.unwritten = task.items.slice(i);
        return result;
      }
      throw err;
    }
  }
  return result;
}
