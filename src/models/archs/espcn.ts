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
// Pixel shuffle is block-major like tf.depthToSpace (docs/seed.md §1); variables are conv1, conv2, …
// in forward order, each seeded by its index (deriveSeed(seed, i)), so `plain` keeps its old init.

import * as tf from '@tensorflow/tfjs-core';
import { deriveSeed } from '../../util/prng.js';
import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { applyConv, convFlops, countParams, createConv, pixelShuffle, type ConvLayer, type ConvSpec } from './ops.js';
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
}

const LRELU = 0.1;

type Step = { conv: ConvSpec; act: boolean } | { shuffle: number };

function plan(cfg: EspcnConfig): Step[] {
  const c = positiveInt('espcn.channels', cfg.channels);
  const r = positiveInt('espcn.scale', cfg.scale);
  const layout = cfg.layout ?? 'plain';
  if (!ESPCN_LAYOUTS.includes(layout)) {
    throw new RangeError(`espcn.layout must be one of ${ESPCN_LAYOUTS.join(', ')}, got ${JSON.stringify(cfg.layout)}`);
  }
  const dilations = cfg.dilations ?? (layout === 'dilated' ? [2, 4, 8] : []);
  if (!Array.isArray(dilations)) throw new RangeError(`espcn.dilations must be an array, got ${JSON.stringify(cfg.dilations)}`); // narrows to any[]: cast back below
  dilations.forEach((d, i) => positiveInt(`espcn.dilations[${i}]`, d));
  const t = positiveInt('espcn.tailChannels', cfg.tailChannels ?? 64);
  const s = positiveInt('espcn.shuffleChannels', cfg.shuffleChannels ?? 16);

  const conv = (k: number, cin: number, cout: number, act = true, dilation = 1): Step => ({ conv: { k, cin, cout, dilation }, act });
  const depth = cfg.depth ?? 0;
  if (!Number.isInteger(depth) || depth < 0)
    throw new RangeError(`espcn.depth must be a non-negative integer, got ${JSON.stringify(cfg.depth)}`);
  const steps: Step[] = [conv(5, 3, c), conv(3, c, c)];
  for (let i = 0; i < depth; i++) steps.push(conv(3, c, c));
  if (dilations.length > 0) {
    for (const d of dilations as readonly number[]) steps.push(conv(3, c, c, true, d));
    steps.push(conv(3, c, c));
  }
  switch (layout) {
    case 'plain':
    case 'dilated':
      steps.push(conv(3, c, 3 * r * r, false), { shuffle: r });
      break;
    case 'conv-after-upsample':
      steps.push(conv(3, c, s * r * r), { shuffle: r }, conv(3, s, t), conv(3, t, 3, false));
      break;
    case 'x2x2':
      if (r !== 4) throw new RangeError(`espcn.scale must be 4 for layout 'x2x2', got ${r}`);
      if (c % 4 !== 0) throw new RangeError(`espcn.channels must be divisible by 4 for layout 'x2x2', got ${c}`);
      if (t % 4 !== 0) throw new RangeError(`espcn.tailChannels must be divisible by 4 for layout 'x2x2', got ${t}`);
      steps.push(conv(3, c, c), { shuffle: 2 }, conv(3, c / 4, t), conv(3, t, t), { shuffle: 2 }, conv(3, t / 4, t), conv(3, t, 3, false));
      break;
  }
  return steps;
}

/** Builds an ESPCN-family generator with PyTorch-default init (U(±1/√fan_in)) drawn from `cfg.seed`. */
export function createEspcn(cfg: EspcnConfig): Generator {
  const steps = plan(cfg);
  const seed = integerSeed('espcn.seed', cfg.seed);
  const variables: Record<string, tf.Variable> = {};
  let n = 0;
  const built: Array<{ layer: ConvLayer; act: boolean } | { shuffle: number }> = steps.map((step) => {
    if ('shuffle' in step) return step;
    const layer = createConv(variables, `conv${n + 1}`, step.conv, deriveSeed(seed, n));
    n++;
    return { layer, act: step.act };
  });

  const apply = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      let h = x;
      for (const step of built) {
        if ('shuffle' in step) {
          h = pixelShuffle(h, step.shuffle);
        } else {
          h = applyConv(step.layer, h);
          if (step.act) h = tf.leakyRelu(h, LRELU);
        }
      }
      return h;
    });

  const flopsPerForward = (h: number, w: number): number => {
    let total = 0;
    let ch = h;
    let cw = w;
    for (const step of built) {
      if ('shuffle' in step) {
        ch *= step.shuffle;
        cw *= step.shuffle;
      } else {
        total += convFlops(step.layer, ch, cw);
      }
    }
    return total;
  };

  return {
    variables,
    apply,
    scale: cfg.scale,
    paramCount: countParams(variables),
    flopsPerForward,
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
