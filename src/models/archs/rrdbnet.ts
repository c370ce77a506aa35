// ESRGAN's RRDBNet (xinntao/ESRGAN RRDBNet_arch.py, as described in docs/seed.md §10.1), the reference
// the author's final generator is measured against. All convs 3×3 with bias, LeakyReLU 0.2.
//
//   RDB(x)  = x + 0.2·conv5(cat[x, x1..x4]), x_k = LReLU(conv_k(cat[x, x1..x_{k−1}])),
//             conv_k: nf + (k−1)·gc → gc (k = 1..4), conv5: nf + 4gc → nf (no activation)
//   RRDB(x) = x + 0.2·RDB3(RDB2(RDB1(x)))
//   net: fea = conv_first 3→nf; trunk = trunk_conv(RRDB × blocks (fea)); fea = fea + trunk;
//        per ×2 step: nearest ×2 (ops.ts upsampleNearest2x) → conv nf→nf → LReLU;
//        then HRconv nf→nf + LReLU, conv_last nf→3
//
// nf 64, gc 32, 23 blocks, ×4 (two nearest ×2 steps): 16 697 987 params (per RRDB 719 424).
// scale 2 uses one upsampling step. Variables are named like the PyTorch module
// (conv_first, rrdb{i}.rdb{j}.conv{k}, trunk_conv, upconv{s}, HRconv, conv_last; i, j, s from 1),
// each seeded by its name (graph.ts 'name' seeding). Each RRDB is a recomputable block (recompute.ts).

import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { generatorFromGraph, type GeneratorGraph, type GraphOps } from './graph.js';

export interface RrdbNetConfig {
  /** nf. Default 64. */
  channels?: number;
  /** gc, the growth channels of each dense layer. Default 32. */
  growth?: number;
  /** Number of RRDBs. Default 23. */
  blocks?: number;
  /** 2 or 4 (one or two nearest ×2 steps). Default 4. */
  scale?: 2 | 4;
  /** Weight-init seed. */
  seed: number;
  /** Recompute each RRDB in the backward pass instead of keeping its activations (recompute.ts). Default false. */
  recompute?: boolean;
}

const LRELU = 0.2;
const RES_SCALE = 0.2;

/** The RRDBNet `cfg` describes (its seed aside). Throws RangeError naming a bad field. */
export function rrdbNetGraph(cfg: Omit<RrdbNetConfig, 'seed' | 'recompute'>): GeneratorGraph {
  const nf = positiveInt('rrdbnet.channels', cfg.channels ?? 64);
  const gc = positiveInt('rrdbnet.growth', cfg.growth ?? 32);
  const nBlocks = positiveInt('rrdbnet.blocks', cfg.blocks ?? 23);
  const scale = cfg.scale ?? 4;
  if (scale !== 2 && scale !== 4) throw new RangeError(`rrdbnet.scale must be 2 or 4, got ${JSON.stringify(cfg.scale)}`);
  return {
    scale,
    seeding: 'name',
    forward<T>(o: GraphOps<T>, x: T): T {
      const lrelu = (t: T): T => o.leaky(t, LRELU);
      // RDB: x + 0.2·conv5(cat[x, x1..x4]), x_k = LReLU(conv_k(cat[x, x1..x_{k−1}]))
      const rdb = (p: string, b: T): T => {
        const feats = [b];
        for (let k = 1; k <= 4; k++) feats.push(lrelu(o.conv(`${p}.conv${k}`, o.concat(feats), 3, gc)));
        return o.residual(b, o.conv(`${p}.conv5`, o.concat(feats), 3, nf), RES_SCALE);
      };
      const fea = o.conv('conv_first', x, 3, nf);
      let h = fea;
      for (let i = 1; i <= nBlocks; i++) {
        h = o.block(`rrdb${i}`, h, (input) => {
          let b = input;
          for (let j = 1; j <= 3; j++) b = rdb(`rrdb${i}.rdb${j}`, b);
          return o.residual(input, b, RES_SCALE);
        });
      }
      h = o.add(fea, o.conv('trunk_conv', h, 3, nf));
      for (let s = 1; s <= (scale === 4 ? 2 : 1); s++) h = lrelu(o.conv(`upconv${s}`, o.upsampleNearest2x(h), 3, nf));
      h = lrelu(o.conv('HRconv', h, 3, nf));
      return o.conv('conv_last', h, 3, 3);
    },
  };
}

/** Builds ESRGAN's RRDBNet with PyTorch-default init drawn from `cfg.seed`. */
export function createRrdbNet(cfg: RrdbNetConfig): Generator {
  const graph = rrdbNetGraph(cfg);
  const seed = integerSeed('rrdbnet.seed', cfg.seed);
  const recompute = cfg.recompute ?? false;
  if (typeof recompute !== 'boolean') throw new RangeError(`rrdbnet.recompute must be a boolean, got ${JSON.stringify(cfg.recompute)}`);
  return generatorFromGraph(graph, seed, recompute);
}
