// Validation (docs/config.md): PSNR-Y (border = scale, BasicSR's convention) of the EMA generator on the
// held-out centre crops, with the bicubic enlargement of the same LR as the baseline, under the standard
// protocol (MATLAB-style bicubic LR) and under one draw per image of the training mix.

import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '../config/presets.js';
import type { Gan } from '../models/train/gan.js';
import { deriveSeed, mulberry32 } from '../util/prng.js';
import { downscale, drawLrSynthesis } from '../data/image/degrade.js';
import { crop, loadRgb, upscaleBicubic } from '../data/image/patches.js';
import type { RgbImage } from '../data/image/rgb-image.js';
import { psnrY } from '../data/image/quality.js';

/** Validation crops: the centre of each held-out image, at most this many HR pixels on a side. */
const VAL_SIDE = 256;

/** A held-out crop, its LR and the PSNR-Y of the bicubic enlargement of that LR (the baseline). */
interface ValPair {
  hr: RgbImage;
  lr: RgbImage;
  bicubic: number;
}

/** The generator's output (EMA weights) for an 8-bit LR image, as an 8-bit image. */
export async function generateRgb(gan: Gan, lr: RgbImage): Promise<RgbImage> {
  const y = tf.tidy(() => {
    const x = tf.tensor4d(
      Float32Array.from(lr.data, (v) => v / 255),
      [1, lr.height, lr.width, 3],
    );
    return tf.round(tf.mul(gan.generate(x), 255));
  });
  let out: ArrayLike<number>;
  try {
    out = await y.data(); // asynchronous: a GPU backend has no blocking read in Node
  } finally {
    y.dispose();
  }
  const s = gan.config.scale;
  return { width: lr.width * s, height: lr.height * s, data: Uint8Array.from(out) };
}

export class Validation {
  readonly #scale: number;
  readonly #std: ValPair[];
  readonly #mix: ValPair[];

  private constructor(scale: number, std: ValPair[], mix: ValPair[]) {
    this.#scale = scale;
    this.#std = std;
    this.#mix = mix;
  }

  /** Loads the held-out images once (none when valEvery is 0); a file that fails is left out with `warn`. */
  static async load(config: RunConfig, files: readonly string[], warn: (message: string) => void): Promise<Validation> {
    const std: ValPair[] = [];
    const mix: ValPair[] = [];
    const mixRand = mulberry32(deriveSeed(config.seed, 12));
    const s = config.scale;
    const pair = (hr: RgbImage, lr: RgbImage): ValPair => ({ hr, lr, bicubic: psnrY(upscaleBicubic(lr, s), hr, s) });
    for (const file of config.valEvery > 0 ? files : []) {
      try {
        const img = await loadRgb(file);
        const w = Math.min(VAL_SIDE, img.width) - (Math.min(VAL_SIDE, img.width) % (s * 8));
        const h = Math.min(VAL_SIDE, img.height) - (Math.min(VAL_SIDE, img.height) % (s * 8));
        if (w < 32 || h < 32) continue;
        const hr = crop(img, (img.width - w) >> 1, (img.height - h) >> 1, w, h);
        const how = drawLrSynthesis(config.lrFilter, config.lrBlur, mixRand);
        std.push(pair(hr, downscale(hr, s, 'bicubic-aa')));
        mix.push(pair(hr, downscale(hr, s, how.filter, how.blur)));
      } catch (err) {
        warn(`validation image left out: ${(err as Error).message}`);
      }
    }
    return new Validation(s, std, mix);
  }

  /** How many held-out images there are (0: validation is off). */
  get size(): number {
    return this.#std.length;
  }

  /** val_psnr, val_bicubic and val_gain (standard protocol), val_psnr_mix and val_gain_mix (training mix). */
  async measure(gan: Gan): Promise<Record<string, number>> {
    const mean = async (pairs: ValPair[]) => {
      let model = 0;
      let bicubic = 0;
      for (const p of pairs) {
        model += psnrY(await generateRgb(gan, p.lr), p.hr, this.#scale);
        bicubic += p.bicubic;
      }
      return { model: model / pairs.length, bicubic: bicubic / pairs.length };
    };
    const std = await mean(this.#std);
    const mix = await mean(this.#mix);
    return {
      val_psnr: std.model,
      val_bicubic: std.bicubic,
      val_gain: std.model - std.bicubic,
      val_psnr_mix: mix.model,
      val_gain_mix: mix.model - mix.bicubic,
    };
  }
}
