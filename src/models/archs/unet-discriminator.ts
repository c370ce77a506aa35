// Real-ESRGAN's U-Net discriminator with spectral norm, UNetDiscriminatorSN (docs/seed.md §10.2):
// per-pixel logits at input resolution. LeakyReLU 0.2 everywhere, nf = num_feat:
//   x0 = LReLU(conv0 3×3 3→nf, bias, no SN)
//   x1, x2, x3 = LReLU(SN conv 4×4 s2 p1, no bias): nf→2nf, 2nf→4nf, 4nf→8nf (H/2, H/4, H/8)
//   x4 = LReLU(SN conv3 8nf→4nf (up(x3))) + x2; x5 = LReLU(SN conv3 4nf→2nf (up(x4))) + x1;
//   x6 = LReLU(SN conv3 2nf→nf (up(x5))) + x0   (the "+ skip" only with skipConnection)
//   out = conv9 3×3 nf→1 with bias, no SN (LReLU(SN conv8(LReLU(SN conv7(x6))))), both nf→nf
// up = bilinear ×2 with half-pixel centres (PyTorch align_corners=False), ops.ts
// upsampleBilinear2x: equal to tf.image.resizeBilinear(x, [2h, 2w], false, true) forward, but
// built from ops with correct gradients (tfjs 4.22's ResizeBilinearGrad ignores halfPixelCenters).
// Inputs must be divisible by 8 in H and W (PyTorch's skip additions fail otherwise).
// nf = 64: 4 376 897 trainable parameters (plus the u, v vectors of the 8 SN layers, in `stats`).
// Spectral norm and its u/v side channel: spectral-norm.ts; commitStats() assigns the vectors.

import * as tf from '@tensorflow/tfjs-core';
import type { ApplyOptions, Discriminator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { applyConv, convFlops, countParams, createConv, nameSeed, upsampleBilinear2x, type ConvLayer, type ConvSpec } from './ops.js';
import { createSpectralNorm, spectralNormalise, type SpectralNormState } from './spectral-norm.js';
import { StatUpdates } from './stat-updates.js';

export interface UNetDiscriminatorConfig {
  /** num_feat. Default 64. */
  channels?: number;
  /** Add the encoder features to the decoder's (Real-ESRGAN's default). Default true. */
  skipConnection?: boolean;
  /** Weight-init seed (and of the initial u, v). */
  seed: number;
}

const LRELU = 0.2;

interface Layer {
  conv: ConvLayer;
  sn: SpectralNormState | null;
}

/** Builds the U-Net discriminator with PyTorch-default conv init drawn from `cfg.seed`. */
export function createUNetDiscriminator(cfg: UNetDiscriminatorConfig): Discriminator {
  const nf = positiveInt('unetDiscriminator.channels', cfg.channels ?? 64);
  const skip = cfg.skipConnection ?? true;
  if (typeof skip !== 'boolean') {
    throw new RangeError(`unetDiscriminator.skipConnection must be a boolean, got ${JSON.stringify(cfg.skipConnection)}`);
  }
  const seed = integerSeed('unetDiscriminator.seed', cfg.seed);

  const variables: Record<string, tf.Variable> = {};
  const stats: Record<string, tf.Variable> = {};
  const layer = (name: string, spec: ConvSpec, sn: boolean): Layer => {
    const conv = createConv(variables, name, spec, nameSeed(seed, name));
    return { conv, sn: sn ? createSpectralNorm(stats, `${name}.sn`, conv.w.shape, nameSeed(seed, `${name}.sn`)) : null };
  };
  const down = (cin: number, cout: number): ConvSpec => ({ k: 4, cin, cout, stride: 2, pad: 1, bias: false });
  const plain = (cin: number, cout: number): ConvSpec => ({ k: 3, cin, cout, bias: false });

  const conv0 = layer('conv0', { k: 3, cin: 3, cout: nf }, false);
  const conv1 = layer('conv1', down(nf, 2 * nf), true);
  const conv2 = layer('conv2', down(2 * nf, 4 * nf), true);
  const conv3 = layer('conv3', down(4 * nf, 8 * nf), true);
  const conv4 = layer('conv4', plain(8 * nf, 4 * nf), true);
  const conv5 = layer('conv5', plain(4 * nf, 2 * nf), true);
  const conv6 = layer('conv6', plain(2 * nf, nf), true);
  const conv7 = layer('conv7', plain(nf, nf), true);
  const conv8 = layer('conv8', plain(nf, nf), true);
  const conv9 = layer('conv9', { k: 3, cin: nf, cout: 1 }, false);
  const updates = new StatUpdates();

  const outputSize = (h: number, w: number): [number, number] => {
    if (!(h % 8 === 0 && w % 8 === 0 && h > 0 && w > 0)) {
      throw new RangeError(`unetDiscriminator.apply: input height and width must be positive multiples of 8, got ${h}×${w}`);
    }
    return [h, w];
  };

  const apply = (x: tf.Tensor4D, opts: ApplyOptions): tf.Tensor4D => {
    if (opts == null || typeof opts.training !== 'boolean') {
      throw new TypeError(`unetDiscriminator.apply: opts.training must be a boolean, got ${JSON.stringify(opts)}`);
    }
    updates.commit();
    outputSize(x.shape[1], x.shape[2]);
    return tf.tidy(() => {
      const run = (l: Layer, h: tf.Tensor4D, act = true): tf.Tensor4D => {
        const w = l.sn === null ? (l.conv.w as tf.Tensor4D) : spectralNormalise(l.conv.w as tf.Tensor4D, l.sn, opts.training, updates);
        const y = applyConv(l.conv, h, w);
        return act ? tf.leakyRelu(y, LRELU) : y;
      };
      const join = (h: tf.Tensor4D, s: tf.Tensor4D): tf.Tensor4D => (skip ? tf.add(h, s) : h);
      const x0 = run(conv0, x);
      const x1 = run(conv1, x0);
      const x2 = run(conv2, x1);
      const x3 = run(conv3, x2);
      const x4 = join(run(conv4, upsampleBilinear2x(x3)), x2);
      const x5 = join(run(conv5, upsampleBilinear2x(x4)), x1);
      const x6 = join(run(conv6, upsampleBilinear2x(x5)), x0);
      return run(conv9, run(conv8, run(conv7, x6)), false);
    });
  };

  const flopsPerForward = (h: number, w: number): number => {
    const f = (l: Layer, s: number) => convFlops(l.conv, h / s, w / s);
    return (
      f(conv0, 1) +
      f(conv1, 1) +
      f(conv2, 2) +
      f(conv3, 4) +
      f(conv4, 4) +
      f(conv5, 2) +
      f(conv6, 1) +
      f(conv7, 1) +
      f(conv8, 1) +
      f(conv9, 1)
    );
  };

  return {
    variables,
    stats,
    apply,
    commitStats: () => updates.commit(),
    outputSize,
    paramCount: countParams(variables),
    flopsPerForward: (h, w) => {
      outputSize(h, w);
      return flopsPerForward(h, w);
    },
    dispose: () => {
      updates.dispose();
      Object.values(variables).forEach((t) => t.dispose());
      Object.values(stats).forEach((t) => t.dispose());
    },
  };
}
