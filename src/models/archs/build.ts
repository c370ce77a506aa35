// Builds the networks a run config names. Pure functions of the config (and a seed).

import { espcnGraph } from './espcn.js';
import { finalGeneratorGraph } from './generator-final.js';
import { rrdbNetGraph } from './rrdbnet.js';
import { compactGraph } from './compact.js';
import { createDilatedDiscriminator, createPatchDiscriminator } from './discriminator.js';
import { createUNetDiscriminator } from './unet-discriminator.js';
import { generatorFromGraph, type GeneratorGraph } from './graph.js';
import type { Discriminator, Generator } from './network.js';
import type { DiscriminatorConfig, GeneratorConfig } from '../../config/presets.js';

/**
 * The network `cfg` describes at `scale`: the one description that both the generator and its
 * LayersModel export (models/io/export-layers.ts) are read from. Checks every field, so a config from
 * an untrusted file gets a RangeError naming the wrong one.
 */
export function generatorGraph(cfg: GeneratorConfig, scale: 2 | 4): GeneratorGraph {
  if (scale !== 2 && scale !== 4) throw new RangeError(`scale must be 2 or 4, got ${JSON.stringify(scale)}`);
  switch (cfg?.kind) {
    case 'espcn':
      return espcnGraph({ channels: cfg.channels, scale, layout: cfg.layout, depth: cfg.depth ?? 0, skip: cfg.skip });
    case 'final':
      if (scale !== 2) throw new RangeError(`the final generator upscales ×2 only, got scale ${scale}`);
      return finalGeneratorGraph({ channels: cfg.channels, blocks: cfg.blocks, dilatedBlocks: cfg.dilatedBlocks });
    case 'rrdbnet':
      return rrdbNetGraph({ channels: cfg.channels, growth: cfg.growth, blocks: cfg.blocks, scale });
    case 'compact':
      return compactGraph({ channels: cfg.channels, convs: cfg.convs, scale });
    default:
      throw new RangeError(
        `generator.kind must be espcn, final, rrdbnet or compact, got ${JSON.stringify((cfg as { kind?: unknown } | undefined)?.kind)}`,
      );
  }
}

/**
 * The generator of `cfg`, upscaling by `scale`. `recompute`: gradient checkpointing of the deep
 * generators' blocks (recompute.ts; ESPCN has none), for training; the values are the same either way.
 */
export function buildGenerator(cfg: GeneratorConfig, scale: 2 | 4, seed: number, recompute = false): Generator {
  return generatorFromGraph(generatorGraph(cfg, scale), seed, recompute);
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
