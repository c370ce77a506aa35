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
// each seeded by its name.

import * as tf from '@tensorflow/tfjs-core';
import type { Generator } from './network.js';
import { integerSeed, positiveInt } from './network.js';
import { layerWeights, recomputed } from './recompute.js';
import { applyConv, convFlops, countParams, createConv, nameSeed, upsampleNearest2x, type ConvLayer } from './ops.js';

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

/** Builds ESRGAN's RRDBNet with PyTorch-default init drawn from `cfg.seed`. */
export function createRrdbNet(cfg: RrdbNetConfig): Generator {
  const nf = positiveInt('rrdbnet.channels', cfg.channels ?? 64);
  const gc = positiveInt('rrdbnet.growth', cfg.growth ?? 32);
  const nBlocks = positiveInt('rrdbnet.blocks', cfg.blocks ?? 23);
  const scale = cfg.scale ?? 4;
  if (scale !== 2 && scale !== 4) throw new RangeError(`rrdbnet.scale must be 2 or 4, got ${JSON.stringify(cfg.scale)}`);
  const seed = integerSeed('rrdbnet.seed', cfg.seed);

  const variables: Record<string, tf.Variable> = {};
  const conv = (name: string, cin: number, cout: number): ConvLayer =>
    createConv(variables, name, { k: 3, cin, cout }, nameSeed(seed, name));

  const convFirst = conv('conv_first', 3, nf);
  const trunk: ConvLayer[][][] = [];
  for (let i = 1; i <= nBlocks; i++) {
    const rdbs: ConvLayer[][] = [];
    for (let j = 1; j <= 3; j++) {
      const p = `rrdb${i}.rdb${j}`;
      rdbs.push([1, 2, 3, 4, 5].map((k) => conv(`${p}.conv${k}`, nf + (k - 1) * gc, k === 5 ? nf : gc)));
    }
    trunk.push(rdbs);
  }
  const trunkConv = conv('trunk_conv', nf, nf);
  const upconvs = Array.from({ length: scale === 4 ? 2 : 1 }, (_, s) => conv(`upconv${s + 1}`, nf, nf));
  const hrConv = conv('HRconv', nf, nf);
  const convLast = conv('conv_last', nf, 3);

  const rdb = (x: tf.Tensor4D, convs: ConvLayer[]): tf.Tensor4D => {
    const feats: tf.Tensor4D[] = [x];
    for (let k = 0; k < 4; k++) feats.push(tf.leakyRelu(applyConv(convs[k], tf.concat(feats, 3)), LRELU));
    return tf.add(x, tf.mul(applyConv(convs[4], tf.concat(feats, 3)), RES_SCALE));
  };

  const recompute = cfg.recompute ?? false;
  if (typeof recompute !== 'boolean') throw new RangeError(`rrdbnet.recompute must be a boolean, got ${JSON.stringify(cfg.recompute)}`);
  const rrdbs = trunk.map((rdbs) => {
    const f = (h: tf.Tensor4D): tf.Tensor4D => {
      let b = h;
      for (const convs of rdbs) b = rdb(b, convs);
      return tf.add(h, tf.mul(b, RES_SCALE));
    };
    return recompute ? recomputed(f, layerWeights(rdbs.flat())) : f;
  });

  const apply = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      const fea = applyConv(convFirst, x);
      let h = fea;
      for (const block of rrdbs) h = block(h);
      h = tf.add(fea, applyConv(trunkConv, h));
      for (const up of upconvs) {
        h = tf.leakyRelu(applyConv(up, upsampleNearest2x(h)), LRELU);
      }
      h = tf.leakyRelu(applyConv(hrConv, h), LRELU);
      return applyConv(convLast, h);
    });

  const flopsPerForward = (h: number, w: number): number => {
    let total = convFlops(convFirst, h, w) + convFlops(trunkConv, h, w);
    for (const rdbs of trunk) for (const convs of rdbs) for (const c of convs) total += convFlops(c, h, w);
    let s = 1;
    for (const up of upconvs) {
      s *= 2;
      total += convFlops(up, s * h, s * w);
    }
    return total + convFlops(hrConv, s * h, s * w) + convFlops(convLast, s * h, s * w);
  };

  return {
    variables,
    apply,
    scale,
    paramCount: countParams(variables),
    flopsPerForward,
    dispose: () => Object.values(variables).forEach((t) => t.dispose()),
  };
}
