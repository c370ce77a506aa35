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
// up.conv{1,2} (i, j from 1), each seeded by its name (nameSeed), so the block count does not
// change the other layers' init.

import * as tf from '@tensorflow/tfjs-core';
import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { layerWeights, recomputed } from './recompute.js';
import { applyConv, convFlops, countParams, createConv, nameSeed, type ConvLayer, type ConvSpec } from './ops.js';

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

interface Drb3 {
  kind: 'drb';
  convs: [ConvLayer, ConvLayer, ConvLayer];
}

interface DilatedBlock {
  kind: 'dil';
  convs: [ConvLayer, ConvLayer, ConvLayer];
  proj: ConvLayer;
}

type Part = Drb3 | DilatedBlock;

/** x + 0.2·y */
const residual = (x: tf.Tensor4D, y: tf.Tensor4D): tf.Tensor4D => tf.add(x, tf.mul(y, RES_SCALE));
const lrelu = (x: tf.Tensor4D): tf.Tensor4D => tf.leakyRelu(x, LRELU);

function applyPart(p: Part, x: tf.Tensor4D): tf.Tensor4D {
  const [c1, c2, c3] = p.convs;
  if (p.kind === 'drb') {
    const f1 = lrelu(applyConv(c1, x));
    const f2 = lrelu(applyConv(c2, tf.concat([x, f1], 3)));
    return residual(x, applyConv(c3, tf.concat([x, f1, f2], 3)));
  }
  const h = lrelu(applyConv(c3, lrelu(applyConv(c2, lrelu(applyConv(c1, x))))));
  return residual(x, applyConv(p.proj, h));
}

/** Builds the §3.3 final ×2 generator with PyTorch-default init drawn from `cfg.seed`. */
export function createFinalGenerator(cfg: FinalGeneratorConfig): Generator {
  const nf = positiveInt('finalGenerator.channels', cfg.channels ?? 64);
  const nBlocks = positiveInt('finalGenerator.blocks', cfg.blocks ?? 16);
  const dilated = cfg.dilatedBlocks ?? true;
  if (typeof dilated !== 'boolean') {
    throw new RangeError(`finalGenerator.dilatedBlocks must be a boolean, got ${JSON.stringify(cfg.dilatedBlocks)}`);
  }
  const seed = integerSeed('finalGenerator.seed', cfg.seed);

  const variables: Record<string, tf.Variable> = {};
  const conv = (name: string, spec: ConvSpec): ConvLayer => createConv(variables, name, spec, nameSeed(seed, name));

  const head = conv('head', { k: 5, cin: 3, cout: nf });
  const blocks: Part[][] = [];
  for (let i = 1; i <= nBlocks; i++) {
    const parts: Part[] = [];
    for (let j = 1; j <= 3; j++) {
      if (dilated) {
        const p = `rrdb${i}.dil${j}`;
        parts.push({
          kind: 'dil',
          convs: [
            conv(`${p}.conv1`, { k: 3, cin: nf, cout: nf, dilation: 1 }),
            conv(`${p}.conv2`, { k: 3, cin: nf, cout: nf, dilation: 2 }),
            conv(`${p}.conv3`, { k: 3, cin: nf, cout: nf, dilation: 4 }),
          ],
          proj: conv(`${p}.proj`, { k: 1, cin: nf, cout: nf }),
        });
      }
      const p = `rrdb${i}.drb${j}`;
      parts.push({
        kind: 'drb',
        convs: [
          conv(`${p}.conv1`, { k: 3, cin: nf, cout: nf }),
          conv(`${p}.conv2`, { k: 3, cin: 2 * nf, cout: nf }),
          conv(`${p}.conv3`, { k: 3, cin: 3 * nf, cout: nf }),
        ],
      });
    }
    blocks.push(parts);
  }
  const tail1 = conv('tail.conv1', { k: 3, cin: nf, cout: 2 * nf });
  const tail2 = conv('tail.conv2', { k: 1, cin: 2 * nf, cout: 4 * nf });
  const up1 = conv('up.conv1', { k: 3, cin: nf, cout: nf });
  const up2 = conv('up.conv2', { k: 3, cin: nf, cout: 3 });

  const recompute = cfg.recompute ?? false;
  if (typeof recompute !== 'boolean')
    throw new RangeError(`finalGenerator.recompute must be a boolean, got ${JSON.stringify(cfg.recompute)}`);
  const myRrdbs = blocks.map((parts) => {
    const f = (h: tf.Tensor4D): tf.Tensor4D => {
      let b = h;
      for (const p of parts) b = applyPart(p, b);
      return residual(h, b);
    };
    return recompute ? recomputed(f, layerWeights(parts.flatMap((p) => (p.kind === 'dil' ? [...p.convs, p.proj] : p.convs)))) : f;
  });

  const apply = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      let h = applyConv(head, x);
      for (const block of myRrdbs) h = block(h);
      h = lrelu(applyConv(tail1, h));
      h = lrelu(applyConv(tail2, h));
      // Differentiable through our DepthToSpace gradient (gradients.ts).
      h = tf.depthToSpace(h, 2);
      h = lrelu(applyConv(up1, h));
      return applyConv(up2, h);
    });

  const flopsPerForward = (h: number, w: number): number => {
    let total = convFlops(head, h, w) + convFlops(tail1, h, w) + convFlops(tail2, h, w);
    for (const parts of blocks) {
      for (const p of parts) {
        for (const c of p.convs) total += convFlops(c, h, w);
        if (p.kind === 'dil') total += convFlops(p.proj, h, w);
      }
    }
    return total + convFlops(up1, 2 * h, 2 * w) + convFlops(up2, 2 * h, 2 * w);
  };

  return {
    variables,
    apply,
    scale: 2,
    paramCount: countParams(variables),
    flopsPerForward,
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
