// The monitor's preview strip (patches.ts previewStrip, drawn by the trainer from training-data.ts's
// previewPair): its panels, their order and sizes, and that its bicubic panel is the bicubic srgan eval
// scores — the same LR (the standard protocol's MATLAB-style bicubic) and the same centre-aligned Keys
// enlargement, pixel for pixel, which test/fixtures/eval_reference.py computed independently.

import fs from 'node:fs';
import path from 'node:path';

import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { previewPair } from '../../src/daemon/training-data.js';
import { downscale } from '../../src/data/image/degrade.js';
import {
  crop,
  encodePng,
  loadRgb,
  PREVIEW_FILL,
  PREVIEW_GAP,
  PREVIEW_PANELS,
  previewStrip,
  upscaleBicubic,
  upscaleNearest,
} from '../../src/data/image/patches.js';
import type { RgbImage } from '../../src/data/image/rgb-image.js';
import { mulberry32 } from '../../src/util/prng.js';
import { psnrY } from '../../src/data/image/quality.js';
import { evaluate } from '../../src/models/infer/evaluate.js';
import type { RunConfig } from '../../src/config/presets.js';
import { evalReference, referencePicture, sha256, shaved } from '../support/eval-reference.js';
import { make } from '../support/reference.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-preview-');
afterAll(() => tmp.cleanup());

/** A photo-like picture: smooth colour with noise in every channel, seeded. */
async function writePicture(name: string, w: number, h: number, seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) {
    const x = Math.floor(i / 3) % w;
    const y = Math.floor(i / 3 / w);
    data[i] = Math.round(128 + 70 * Math.sin(x / (4 + (i % 3)) - y / 7) + 30 * (rand() - 0.5));
  }
  const file = path.join(tmp.dir, name);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

/** Panel k of a strip of four equal panels of width `w`. */
const panel = (strip: RgbImage, k: number, w: number): RgbImage => crop(strip, k * (w + PREVIEW_GAP), 0, w, strip.height);

describe('previewStrip', () => {
  for (const scale of [2, 4] as const) {
    it(`×${scale}: nearest LR | bicubic of the standard-protocol LR | model | HR, and the bicubic panel is srgan eval's bicubic`, async () => {
      const file = await writePicture(`photo-x${scale}.png`, 150, 141, scale);
      const pair = (await previewPair([file], { scale } as RunConfig))!;
      // previewPair: the centre 128×128 crop and its LR by the standard protocol.
      const img = await loadRgb(file);
      expect(pair.hr).toEqual(crop(img, 11, 6, 128, 128));
      expect(pair.lr).toEqual(downscale(pair.hr, scale, 'bicubic-aa'));

      // A model output that is none of the other panels.
      const model = make(128, 128, (x, y) => [x, y, 200]);
      const strip = previewStrip(pair, model, scale);
      expect(PREVIEW_PANELS).toEqual(['low-res input', 'bicubic', 'model output', 'original']);
      expect([strip.width, strip.height]).toEqual([4 * 128 + 3 * PREVIEW_GAP, 128]);
      expect(panel(strip, 0, 128)).toEqual(upscaleNearest(pair.lr, scale));
      const bicubic = panel(strip, 1, 128);
      expect(bicubic).toEqual(upscaleBicubic(downscale(pair.hr, scale, 'bicubic-aa'), scale));
      expect(panel(strip, 2, 128)).toEqual(model);
      expect(panel(strip, 3, 128)).toEqual(pair.hr);
      // The gaps are PREVIEW_FILL grey.
      for (let k = 1; k < 4; k++) {
        const gap = crop(strip, k * 128 + (k - 1) * PREVIEW_GAP, 0, PREVIEW_GAP, 128);
        expect(gap.data.every((v) => v === PREVIEW_FILL)).toBe(true);
      }

      // srgan eval's bicubic row on the preview's HR (already a multiple of the scale) scores exactly the
      // bicubic panel: same LR, same enlargement.
      const hrFile = path.join(tmp.dir, `preview-hr-x${scale}.png`);
      fs.writeFileSync(hrFile, await encodePng(pair.hr));
      const res = await evaluate(null, [hrFile], { scale });
      expect(res.rows[0].bicubic.psnr).toBe(psnrY(bicubic, pair.hr, scale));
    });
  }

  it('on non-square images: panels W×H in order, the LR pixels repeated, and a bicubic panel as computed outside this code', () => {
    // test/fixtures/eval_reference.py: MATLAB imresize's bicubic ÷s then ×s, in NumPy (its hash covers the
    // region srgan eval scores; src/ clamps where imresize mirrors, which differs only in the border).
    for (const ref of evalReference.scores) {
      const spec = evalReference.images.find((im) => im.name === ref.image)!;
      const hr = crop(referencePicture(spec.width, spec.height, spec.k), 0, 0, ref.width, ref.height);
      const lr = downscale(hr, ref.scale, 'bicubic-aa');
      const model = make(ref.width, ref.height, (x, y) => [(7 * x) % 256, (5 * y) % 256, 99]);
      const strip = previewStrip({ hr, lr }, model, ref.scale);
      const what = `${ref.image} ×${ref.scale}`;
      expect([strip.width, strip.height], what).toEqual([4 * ref.width + 3 * PREVIEW_GAP, ref.height]);
      const nearest = panel(strip, 0, ref.width);
      for (let y = 0; y < ref.height; y++) {
        for (let x = 0; x < ref.width; x++) {
          const at = (y * ref.width + x) * 3;
          const from = (Math.floor(y / ref.scale) * lr.width + Math.floor(x / ref.scale)) * 3;
          expect([...nearest.data.subarray(at, at + 3)], `${what} (${x}, ${y})`).toEqual([...lr.data.subarray(from, from + 3)]);
        }
      }
      expect(sha256(shaved(panel(strip, 1, ref.width), ref.scale)), what).toBe(ref.bicubicShavedSha256);
      expect(panel(strip, 2, ref.width), what).toEqual(model);
      expect(panel(strip, 3, ref.width), what).toEqual(hr);
    }
  });

  it('rejects a model output or HR of the wrong size', () => {
    const lr = make(8, 8, () => [1, 2, 3]);
    const hr = make(16, 16, () => [1, 2, 3]);
    expect(() =>
      previewStrip(
        { hr, lr },
        make(16, 14, () => [0, 0, 0]),
        2,
      ),
    ).toThrow(/model: expected 16×16 .* got 16×14/);
    expect(() => previewStrip({ hr: make(32, 32, () => [0, 0, 0]), lr }, hr, 2)).toThrow(/pair\.hr: expected 16×16/);
  });
});
