// Our wasm conv-gradient kernels against the tfjs `cpu` backend's reference kernels, on seeded
// random shapes. Both backends live in this process; data crosses between them as plain arrays.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { WASM_KERNELS } from '../../src/models/backend/conv-gradient-kernels.js';
import { mulberry32 } from '../../src/util/prng.js';
import { SrganError } from '../../src/util/errors.js';
import { relErr } from '../support/reference.js';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

interface Case {
  id: string;
  x: [number, number, number, number];
  k: [number, number];
  cout: number;
  stride: number | [number, number];
  pad: Pad;
  xv: Float32Array;
  wv: Float32Array;
  /** Weights for the scalar loss sum(conv(x, w) · r), so dy is not all ones. */
  rv: Float32Array;
  dyShape: number[];
}

interface Result {
  dx: Float32Array;
  dw: Float32Array;
  /** The kernels called directly (not through the Conv2D gradient). */
  kIn: Float32Array;
  kFilter: Float32Array;
  /** conv2dTranspose, which runs Conv2DBackpropInput as its forward pass. */
  transposed: Float32Array;
}

function randArray(rand: () => number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * rand() - 1;
  return a;
}

/** Seeded random geometry: strides 1 and 2, 'same' / 'valid' / numeric / explicit pads, odd sizes, batch 1 and 3. */
function makeCases(): Case[] {
  const rand = mulberry32(20240611);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const cases: Case[] = [];
  const add = (x: Case['x'], k: [number, number], cout: number, s: number | [number, number], pad: Pad) => {
    const dyShape = tf.backend_util.computeConv2DInfo(x, [k[0], k[1], x[3], cout], s, 1, pad).outShape;
    const size = (shape: number[]) => shape.reduce((a, d) => a * d, 1);
    cases.push({
      id: `x=${x.join('x')} k=${k.join('x')} cout=${cout} s=${String(s)} pad=${JSON.stringify(pad)}`,
      x,
      k,
      cout,
      stride: s,
      pad,
      xv: randArray(rand, size(x)),
      wv: randArray(rand, k[0] * k[1] * x[3] * cout),
      rv: randArray(rand, size(dyShape)),
      dyShape,
    });
  };
  // Fixed: the shapes our networks use, and stride 2 in both axes on even and odd sizes.
  add([3, 12, 12, 3], [5, 5], 8, 1, 'same');
  add([1, 8, 8, 4], [3, 3], 6, 2, 'same');
  add([3, 7, 7, 3], [3, 3], 4, 2, 'same');
  add([3, 9, 9, 2], [3, 3], 3, 2, 'valid');
  add([1, 6, 6, 2], [3, 3], 2, 1, [
    [0, 0],
    [4, 3],
    [0, 5],
    [0, 0],
  ]);
  // Seeded random geometry.
  const pads = ['same', 'valid', 'num', 'explicit'] as const;
  for (const batch of [1, 3]) {
    for (const stride of [1, 2]) {
      for (const padKind of pads) {
        const kh = [1, 3, 5][int(0, 2)];
        // tfjs sizes the output of a numeric pad with the filter height and the row stride for both
        // axes (conv_util.computeOutputShape2D), so a non-square filter or stride there is wrong on
        // every backend, and on wasm XNNPACK then writes past the output buffer. Numeric pads get
        // square filters and strides.
        const kw = padKind === 'num' ? kh : [1, 2, 3][int(0, 2)];
        const h = int(Math.max(kh, 3), 11);
        const w = int(Math.max(kw, 3), 10);
        const cin = int(1, 4);
        const cout = int(1, 5);
        let pad: Pad;
        if (padKind === 'same' || padKind === 'valid') pad = padKind;
        else if (padKind === 'num') pad = int(0, 2);
        else
          pad = [
            [0, 0],
            [int(0, 3), int(0, 3)],
            [int(0, 3), int(0, 3)],
            [0, 0],
          ];
        const s: number | [number, number] = stride === 2 && padKind !== 'num' && rand() < 0.5 ? [2, 1] : stride;
        add([batch, h, w, cin], [kh, kw], cout, s, pad);
      }
    }
  }
  return cases;
}

function runCase(c: Case): Result {
  return tf.tidy(() => {
    const x = tf.tensor4d(c.xv, c.x);
    const w = tf.tensor4d(c.wv, [c.k[0], c.k[1], c.x[3], c.cout]);
    const r = tf.tensor(c.rv, c.dyShape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)),
    )([x, w]);
    const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    const kIn = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: r, filter: w }, {
      ...attrs,
      inputShape: c.x,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const kFilter = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy: r }, {
      ...attrs,
      filterShape: w.shape,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const transposed = tf.conv2dTranspose(r as tf.Tensor4D, w, c.x, c.stride, c.pad);
    return {
      dx: dx.dataSync() as Float32Array,
      dw: dw.dataSync() as Float32Array,
      kIn: kIn.dataSync() as Float32Array,
      kFilter: kFilter.dataSync() as Float32Array,
      transposed: transposed.dataSync() as Float32Array,
    };
  });
}

const cases = makeCases();
const reference: Result[] = [];
const wasm: Result[] = [];

beforeAll(async () => {
  await initBackend('cpu');
  for (const c of cases) reference.push(runCase(c));
  await initBackend('wasm');
  // IS_TEST makes the engine check every kernel call for leaked data ids, ours included.
  tf.env().set('IS_TEST', true);
  for (const c of cases) wasm.push(runCase(c));
});

describe('wasm conv-gradient kernels vs the cpu backend', () => {
  it('covers strides 1 and 2, every padding kind, batch 1 and 3', () => {
    expect(cases.length).toBe(21);
    expect(new Set(cases.map((c) => String(c.stride))).size).toBeGreaterThanOrEqual(2);
  });

  it.each(cases.map((c, i) => [c.id, i] as const))('%s', (_id, i) => {
    const ref = reference[i];
    const got = wasm[i];
    for (const key of ['dx', 'dw', 'kIn', 'kFilter', 'transposed'] as const) {
      expect(relErr(got[key], ref[key]), key).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('kernel registration', () => {
  it('registers our kernels on wasm, idempotently', async () => {
    await initBackend('wasm');
    await initBackend('wasm');
    for (const k of WASM_KERNELS) {
      expect(tf.getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
    }
    expect(tf.getBackend()).toBe('wasm');
  });

  it('leaves no tensors behind', async () => {
    await initBackend('wasm');
    runCase(cases[5]);
    const before = tf.memory().numTensors;
    runCase(cases[5]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects NCHW with SRGAN_ERR_BACKEND', async () => {
    await initBackend('wasm');
    const x = tf.zeros([1, 4, 4, 2]);
    const dy = tf.zeros([1, 4, 4, 3]);
    let err: unknown;
    try {
      tf.engine().runKernel(
        tf.Conv2DBackpropFilter,
        { x, dy },
        {
          strides: 1,
          pad: 'same',
          dataFormat: 'NCHW',
          filterShape: [3, 3, 2, 3],
        },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SrganError);
    expect((err as SrganError).code).toBe('SRGAN_ERR_BACKEND');
    tf.dispose([x, dy]);
  });
});
