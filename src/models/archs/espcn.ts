// ESPCN-family generators (docs/seed.md §3.1). All convs have bias; LeakyReLU 0.1 after every conv
// but the last; no output activation (the output is unbounded; clip only for display). Layouts:
//
//  plain                conv5 3→C, conv3 C→C, conv3 C→3r², shuffle ×r.
//                       `depth` D adds D more conv3 C→C after the second conv (any layout).
//                       212 656 params for C=128, r=4; 69 488 for C=64, r=4.
//  conv-after-upsample  (the author's v3) conv5 3→C, conv3 C→C, conv3 C→S·r², shuffle ×r → S,
//                       conv3 S→T, conv3 T→3. C=128, S=16, T=64, r=4: 463 491 params.
//  x2x2                 (×4 only) conv5 3→C, conv3 C→C, conv3 C→C, shuffle ×2 → C/4, conv3 C/4→T,
//                       conv3 T→T, shuffle ×2 → T/4, conv3 T/4→T, conv3 T→3.
//                       C=128, T=64: 371 331 params.
//  dilated              plain with the dilated stack (below) at its default d2/d4/d8.
//                       C=128, r=4: 802 992 params.
//
// `dilations` inserts, after conv2 of any layout, one conv3 C→C per listed dilation and then a
// plain conv3 C→C (the author's "d2/d4/d8 stack plus a conv3"; his v3 dilated net used 2, 4, 2).
// The article's conclusions: for ×4 two ×2 steps with convs between beat one ×4 shuffle, convs
// after upsampling help, and a dilated stack widens the receptive field cheaply.
//
// `skip` adds a centre-aligned bilinear enlargement of the input to the output (the network learns
// the residual over it); no gradient flows through the resize, which depends on the input only.
//
// Pixel shuffle is block-major like tf.depthToSpace (docs/seed.md §1); variables are conv1, conv2, …
// in forward order, each seeded by its index (graph.ts 'index' seeding), so `plain` keeps its old init.

import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { generatorFromGraph, type GeneratorGraph, type GraphOps } from './graph.js';
import { ESPCN_LAYOUTS, type EspcnLayout } from '../../config/presets.js';

export type { Generator } from './network.js';

export interface EspcnConfig {
  /** Hidden channels C (the author used 128, the paper 64). */
  channels: number;
  /** Upscaling factor r (x2x2: 4 only). */
  scale: number;
  /** Weight-init seed. */
  seed: number;
  /** Default 'plain'. */
  layout?: EspcnLayout;
  /** Extra conv3 C→C (+ LeakyReLU) after conv2, before any dilated stack: a deeper, VGG-style body. Default 0. */
  depth?: number;
  /** Dilations of the dilated stack; default [2, 4, 8] for 'dilated', [] (no stack) otherwise. */
  dilations?: readonly number[];
  /** T: channels of the convs after upsampling (x2x2, conv-after-upsample). Default 64. */
  tailChannels?: number;
  /** S: channels right after the shuffle in conv-after-upsample. Default 16. */
  shuffleChannels?: number;
  /** Add a bilinear enlargement of the input to the output. Default false. */
  skip?: boolean;
}

const LRELU = 0.1;

/** The ESPCN-family network `cfg` describes (its seed aside). Throws RangeError naming a bad field. */
export function espcnGraph(cfg: Omit<EspcnConfig, 'seed'>): GeneratorGraph {
  const c = positiveInt('espcn.channels', cfg.channels);
  const r = positiveInt('espcn.scale', cfg.scale);
  const layout = cfg.layout ?? 'plain';
  if (!ESPCN_LAYOUTS.includes(layout)) {
    throw new RangeError(`espcn.layout must be one of ${ESPCN_LAYOUTS.join(', ')}, got ${JSON.stringify(cfg.layout)}`);
  }
  const dilations = cfg.dilations ?? (layout === 'dilated' ? [2, 4, 8] : []);
  if (!Array.isArray(dilations)) throw new RangeError(`espcn.dilations must be an array, got ${JSON.stringify(cfg.dilations)}`);
  (dilations as readonly unknown[]).forEach((d, i) => positiveInt(`espcn.dilations[${i}]`, d));
  const t = positiveInt('espcn.tailChannels', cfg.tailChannels ?? 64);
  const s = positiveInt('espcn.shuffleChannels', cfg.shuffleChannels ?? 16);
  const depth = cfg.depth ?? 0;
  if (!Number.isInteger(depth) || depth < 0) {
    throw new RangeError(`espcn.depth must be a non-negative integer, got ${JSON.stringify(cfg.depth)}`);
  }
  const skip = cfg.skip ?? false;
  if (typeof skip !== 'boolean') throw new RangeError(`espcn.skip must be a boolean, got ${JSON.stringify(cfg.skip)}`);
  if (layout === 'x2x2') {
    if (r !== 4) throw new RangeError(`espcn.scale must be 4 for layout 'x2x2', got ${r}`);
    if (c % 4 !== 0) throw new RangeError(`espcn.channels must be divisible by 4 for layout 'x2x2', got ${c}`);
    if (t % 4 !== 0) throw new RangeError(`espcn.tailChannels must be divisible by 4 for layout 'x2x2', got ${t}`);
  }

  return {
    scale: r,
    seeding: 'index',
    forward<T>(o: GraphOps<T>, x: T): T {
      let n = 0;
      let h = x;
      const conv = (k: number, cout: number, act = true, dilation = 1): void => {
        n++;
        h = o.conv(`conv${n}`, h, k, cout, dilation);
        if (act) h = o.leaky(h, LRELU);
      };
      conv(5, c);
      conv(3, c);
      for (let i = 0; i < depth; i++) conv(3, c);
      if (dilations.length > 0) {
        for (const d of dilations as readonly number[]) conv(3, c, true, d);
        conv(3, c);
      }
      switch (layout) {
        case 'plain':
        case 'dilated':
          conv(3, 3 * r * r, false);
          h = o.pixelShuffle(h, r);
          break;
        case 'conv-after-upsample':
          conv(3, s * r * r);
          h = o.pixelShuffle(h, r);
          conv(3, t);
          conv(3, 3, false);
          break;
        case 'x2x2':
          conv(3, c);
          h = o.pixelShuffle(h, 2);
          conv(3, t);
          conv(3, t);
          h = o.pixelShuffle(h, 2);
          conv(3, t);
          conv(3, 3, false);
          break;
      }
      return skip ? o.add(h, o.resizeBilinear(x, r)) : h;
    },
  };
}

/** Builds an ESPCN-family generator with PyTorch-default init (U(±1/√fan_in)) drawn from `cfg.seed`. */
export function createEspcn(cfg: EspcnConfig): Generator {
  const seed = integerSeed('espcn.seed', cfg.seed);
  return generatorFromGraph(espcnGraph(cfg), seed);
}
