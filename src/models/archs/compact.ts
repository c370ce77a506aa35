// Real-ESRGAN's SRVGGNetCompact (docs/export.md, "compact"): a plain VGG-style body at LR resolution
// and one pixel shuffle, over a nearest-neighbour enlargement of the input, so the network learns the
// residual. No normalisation; PReLU (one learned slope per channel) after every conv but the last.
//
//   body.0   conv3 3→F, body.1 PReLU; then N times: conv3 F→F, PReLU (body.2 … body.2N+1);
//   body.{2N+2} conv3 F→3s²; shuffle ×s; + nearest ×s of the input
//
// Variables are named like the PyTorch module's entries (body.{k}.w/.b, body.{k}.alpha), each conv
// seeded by its name. F = 64, N = 16: 621 424 params at ×4, 600 652 at ×2 (N = 32, ×4: 1 213 296, the
// size of Real-ESRGAN's general ×4 v3 model). Our pixel shuffle is block-major (tf.depthToSpace);
// PyTorch's is channel-major, which the state-dict export accounts for (models/io/state-dict.ts).

import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { generatorFromGraph, type GeneratorGraph, type GraphOps } from './graph.js';

export interface CompactConfig {
  /** F, the body's width. Default 64. */
  channels?: number;
  /** N, the convs between the first and the last. Default 16. */
  convs?: number;
  /** 2 or 4. */
  scale: number;
  /** Weight-init seed. */
  seed: number;
}

/** The SRVGGNetCompact `cfg` describes (its seed aside). Throws RangeError naming a bad field. */
export function compactGraph(cfg: Omit<CompactConfig, 'seed'>): GeneratorGraph {
  const f = positiveInt('compact.channels', cfg.channels ?? 64);
  const n = positiveInt('compact.convs', cfg.convs ?? 16);
  const s = cfg.scale;
  if (s !== 2 && s !== 4) throw new RangeError(`compact.scale must be 2 or 4, got ${JSON.stringify(cfg.scale)}`);
  return {
    scale: s,
    seeding: 'name',
    forward<T>(o: GraphOps<T>, x: T): T {
      let h = o.prelu('body.1', o.conv('body.0', x, 3, f));
      for (let i = 1; i <= n; i++) h = o.prelu(`body.${2 * i + 1}`, o.conv(`body.${2 * i}`, h, 3, f));
      h = o.pixelShuffle(o.conv(`body.${2 * n + 2}`, h, 3, 3 * s * s), s);
      let up = x;
      for (let k = s; k > 1; k /= 2) up = o.upsampleNearest2x(up);
      return o.add(h, up);
    },
  };
}

/** Builds an SRVGGNetCompact with PyTorch-default init drawn from `cfg.seed`. */
export function createCompact(cfg: CompactConfig): Generator {
  const graph = compactGraph(cfg);
  return generatorFromGraph(graph, integerSeed('compact.seed', cfg.seed));
}
