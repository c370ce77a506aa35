// The gradients src/models/gradients.ts registers (tfjs-core ships none by itself), checked against
// central finite differences on small seeded inputs, on wasm (the training backend).

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend.js';
import { GRADIENT_KERNELS } from '../../src/models/gradients.js';
import { mulberry32 } from '../../src/data/prng.js';

beforeAll(async () => {
  await initBackend('wasm');
});

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

interface GradCase {
  name: string;
  shapes: number[][];
  f: Fn;
  /** Keep inputs away from kinks (relu at 0, max ties, clip bounds) and out of log/sqrt's domain edge. */
  positive?: boolean;
  /** Inputs given outright instead of drawn. */
  fixed?: number[][];
}

const cases: GradCase[] = [
  { name: 'Add (bias broadcast)', shapes: [[2, 2, 3, 4], [4]], f: (a, b) => tf.add(a!, b!) },
  { name: 'Add (middle-axis broadcast)', shapes: [[2, 3, 4], [2, 1, 4]], f: (a, b) => tf.add(a!, b!) },
  { name: 'Sub', shapes: [[3, 4], [4]], f: (a, b) => tf.sub(a!, b!) },
  { name: 'Multiply', shapes: [[2, 3, 4], [1, 3, 1]], f: (a, b) => tf.mul(a!, b!) },
  { name: 'RealDiv', shapes: [[3, 4], [4]], f: (a, b) => tf.div(a!, b!), positive: true },
  { name: 'SquaredDifference', shapes: [[3, 4], [3, 4]], f: (a, b) => tf.squaredDifference(a!, b!) },
  { name: 'Maximum', shapes: [[3, 4], [3, 4]], f: (a, b) => tf.maximum(a!, b!) },
  { name: 'Minimum', shapes: [[3, 4], [3, 4]], f: (a, b) => tf.minimum(a!, b!) },
  { name: 'Pow', shapes: [[3, 4], [3, 4]], f: (a, b) => tf.pow(a!, b!), positive: true },
  { name: 'AddN', shapes: [[3, 4], [3, 4], [3, 4]], f: (a, b, c) => tf.addN([a!, b!, c!]) },
  { name: 'Square', shapes: [[3, 4]], f: (a) => tf.square(a!) },
  { name: 'Sqrt', shapes: [[3, 4]], f: (a) => tf.sqrt(a!), positive: true },
  { name: 'Rsqrt', shapes: [[3, 4]], f: (a) => tf.rsqrt(a!), positive: true },
  { name: 'Reciprocal', shapes: [[3, 4]], f: (a) => tf.reciprocal(a!), positive: true },
  { name: 'Log', shapes: [[3, 4]], f: (a) => tf.log(a!), positive: true },
  { name: 'Exp', shapes: [[3, 4]], f: (a) => tf.exp(a!) },
  { name: 'Abs', shapes: [[3, 4]], f: (a) => tf.abs(a!) },
  { name: 'Neg', shapes: [[3, 4]], f: (a) => tf.neg(a!) },
  { name: 'Relu', shapes: [[3, 4]], f: (a) => tf.relu(a!) },
  { name: 'LeakyRelu', shapes: [[3, 4]], f: (a) => tf.leakyRelu(a!, 0.1) },
  { name: 'Softplus', shapes: [[3, 4]], f: (a) => tf.softplus(a!) },
  { name: 'Sigmoid', shapes: [[3, 4]], f: (a) => tf.sigmoid(a!) },
  { name: 'Tanh', shapes: [[3, 4]], f: (a) => tf.tanh(a!) },
  {
    name: 'ClipByValue',
    shapes: [[3, 4]],
    f: (a) => tf.clipByValue(a!, -0.5, 0.5),
    fixed: [[-1, -0.7, -0.4, -0.2, -0.1, 0.05, 0.2, 0.3, 0.45, 0.6, 0.8, 2]],
  },
  { name: 'Sum', shapes: [[2, 3, 4]], f: (a) => tf.sum(a!, [0, 2]) },
  { name: 'Mean', shapes: [[2, 3, 4]], f: (a) => tf.mean(a!, 1, true) },
  { name: 'Reshape + Transpose', shapes: [[2, 3, 4]], f: (a) => tf.transpose(tf.reshape(a!, [4, 3, 2]), [2, 0, 1]) },
  { name: 'ExpandDims', shapes: [[3, 4]], f: (a) => tf.expandDims(a!, 1) },
  { name: 'Slice', shapes: [[1, 5, 5, 2]], f: (a) => tf.slice(a!, [0, 1, 2, 0], [-1, 3, 2, -1]) },
  { name: 'PadV2', shapes: [[1, 3, 3, 2]], f: (a) => tf.pad(a!, [[0, 0], [1, 2], [0, 1], [0, 0]]) },
  { name: 'Concat', shapes: [[2, 3, 2], [2, 3, 1]], f: (a, b) => tf.concat([a!, b!], 2) },
  // Copy before reversing: tf.unstack returns the tape node's own outputs array, so an in-place
  // reverse() would reorder the recorded outputs and corrupt the gradient.
  { name: 'Pack / Unpack', shapes: [[3, 4]], f: (a) => tf.stack([...tf.unstack(a!, 1)].reverse(), 0) },
  { name: 'SplitV', shapes: [[4, 5]], f: (a) => tf.mul(tf.split(a!, [2, 3], 1)[1]!, 2) },
  { name: 'Tile (broadcastTo)', shapes: [[3, 1]], f: (a) => tf.broadcastTo(a!, [2, 3, 4]) },
  { name: 'Tile', shapes: [[2, 1, 3]], f: (a) => tf.tile(a!, [2, 3, 1]) },
  { name: 'Cast + Identity', shapes: [[3, 4]], f: (a) => tf.clone(tf.cast(a!, 'float32')) },
  { name: 'Select', shapes: [[3, 4], [3, 4]], f: (a, b) => tf.where(tf.tensor2d([[1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], [3, 4], 'bool'), a!, b!) },
  { name: 'MaxPool', shapes: [[1, 4, 5, 2]], f: (a) => tf.maxPool(a! as tf.Tensor4D, 2, 2, 'valid') },
  { name: 'AvgPool', shapes: [[1, 4, 4, 2]], f: (a) => tf.avgPool(a! as tf.Tensor4D, 2, 2, 'same') },
  { name: 'Conv2D', shapes: [[2, 5, 5, 2], [3, 3, 2, 3]], f: (a, b) => tf.conv2d(a! as tf.Tensor4D, b! as tf.Tensor4D, 1, 'same') },
];

function values(rand: () => number, shape: number[], positive: boolean): Float32Array {
  const n = shape.reduce((a, d) => a * d, 1);
  const v = new Float32Array(n);
  // Spread values apart (distinct magnitudes ≥ 0.05 from 0) so no finite difference straddles a kink.
  for (let i = 0; i < n; i++) {
    const mag = 0.3 + 0.7 * rand();
    v[i] = positive ? mag : rand() < 0.5 ? -mag : mag;
  }
  return v;
}

describe('registered gradients vs finite differences (wasm)', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const rand = mulberry32(c.name.length * 7919 + c.shapes.length);
    const inputs = c.fixed?.map((v) => Float32Array.from(v)) ?? c.shapes.map((s) => values(rand, s, c.positive ?? false));
    tf.tidy(() => {
      const xs = inputs.map((v, i) => tf.tensor(v, c.shapes[i]!));
      const outShape = c.f(...xs).shape;
      const r = tf.tensor(values(rand, outShape, false), outShape);
      const loss = (...ts: tf.Tensor[]) => tf.sum(tf.mul(c.f(...ts), r));
      const analytic = tf.grads(loss)(xs).map((g) => g.dataSync());
      const eps = 1e-2;
      inputs.forEach((v, k) => {
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < v.length; i++) {
          const at = (delta: number) =>
            tf.tidy(() => {
              const p = Float32Array.from(v);
              p[i]! += delta;
              const args = xs.map((x, j) => (j === k ? tf.tensor(p, c.shapes[k]!) : x));
              return loss(...args).dataSync()[0]!;
            });
          const numeric = (at(eps) - at(-eps)) / (2 * eps);
          worst = Math.max(worst, Math.abs(numeric - analytic[k]![i]!));
          scale = Math.max(scale, Math.abs(numeric));
        }
        expect(worst / Math.max(scale, 1e-3), `input ${k}`).toBeLessThan(5e-3);
      });
    });
  });

  it('covers every kernel it registers', () => {
    // Case names carry the kernel names they exercise.
    const untested = GRADIENT_KERNELS.filter((k) => !cases.some((c) => c.name.split(/[^A-Za-z0-9]+/).includes(k)));
    // Step's gradient is zero by definition and is only reached through Relu's gradient.
    expect(untested).toEqual(['Step']);
  });
});
