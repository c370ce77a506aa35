// Builds the networks a run config names. Pure functions of the config (and a seed).

import { createEspcn } from './espcn.js';
import { createFinalGenerator } from './generator-final.js';
import { createRrdbNet } from './rrdbnet.js';
import { createDilatedDiscriminator, createPatchDiscriminator } from './discriminator.js';
import { createUNetDiscriminator } from './unet-discriminator.js';
import * as tf from '@tensorflow/tfjs-core';
import type { Discriminator, Generator } from './network.js';
import type { DiscriminatorConfig, GeneratorConfig } from '../../config/presets.js';

/**
 * The generator of `cfg`, upscaling by `scale`. `recompute`: gradient checkpointing of the deep
 * generators' blocks (recompute.ts; ESPCN has none), for training; the values are the same either way.
 */
export function buildGenerator(cfg: GeneratorConfig, scale: 2 | 4, seed: number, recompute = false): Generator {
  switch (cfg.kind) {
    case 'espcn': {
      const g = createEspcn({ channels: cfg.channels, scale, seed, layout: cfg.layout, depth: cfg.depth ?? 0 });
      return cfg.skip ? withBilinearSkip(g) : g;
    }
    case 'final':
      if (scale !== 2) throw new RangeError(`the final generator upscales ×2 only, got scale ${scale}`);
      return createFinalGenerator({ channels: cfg.channels, blocks: cfg.blocks, dilatedBlocks: cfg.dilatedBlocks, seed, recompute });
    case 'rrdbnet':
      return createRrdbNet({ channels: cfg.channels, growth: cfg.growth, blocks: cfg.blocks, scale, seed, recompute });
  }
}

/** The discriminator of `cfg`. */
export function buildDiscriminator(cfg: DiscriminatorConfig, seed: number): Discriminator {
  switch (cfg.kind) {
    case 'patch':
      return createPatchDiscriminator({ mid: cfg.mid, seed });
    case 'dilated':
      return createDilatedDiscriminator({ mid: cfg.mid, seed });
    case 'unet':
      return createUNetDiscriminator({ channels: cfg.channels, seed });
  }
}

/**
 * G(x) + bilinear(x): the network learns the residual over a centre-aligned bilinear enlargement. The
 * enlargement depends on the input only, so no gradient flows through tfjs' resize (whose gradient with
 * half-pixel centres is wrong, see ops.ts).
 */
function withBilinearSkip(g: Generator): Generator {
  return {
    ...g,
    apply: (x) =>
      tf.tidy(() => {
        const [, h, w] = x.shape;
        const up = tf.image.resizeBilinear(x, [h * g.scale, w * g.scale], false, true);
        return tf.add(g.apply(x), up) as tf.Tensor4D;
      }),
  };
}
