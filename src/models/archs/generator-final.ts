// The author's final ×2 generator, GeneratorRRDBx2 (docs/seed.md §3.3). All convs have bias,
// LeakyReLU 0.1, no normalisation, residual scaling 0.2 at every level, no global trunk skip.
//
//   DRB3(x)  = x + 0.2·conv3(cat[x, f1, f2]) (3nf→nf), f1 = LReLU(conv3(x)), f2 = LReLU(conv3(cat[x, f1]))
//              (growth = nf: convs nf→nf, 2nf→nf, 3nf→nf; ESRGAN's RDB has 5 convs, growth 32)
//   Dil(x)   = x + 0.2·conv1×1(LReLU(conv3 d4(LReLU(conv3 d2(LReLU(conv3 d1(x))))))), all nf→nf
//   MyRRDB(x)= x + 0.2·[Dil, DRB3, Dil, DRB3, Dil, DRB3](x)   (without dilated blocks: 3 × DRB3)
//   net: conv5 3→nf (no activation) → blocks × MyRRDB → conv3 nf→2nf + LReLU → conv1×1 2nf→4nf
//        + LReLU → depthToSpace 2 → conv3 nf→nf + LReLU → conv3 nf→3
//
// nf = 64, 16 blocks: 16 293 763 params (per MyRRDB 1 008 960 = 3 × (Dil 114 944 + DRB3 221 376),
// head 4 864, tail 145 539); without the dilated blocks (the May 14–16 run): 10 776 451.
// Variables: head, rrdb{i}.dil{j}.conv{1,2,3} / .proj, rrdb{i}.drb{j}.conv{1,2,3}, tail.conv{1,2},
// up.conv{1,2} (i, j from 1), each seeded by its name (graph.ts 'name' seeding), so the block count
// does not change the other layers' init. Each MyRRDB is a recomputable block (recompute.ts).

import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { generatorFromGraph, type GeneratorGraph, type GraphOps } from './graph.js';

export interface FinalGeneratorConfig {
  /** nf, the width of the main path. Default 64. */
  channels?: number;
  /** Number of MyRRDB blocks. Default 16. */
  blocks?: number;
  /** Interleave MyDilatedBlocks in each MyRRDB (the final run). Default true. */
  dilatedBlocks?: boolean;
  /** Weight-init seed. */
  seed: number;
  /** Recompute each MyRRDB in the backward pass instead of keeping its activations (recompute.ts). Default false. */
  recompute?: boolean;
}

const LRELU = 0.1;
const RES_SCALE = 0.2;

/** The §3.3 final ×2 network `cfg` describes (its seed aside). Throws RangeError naming a bad field. */
export function finalGeneratorGraph(cfg: Omit<FinalGeneratorConfig, 'seed' | 'recompute'>): GeneratorGraph {
  const nf = positiveInt('finalGenerator.channels', cfg.channels ?? 64);
  const nBlocks = positiveInt('finalGenerator.blocks', cfg.blocks ?? 16);
  const dilated = cfg.dilatedBlocks ?? true;
  if (typeof dilated !== 'boolean') {
    throw new RangeError(`finalGenerator.dilatedBlocks must be a boolean, got ${JSON.stringify(cfg.dilatedBlocks)}`);
  }
  return {
    scale: 2,
    seeding: 'name',
    forward<T>(o: GraphOps<T>, x: T): T {
      const lrelu = (t: T): T => o.leaky(t, LRELU);
      // MyDilatedBlock: x + 0.2·proj(LReLU(conv d4(LReLU(conv d2(LReLU(conv d1(x)))))))
      const dil = (p: string, b: T): T => {
        let d = lrelu(o.conv(`${p}.conv1`, b, 3, nf, 1));
        d = lrelu(o.conv(`${p}.conv2`, d, 3, nf, 2));
        d = lrelu(o.conv(`${p}.conv3`, d, 3, nf, 4));
        return o.residual(b, o.conv(`${p}.proj`, d, 1, nf), RES_SCALE);
      };
      // DRB3: x + 0.2·conv3(cat[x, f1, f2])
      const drb = (p: string, b: T): T => {
        const f1 = lrelu(o.conv(`${p}.conv1`, b, 3, nf));
        const f2 = lrelu(o.conv(`${p}.conv2`, o.concat([b, f1]), 3, nf));
        return o.residual(b, o.conv(`${p}.conv3`, o.concat([b, f1, f2]), 3, nf), RES_SCALE);
      };
      let h = o.conv('head', x, 5, nf);
      for (let i = 1; i <= nBlocks; i++) {
        h = o.block(`rrdb${i}`, h, (input) => {
          let b = input;
          for (let j = 1; j <= 3; j++) {
            if (dilated) b = dil(`rrdb${i}.dil${j}`, b);
            b = drb(`rrdb${i}.drb${j}`, b);
          }
          return o.residual(input, b, RES_SCALE);
        });
      }
      h = lrelu(o.conv('tail.conv1', h, 3, 2 * nf));
      h = lrelu(o.conv('tail.conv2', h, 1, 4 * nf));
      h = o.pixelShuffle(h, 2);
      h = lrelu(o.conv('up.conv1', h, 3, nf));
      return o.conv('up.conv2', h, 3, 3);
    },
  };
}

/** Builds the §3.3 final ×2 generator with PyTorch-default init drawn from `cfg.seed`. */
export function createFinalGenerator(cfg: FinalGeneratorConfig): Generator {
  const graph = finalGeneratorGraph(cfg);
  const seed = integerSeed('finalGenerator.seed', cfg.seed);
  const recompute = cfg.recompute ?? false;
  if (typeof recompute !== 'boolean') {
    throw new RangeError(`finalGenerator.recompute must be a boolean, got ${JSON.stringify(cfg.recompute)}`);
  }
  return generatorFromGraph(graph, seed, recompute);
}
