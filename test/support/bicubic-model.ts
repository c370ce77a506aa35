// A "model" that only copies bicubic: the centre-aligned Keys (a = −0.5) enlargement with clamp-to-edge
// borders, written as a network, so an evaluation can check that such a model gains exactly 0 dB over
// the bicubic baseline. Two independent formulations of the same map:
//
//  - bicubicGenerator: tfjs-core ops. The LR is edge-replicated by 2 pixels, one fixed 5×5 'valid'
//    conv computes every output phase (3·s² channels), and depthToSpace interleaves them. Output pixel
//    s·m + p samples LR coordinate m + (p + ½)/s − ½, whose four Keys taps all lie in m − 2 … m + 2.
//  - saveBicubicLayersModel: the same with tfjs-layers' built-in layers only, so `srgan eval --compare`
//    can load it: the edge replication is export-layers.ts's (zero padding, border masks from a ones
//    map, shifted copies), the phase conv is a Conv2D, the pixel shuffle a fixed 0/1 Conv2DTranspose.
//
// The Keys kernel is written out here rather than imported, so a broken resample.ts cannot make the
// model agree with it.

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import { fileModelIO } from '../../src/models/io/layers-io.js';
import type { Generator } from '../../src/models/archs/network.js';

/** Keys' cubic convolution kernel, a = −0.5 (Keys 1981, eq. 15). */
function keys(x: number): number {
  const t = Math.abs(x);
  if (t <= 1) return 1.5 * t ** 3 - 2.5 * t ** 2 + 1;
  if (t < 2) return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2;
  return 0;
}

/** w[p][k]: weight of LR pixel m − 2 + k in output phase p (output pixel s·m + p). */
function phaseTaps(s: number): number[][] {
  return Array.from({ length: s }, (_, p) => Array.from({ length: 5 }, (_, k) => keys((p + 0.5) / s - 0.5 - (k - 2))));
}

/** The 5×5 phase conv's kernel, [5, 5, 3, 3·s²]: channel (i·s + j)·3 + c is phase (i, j) of colour c. */
function phaseKernel(s: number): Float32Array {
  const w = phaseTaps(s);
  const cout = 3 * s * s;
  const k = new Float32Array(25 * 3 * cout);
  for (let dy = 0; dy < 5; dy++) {
    for (let dx = 0; dx < 5; dx++) {
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          for (let c = 0; c < 3; c++) k[((dy * 5 + dx) * 3 + c) * cout + (i * s + j) * 3 + c] = w[i][dy] * w[j][dx];
        }
      }
    }
  }
  return k;
}

/** Edge replication by `r` pixels on every side, from slices (tf.pad has no 'edge' mode). */
function replicate(x: tf.Tensor4D, r: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  const rows = tf.concat(
    [...Array(r).fill(tf.slice(x, [0, 0, 0, 0], [-1, 1, -1, -1])), x, ...Array(r).fill(tf.slice(x, [0, h - 1, 0, 0], [-1, 1, -1, -1]))],
    1,
  );
  return tf.concat(
    [
      ...Array(r).fill(tf.slice(rows, [0, 0, 0, 0], [-1, -1, 1, -1])),
      rows,
      ...Array(r).fill(tf.slice(rows, [0, 0, w - 1, 0], [-1, -1, 1, -1])),
    ],
    2,
  );
}

/** A Generator (no trainable variables) whose output is the bicubic ×scale enlargement of its input. */
export function bicubicGenerator(scale: 2 | 4): Generator {
  const kernel = tf.tensor4d(phaseKernel(scale), [5, 5, 3, 3 * scale * scale]);
  return {
    variables: {},
    scale,
    paramCount: 0,
    flopsPerForward: (h, w) => 2 * 25 * 3 * 3 * scale * scale * h * w,
    apply: (x) => tf.tidy(() => tf.depthToSpace(tf.conv2d(replicate(x, 2), kernel, 1, 'valid'), scale)),
    dispose: () => kernel.dispose(),
  };
}

type Sym = tfl.SymbolicTensor;
type Pads = [[number, number], [number, number]];

const call = (layer: tfl.layers.Layer, ...xs: Sym[]): Sym => layer.apply(xs.length === 1 ? xs[0] : xs) as Sym;

/** Initial weights given to layers: the layers copy them into their own variables when built. */
const initial: tf.Tensor[] = [];
const own = <T extends tf.Tensor>(t: T): T => (initial.push(t), t);

/** A non-trainable Conv2D with the given kernel [kh, kw, cin, cout] and bias. */
function fixedConv(
  x: Sym,
  kh: number,
  kw: number,
  cin: number,
  cout: number,
  kernel: Float32Array,
  bias: number[] | null,
  padding: 'same' | 'valid',
): Sym {
  const weights = [own(tf.tensor4d(kernel, [kh, kw, cin, cout])), ...(bias === null ? [] : [own(tf.tensor1d(bias))])];
  return call(tfl.layers.conv2d({ filters: cout, kernelSize: [kh, kw], padding, useBias: bias !== null, trainable: false, weights }), x);
}

/** Edge replication by one pixel from built-in layers (export-layers.ts's construction). */
function replicate1(x: Sym): Sym {
  const z = call(
    tfl.layers.zeroPadding2d({
      padding: [
        [1, 1],
        [1, 1],
      ],
    }),
    x,
  );
  const ones = fixedConv(z, 1, 1, 3, 1, new Float32Array(3), [1], 'valid');
  // 'same' zero padding: 1 − ones[i − 1] is 1 on the first row only, 1 − ones[i + 1] on the last; likewise columns.
  const mask = (kh: number, kw: number, tap: number): Sym =>
    fixedConv(
      ones,
      kh,
      kw,
      1,
      1,
      Float32Array.from([0, 1, 2], (t) => (t === tap ? -1 : 0)),
      [1],
      'same',
    );
  // A move by one row or column: crop one side, zero-pad the other.
  const shift = (t: Sym, crop: Pads): Sym =>
    call(
      tfl.layers.zeroPadding2d({
        padding: [
          [crop[0][1], crop[0][0]],
          [crop[1][1], crop[1][0]],
        ],
      }),
      call(tfl.layers.cropping2D({ cropping: crop }), t),
    );
  const mul = (a: Sym, b: Sym): Sym => call(tfl.layers.multiply(), a, b);
  const add = (...xs: Sym[]): Sym => call(tfl.layers.add(), ...xs);
  const rows = add(
    z,
    mul(
      mask(3, 1, 0),
      shift(z, [
        [1, 0],
        [0, 0],
      ]),
    ),
    mul(
      mask(3, 1, 2),
      shift(z, [
        [0, 1],
        [0, 0],
      ]),
    ),
  );
  return add(
    rows,
    mul(
      mask(1, 3, 0),
      shift(rows, [
        [0, 0],
        [1, 0],
      ]),
    ),
    mul(
      mask(1, 3, 2),
      shift(rows, [
        [0, 0],
        [0, 1],
      ]),
    ),
  );
}

/** The same map as bicubicGenerator as a tfjs LayersModel of built-in layers (input [null, null, null, 3]). */
export function bicubicLayersModel(scale: 2 | 4): tfl.LayersModel {
  const input = tfl.input({ shape: [null, null, 3] });
  const phases = fixedConv(replicate1(replicate1(input)), 5, 5, 3, 3 * scale * scale, phaseKernel(scale), null, 'valid');
  // Pixel shuffle: Conv2DTranspose s×s, strides s, K[i, j, c, (i·s + j)·3 + c] = 1 (tf.depthToSpace's order).
  const cin = 3 * scale * scale;
  const shuffle = new Float32Array(scale * scale * 3 * cin);
  for (let i = 0; i < scale; i++)
    for (let j = 0; j < scale; j++) for (let c = 0; c < 3; c++) shuffle[((i * scale + j) * 3 + c) * cin + (i * scale + j) * 3 + c] = 1;
  const out = call(
    tfl.layers.conv2dTranspose({
      filters: 3,
      kernelSize: scale,
      strides: scale,
      padding: 'valid',
      useBias: false,
      trainable: false,
      weights: [own(tf.tensor4d(shuffle, [scale, scale, 3, cin]))],
    }),
    phases,
  );
  const model = tfl.model({ inputs: input, outputs: out, name: `bicubic_x${scale}` });
  tf.dispose(initial.splice(0));
  return model;
}

/** Writes bicubicLayersModel(scale) to `dir` (model.json + shards) the way `--compare` loads models. */
export async function saveBicubicLayersModel(scale: 2 | 4, dir: string): Promise<void> {
  const model = bicubicLayersModel(scale);
  try {
    await model.save(fileModelIO(dir));
  } finally {
    model.dispose();
  }
}
