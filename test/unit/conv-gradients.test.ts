// The gradients gradients.ts adds to tfjs: Conv2D with dilation > 1 (and dilation 1 still through
// upstream), DepthToSpace; plus ops.ts's ×2 upsampling (used instead of tf.image's resizes, whose
// gradients are wrong in tfjs 4.22, see ops.ts). Checked on
// wasm and cpu against exact references computed in double precision in plain JS (the loss is
// sum(f(x)·R), linear in each input, so the reference gradient is exact), against each other, and
// through a nonlinear chain against central finite differences.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend, type BackendName } from '../../src/models/backend/init.js';
import { CONV_GRADIENTS, REGISTERED_GRADIENTS, registerBroadcastGradients, spaceToDepth } from '../../src/models/backend/gradients.js';
import { upsampleBilinear2x, upsampleNearest2x } from '../../src/models/archs/ops.js';
import { mulberry32 } from '../../src/util/prng.js';
import { relErr, spaceToDepthRef } from '../support/reference.js';

const BACKENDS: readonly BackendName[] = ['cpu', 'wasm'];

beforeAll(async () => {
  await initBackend('wasm');
});

function randArray(rand: () => number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * rand() - 1;
  return a;
}

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

interface ConvCase {
  id: string;
  x: [number, number, number, number];
  k: [number, number];
  cout: number;
  stride: number;
  dilation: number;
  pad: Pad;
}

const convCases: ConvCase[] = [];
for (const dilation of [1, 2, 3, 4]) {
  convCases.push({ id: `same d${dilation} batch 1`, x: [1, 7, 9, 2], k: [3, 3], cout: 3, stride: 1, dilation, pad: 'same' });
  convCases.push({ id: `valid d${dilation} batch 3`, x: [3, 9, 11, 2], k: [3, 3], cout: 3, stride: 1, dilation, pad: 'valid' });
}
convCases.push(
  { id: 'same d2, 2×3 kernel, batch 3', x: [3, 8, 7, 3], k: [2, 3], cout: 2, stride: 1, dilation: 2, pad: 'same' },
  { id: 'same d3, 5×5 kernel', x: [1, 13, 11, 2], k: [5, 5], cout: 2, stride: 1, dilation: 3, pad: 'same' },
  // Pads beyond the dilated extent (4): dx must drop rows the forward pass never read.
  {
    id: 'explicit pads d2, some beyond the extent',
    x: [1, 6, 7, 2],
    k: [3, 3],
    cout: 2,
    stride: 1,
    dilation: 2,
    pad: [
      [0, 0],
      [5, 1],
      [0, 6],
      [0, 0],
    ],
  },
  {
    id: 'explicit pads d3, batch 3',
    x: [3, 10, 9, 2],
    k: [3, 3],
    cout: 3,
    stride: 1,
    dilation: 3,
    pad: [
      [0, 0],
      [1, 5],
      [4, 0],
      [0, 0],
    ],
  },
  // Dilation 1 with stride 2 goes through upstream's gradient (and our wasm kernels).
  { id: 'stride 2 d1 (upstream path), batch 3', x: [3, 9, 8, 2], k: [3, 3], cout: 3, stride: 2, dilation: 1, pad: 'same' },
);

interface ConvData {
  xv: Float32Array;
  wv: Float32Array;
  rv: Float32Array;
  outShape: number[];
  info: tf.backend_util.Conv2DInfo;
}

function convData(c: ConvCase, seed: number): ConvData {
  const rand = mulberry32(seed);
  const wShape: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], c.cout];
  const info = tf.backend_util.computeConv2DInfo(c.x, wShape, c.stride, c.dilation, c.pad);
  const size = (s: number[]) => s.reduce((a, d) => a * d, 1);
  return {
    xv: randArray(rand, size(c.x)),
    wv: randArray(rand, size(wShape)),
    rv: randArray(rand, size(info.outShape)),
    outShape: info.outShape,
    info,
  };
}

/** d/dx and d/dw of sum(conv2d(x, w)·R), exactly, in float64, by direct summation. */
function convGradReference(c: ConvCase, d: ConvData): { dx: Float64Array; dw: Float64Array } {
  const [n, h, w, ci] = c.x;
  const [kh, kw] = c.k;
  const co = c.cout;
  const { outHeight: oh, outWidth: ow, padInfo } = d.info;
  const dx = new Float64Array(d.xv.length);
  const dw = new Float64Array(d.wv.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++)
        for (let i = 0; i < kh; i++) {
          const iy = y * c.stride + i * c.dilation - padInfo.top;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = x * c.stride + j * c.dilation - padInfo.left;
            if (ix < 0 || ix >= w) continue;
            for (let p = 0; p < ci; p++) {
              const xi = ((b * h + iy) * w + ix) * ci + p;
              for (let q = 0; q < co; q++) {
                const r = d.rv[((b * oh + y) * ow + x) * co + q];
                const wi = ((i * kw + j) * ci + p) * co + q;
                dx[xi] += r * d.wv[wi];
                dw[wi] += r * d.xv[xi];
              }
            }
          }
        }
  return { dx, dw };
}

function convGrads(c: ConvCase, d: ConvData): { dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(d.xv, c.x);
    const w = tf.tensor4d(d.wv, [c.k[0], c.k[1], c.x[3], c.cout]);
    const r = tf.tensor(d.rv, d.outShape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dilation), r)),
    )([x, w]);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

describe('Conv2D gradient with dilation (gradients.ts)', () => {
  it.each(convCases.map((c, i) => [c.id, i] as const))('%s: equals the exact reference on cpu and wasm', async (_id, i) => {
    const c = convCases[i];
    const data = convData(c, 1000 + i);
    const ref = convGradReference(c, data);
    const got: Record<string, { dx: Float32Array; dw: Float32Array }> = {};
    for (const backend of BACKENDS) {
      await initBackend(backend);
      got[backend] = convGrads(c, data);
      expect(relErr(got[backend].dx, ref.dx), `${backend} dx`).toBeLessThanOrEqual(1e-4);
      expect(relErr(got[backend].dw, ref.dw), `${backend} dw`).toBeLessThanOrEqual(1e-4);
    }
    expect(relErr(got['wasm'].dx, got['cpu'].dx), 'wasm vs cpu dx').toBeLessThanOrEqual(1e-4);
    expect(relErr(got['wasm'].dw, got['cpu'].dw), 'wasm vs cpu dw').toBeLessThanOrEqual(1e-4);
  });

  it('passes central finite differences through a nonlinear dilated chain (wasm)', async () => {
    await initBackend('wasm');
    const rand = mulberry32(77);
    const shapes = [
      [2, 7, 6, 2],
      [3, 3, 2, 3],
      [3, 3, 3, 2],
    ];
    const values = shapes.map((s) =>
      randArray(
        rand,
        s.reduce((a, d) => a * d, 1),
      ),
    );
    const r = tf.tensor(randArray(rand, 2 * 7 * 6 * 2), [2, 7, 6, 2]);
    const f = (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor): tf.Scalar => {
      const h = tf.tanh(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same', 'NHWC', 2));
      return tf.sum(tf.mul(tf.conv2d(h, w2 as tf.Tensor4D, 1, 'same', 'NHWC', 3), r));
    };
    tf.tidy(() => {
      const xs = values.map((v, i) => tf.tensor(v, shapes[i]));
      const analytic = tf
        .grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => f(a, b, c))(xs)
        .map((g) => g.dataSync());
      const eps = 1e-2;
      values.forEach((v, k) => {
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < v.length; i += 3) {
          const at = (delta: number) =>
            tf.tidy(() => {
              const p = Float32Array.from(v);
              p[i] += delta;
              const args = xs.map((t, j) => (j === k ? tf.tensor(p, shapes[k]) : t)) as [tf.Tensor, tf.Tensor, tf.Tensor];
              return f(...args).dataSync()[0];
            });
          const numeric = (at(eps) - at(-eps)) / (2 * eps);
          worst = Math.max(worst, Math.abs(numeric - analytic[k][i]));
          scale = Math.max(scale, Math.abs(numeric));
        }
        expect(worst / Math.max(scale, 1e-3), `input ${k}`).toBeLessThan(5e-3);
      });
    });
    r.dispose();
  });

  it('leaves no tensors behind on wasm', async () => {
    await initBackend('wasm');
    const c = convCases[2];
    const data = convData(c, 5);
    convGrads(c, data);
    const before = tf.memory().numTensors;
    convGrads(c, data);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('DepthToSpace gradient (gradients.ts)', () => {
  const shapes: Array<[number[], number]> = [
    [[1, 3, 5, 12], 2],
    [[3, 5, 3, 8], 2],
    [[3, 3, 7, 18], 3],
    [[1, 5, 5, 48], 4],
  ];

  it.each(shapes)('is exactly spaceToDepth(dL/dy) for %j, r=%i, on cpu and wasm', async (shape, r) => {
    const lr = [shape[0], shape[1], shape[2], shape[3] / (r * r)];
    const hr = [lr[0], lr[1] * r, lr[2] * r, lr[3]];
    const rand = mulberry32(shape.reduce((a, d) => a * 31 + d, r));
    const xv = randArray(
      rand,
      shape.reduce((a, d) => a * d, 1),
    );
    const rv = randArray(rand, xv.length);
    const want = spaceToDepthRef(rv, lr, r);
    for (const backend of BACKENDS) {
      await initBackend(backend);
      tf.tidy(() => {
        const R = tf.tensor(rv, hr);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.depthToSpace(t as tf.Tensor4D, r), R)))(tf.tensor(xv, shape));
        expect(g.shape).toEqual(shape);
        expect(relErr(g.dataSync(), want), backend).toBe(0);
      });
    }
  });

  it('handles NCHW as the transposed NHWC case (the backends run depthToSpace in NHWC only)', () => {
    tf.tidy(() => {
      const y = tf.tensor(randArray(mulberry32(3), 2 * 3 * 6 * 10), [2, 3, 6, 10]) as tf.Tensor4D;
      const viaNhwc = tf.transpose(spaceToDepth(tf.transpose(y, [0, 2, 3, 1]), 2), [0, 3, 1, 2]);
      const nchw = spaceToDepth(y, 2, 'NCHW');
      expect(nchw.shape).toEqual([2, 12, 3, 5]);
      expect(relErr(nchw.dataSync(), viaNhwc.dataSync())).toBe(0);
    });
  });

  it('is registered with the others, idempotently', () => {
    expect(CONV_GRADIENTS).toEqual(['Conv2D', 'DepthToSpace']);
    expect(REGISTERED_GRADIENTS).toEqual(['Add', 'Sub', 'Multiply', 'Conv2D', 'DepthToSpace', 'Mean']);
    const before = REGISTERED_GRADIENTS.map((k) => tf.getGradient(k));
    registerBroadcastGradients();
    registerBroadcastGradients();
    REGISTERED_GRADIENTS.forEach((k, i) => expect(tf.getGradient(k)).toBe(before[i]));
  });

  it('a copy of our Conv2D gradient registered over ours does not make dilation 1 recurse', async () => {
    await initBackend('wasm');
    const ours = tf.getGradient(tf.Conv2D);
    tf.unregisterGradient(tf.Conv2D);
    tf.registerGradient({ ...ours });
    registerBroadcastGradients();
    expect(tf.getGradient(tf.Conv2D)).toBe(ours);
    tf.tidy(() => {
      const g = tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')))(
        tf.ones([3, 3, 1, 1]),
      );
      expect(Array.from(g.dataSync())).toEqual([9, 12, 9, 12, 16, 12, 9, 12, 9]);
    });
  });
});

/** Per-axis taps of ×2 upsampling for output index o of an axis of length n. */
type Taps = (o: number, n: number) => Array<[index: number, weight: number]>;
const nearestTaps: Taps = (o) => [[Math.floor(o / 2), 1]];
/** Half-pixel centres, clamped at the edges (TensorFlow's and PyTorch's align_corners=False). */
const bilinearTaps: Taps = (o, n) => {
  const src = (o + 0.5) / 2 - 0.5;
  const lo = Math.floor(src);
  const f = src - lo;
  const clamp = (i: number) => Math.min(Math.max(i, 0), n - 1);
  return [
    [clamp(lo), 1 - f],
    [clamp(lo + 1), f],
  ];
};

/** Forward y and adjoint Aᵀ·R of a ×2 upsampling with per-axis `taps`, in float64. */
function upsampleReference(xv: ArrayLike<number>, rv: ArrayLike<number>, [n, h, w, c]: number[], taps: Taps) {
  const H = 2 * h;
  const W = 2 * w;
  const y = new Float64Array(n * H * W * c);
  const dx = new Float64Array(xv.length);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < H; oy++)
      for (const [iy, wy] of taps(oy, h))
        for (let ox = 0; ox < W; ox++)
          for (const [ix, wx] of taps(ox, w))
            for (let ch = 0; ch < c; ch++) {
              const o = ((b * H + oy) * W + ox) * c + ch;
              const i = ((b * h + iy) * w + ix) * c + ch;
              y[o] += wy * wx * xv[i];
              dx[i] += wy * wx * rv[o];
            }
  return { y, dx };
}

describe('×2 upsampling with gradients right on every backend (ops.ts)', () => {
  const ops: Array<[string, (x: tf.Tensor4D) => tf.Tensor4D, (x: tf.Tensor4D) => tf.Tensor4D, Taps]> = [
    ['upsampleNearest2x', upsampleNearest2x, (x) => tf.image.resizeNearestNeighbor(x, [2 * x.shape[1], 2 * x.shape[2]]), nearestTaps],
    [
      'upsampleBilinear2x',
      upsampleBilinear2x,
      (x) => tf.image.resizeBilinear(x, [2 * x.shape[1], 2 * x.shape[2]], false, true),
      bilinearTaps,
    ],
  ];
  const shapes = [
    [3, 5, 7, 2],
    [1, 1, 4, 3],
    [2, 4, 4, 1],
  ];

  it.each(ops)('%s equals tf.image forward, and its gradient the exact adjoint, on cpu and wasm', async (_name, op, upstream, taps) => {
    for (const shape of shapes) {
      const rand = mulberry32(shape.reduce((a, d) => a * 17 + d, 5));
      const xv = randArray(
        rand,
        shape.reduce((a, d) => a * d, 1),
      );
      const rv = randArray(rand, xv.length * 4);
      const ref = upsampleReference(xv, rv, shape, taps);
      for (const backend of BACKENDS) {
        await initBackend(backend);
        tf.tidy(() => {
          const x = tf.tensor4d(xv, shape as [number, number, number, number]);
          const R = tf.tensor(rv, [shape[0], 2 * shape[1], 2 * shape[2], shape[3]]);
          const y = op(x);
          expect(relErr(y.dataSync(), ref.y), `${backend} ${shape} forward`).toBeLessThanOrEqual(1e-6);
          expect(relErr(y.dataSync(), upstream(x).dataSync()), `${backend} ${shape} vs tf.image`).toBeLessThanOrEqual(1e-6);
          const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(op(t as tf.Tensor4D), R)))(x);
          expect(relErr(g.dataSync(), ref.dx), `${backend} ${shape} gradient`).toBeLessThanOrEqual(1e-5);
        });
      }
    }
  });
});
