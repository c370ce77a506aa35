// The gradients our networks and losses differentiate through, whoever registered them (upstream,
// through the tfjs-layers import in backend.ts, or our Add / Sub / Multiply overrides in
// src/models/backend/gradients.ts), checked against central finite differences on small seeded inputs, on
// wasm (the training backend). The coverage test records which gradient functions a real G step and
// D step run: each must be the one gradients.ts documents (ours for the kernels it lists, upstream's
// for every other), and each must also run in one of the cases below, so a new op in a network fails
// here until it has a case.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { OVERRIDDEN_GRADIENTS, REGISTERED_GRADIENTS, registerBroadcastGradients } from '../../src/models/backend/gradients.js';
import { createEspcn } from '../../src/models/archs/espcn.js';
import { createPatchDiscriminator } from '../../src/models/archs/discriminator.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from '../../src/models/losses/pixel-adversarial.js';
import { pixelShuffle } from '../../src/models/archs/ops.js';
import { mulberry32 } from '../../src/util/prng.js';

// The registry as importing backend.ts (and with it @tensorflow/tfjs-layers) left it: upstream's
// gradients only. Taken before anything installs ours (initBackend, in beforeAll); vitest runs each
// test file in a fresh process, so no other file has either. tfjs-core exports every kernel name.
const UPSTREAM = new Map(
  (Object.values(tf) as unknown[])
    .filter((v): v is string => typeof v === 'string')
    .map((k) => [k, tf.getGradient(k)] as const)
    .filter((e): e is readonly [string, tf.GradConfig] => e[1] != null),
);

beforeAll(async () => {
  await initBackend('wasm');
});

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

interface GradCase {
  /** What it exercises (the coverage test records which gradients really run). */
  name: string;
  shapes: number[][];
  f: Fn;
  /** Keep inputs positive (rsqrt's domain). */
  positive?: boolean;
}

const cases: GradCase[] = [
  // Our overrides, through both reduction paths: leading axes (one matMul) and any other (Sum).
  { name: 'Add: per-channel bias [C]', shapes: [[2, 2, 3, 4], [4]], f: (a, b) => tf.add(a, b) },
  {
    name: 'Add: [1, 1, 1, C]',
    shapes: [
      [2, 2, 3, 4],
      [1, 1, 1, 4],
    ],
    f: (a, b) => tf.add(a, b),
  },
  { name: 'Add: scalar', shapes: [[3, 4], []], f: (a, b) => tf.add(a, b) },
  {
    name: 'Add: same shape',
    shapes: [
      [3, 4],
      [3, 4],
    ],
    f: (a, b) => tf.add(a, b),
  },
  {
    name: 'Add: middle axis (Sum path)',
    shapes: [
      [2, 3, 4],
      [2, 1, 4],
    ],
    f: (a, b) => tf.add(a, b),
  },
  {
    name: 'Add: both operands broadcast',
    shapes: [
      [3, 1],
      [1, 4],
    ],
    f: (a, b) => tf.add(a, b),
  },
  {
    name: 'Sub: [1, 1, 1, C] (moments)',
    shapes: [
      [2, 2, 3, 4],
      [1, 1, 1, 4],
    ],
    f: (a, b) => tf.sub(a, b),
  },
  { name: 'Sub: per-channel [C]', shapes: [[2, 3, 4], [4]], f: (a, b) => tf.sub(a, b) },
  {
    name: 'Sub: same shape',
    shapes: [
      [3, 4],
      [3, 4],
    ],
    f: (a, b) => tf.sub(a, b),
  },
  {
    name: 'Sub: both operands broadcast',
    shapes: [
      [3, 1],
      [1, 4],
    ],
    f: (a, b) => tf.sub(a, b),
  },
  { name: 'Multiply: per-channel scale [C]', shapes: [[2, 2, 3, 4], [4]], f: (a, b) => tf.mul(a, b) },
  {
    name: 'Multiply: same shape',
    shapes: [
      [3, 4],
      [3, 4],
    ],
    f: (a, b) => tf.mul(a, b),
  },
  { name: 'Multiply: scalar', shapes: [[3, 4], []], f: (a, b) => tf.mul(a, b) },
  {
    name: 'Multiply: outer axes (Sum path)',
    shapes: [
      [2, 3, 4],
      [1, 3, 1],
    ],
    f: (a, b) => tf.mul(a, b),
  },
  // Upstream's, as our networks and losses use them.
  {
    name: 'SquaredDifference (mse)',
    shapes: [
      [2, 3, 4],
      [2, 3, 4],
    ],
    f: (a, b) => tf.squaredDifference(a, b),
  },
  { name: 'Mean: all axes', shapes: [[2, 3, 4]], f: (a) => tf.mean(a) },
  { name: 'Mean: keepDims over N, H, W', shapes: [[2, 2, 3, 4]], f: (a) => tf.mean(a, [0, 1, 2], true) },
  { name: 'Square', shapes: [[3, 4]], f: (a) => tf.square(a) },
  { name: 'Rsqrt', shapes: [[3, 4]], f: (a) => tf.rsqrt(a), positive: true },
  { name: 'Softplus', shapes: [[3, 4]], f: (a) => tf.softplus(a) },
  { name: 'LeakyRelu', shapes: [[3, 4]], f: (a) => tf.leakyRelu(a, 0.1) },
  { name: 'MaxPool', shapes: [[1, 4, 5, 2]], f: (a) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid') },
  { name: 'Cast', shapes: [[3, 4]], f: (a) => tf.cast(a, 'float32') },
  { name: 'Slice (shift crop)', shapes: [[1, 5, 5, 2]], f: (a) => tf.slice(a, [0, 1, 2, 0], [-1, 3, 2, -1]) },
  { name: 'Reshape + Transpose (pixel shuffle)', shapes: [[2, 2, 3, 8]], f: (a) => pixelShuffle(a as tf.Tensor4D, 2) },
  {
    name: 'Conv2D 3×3 same',
    shapes: [
      [2, 5, 5, 2],
      [3, 3, 2, 3],
    ],
    f: (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'),
  },
  {
    name: 'Conv2D 5×5 same',
    shapes: [
      [1, 6, 6, 3],
      [5, 5, 3, 2],
    ],
    f: (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'),
  },
  {
    name: 'Conv2D 1×1',
    shapes: [
      [2, 3, 3, 4],
      [1, 1, 4, 2],
    ],
    f: (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'),
  },
  // The discriminator's BatchNorm in training mode, end to end (moments, then scale and shift).
  {
    name: 'BatchNorm: Cast Mean Sub Square Rsqrt Multiply Add',
    shapes: [[2, 3, 3, 4], [4], [4]],
    f: (x, gamma, beta) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, 1e-5)));
      return tf.add(tf.mul(x, scale), tf.sub(beta, tf.mul(mean, scale)));
    },
  },
];

function values(rand: () => number, shape: number[], positive: boolean): Float32Array {
  const n = shape.reduce((a, d) => a * d, 1);
  const v = new Float32Array(n);
  // Magnitudes in [0.3, 1]: no finite difference straddles a kink (LeakyRelu at 0).
  for (let i = 0; i < n; i++) {
    const mag = 0.3 + 0.7 * rand();
    v[i] = positive ? mag : rand() < 0.5 ? -mag : mag;
  }
  return v;
}

describe('gradients vs finite differences (wasm)', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const rand = mulberry32(c.name.length * 7919 + c.shapes.length);
    const inputs = c.shapes.map((s) => values(rand, s, c.positive ?? false));
    tf.tidy(() => {
      const xs = inputs.map((v, i) => tf.tensor(v, c.shapes[i]));
      const outShape = c.f(...xs).shape;
      const r = tf.tensor(values(rand, outShape, false), outShape);
      const loss = (...ts: tf.Tensor[]) => tf.sum(tf.mul(c.f(...ts), r));
      const analytic = tf
        .grads(loss)(xs)
        .map((g) => g.dataSync());
      const eps = 1e-2;
      inputs.forEach((v, k) => {
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < v.length; i++) {
          const at = (delta: number) =>
            tf.tidy(() => {
              const p = Float32Array.from(v);
              p[i] += delta;
              const args = xs.map((x, j) => (j === k ? tf.tensor(p, c.shapes[k]) : x));
              return loss(...args).dataSync()[0];
            });
          const numeric = (at(eps) - at(-eps)) / (2 * eps);
          worst = Math.max(worst, Math.abs(numeric - analytic[k][i]));
          scale = Math.max(scale, Math.abs(numeric));
        }
        expect(worst / Math.max(scale, 1e-3), `input ${k}`).toBeLessThan(5e-3);
      });
    });
  });
});

/**
 * The gradient configs that run while `f` runs, by kernel name: the config objects registered at the
 * time. Wraps each candidate's gradient (the kernels `f` executes, from tf.profile) with a recorder,
 * and puts the originals back after.
 */
async function gradientsCalledBy(f: () => void): Promise<Map<string, tf.GradConfig>> {
  const { kernelNames } = await tf.profile(f);
  const called = new Map<string, tf.GradConfig>();
  const originals = kernelNames.map((k) => tf.getGradient(k)).filter((g) => g != null);
  for (const g of new Set(originals)) {
    tf.unregisterGradient(g.kernelName);
    tf.registerGradient({
      ...g,
      gradFunc: (dy, saved, attrs) => {
        called.set(g.kernelName, g);
        return g.gradFunc(dy, saved, attrs);
      },
    });
  }
  try {
    f();
  } finally {
    for (const g of new Set(originals)) {
      tf.unregisterGradient(g.kernelName);
      tf.registerGradient(g);
    }
  }
  return called;
}

/** The gradient configs that computing a case's gradients runs. */
function caseGradients(c: GradCase): Promise<Map<string, tf.GradConfig>> {
  const rand = mulberry32(1);
  return gradientsCalledBy(() =>
    tf.tidy(() => {
      const xs = c.shapes.map((shape) => tf.tensor(values(rand, shape, c.positive ?? false), shape));
      tf.grads((...ts: tf.Tensor[]) => tf.sum(c.f(...ts)))(xs);
    }),
  );
}

describe('coverage', () => {
  it('gradients.ts installs ours for the kernels its header lists, and only those', () => {
    // The header's groups: 1. Add, Sub, Multiply (broadcast); 2. Conv2D (dilation); 3. DepthToSpace (added); 4. Mean.
    expect([...OVERRIDDEN_GRADIENTS]).toEqual(['Add', 'Sub', 'Multiply']);
    expect([...REGISTERED_GRADIENTS]).toEqual(['Add', 'Sub', 'Multiply', 'Conv2D', 'DepthToSpace', 'Mean']);
    // Upstream registered the first four and has no DepthToSpace gradient; ours replaced each.
    expect(UPSTREAM.has(tf.DepthToSpace)).toBe(false);
    for (const k of REGISTERED_GRADIENTS) {
      const ours = tf.getGradient(k);
      expect(ours, k).toBeDefined();
      expect(ours, k).not.toBe(UPSTREAM.get(k));
      registerBroadcastGradients();
      expect(tf.getGradient(k), k).toBe(ours);
    }
    // Every other kernel keeps upstream's gradient.
    for (const [k, g] of UPSTREAM) if (!REGISTERED_GRADIENTS.includes(k)) expect(tf.getGradient(k), k).toBe(g);
  });

  it("a G step and a D step run ours or upstream's gradients as documented, and every one also runs in a case", async () => {
    // The trainer's step (src/trainer/worker.ts) at toy size.
    const G = createEspcn({ channels: 4, scale: 2, seed: 1 });
    const D = createPatchDiscriminator({ mid: 2, seed: 2 });
    const rand = mulberry32(3);
    const step = () =>
      tf.tidy(() => {
        const hr = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
        const lr = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
        let y!: tf.Tensor4D;
        tf.variableGrads(() => {
          y = tf.keep(G.apply(lr));
          const [cy, cl] = shiftCrop([y, hr], 2, rand);
          const adv = generatorAdvLoss(D.apply(cy, { training: true }), D.apply(cl, { training: true }));
          return tf.add(mse(y, hr), tf.mul(adv, 1e-3)) as tf.Scalar;
        }, Object.values(G.variables));
        tf.variableGrads(() => {
          const [cy, cl] = shiftCrop([y, hr], 2, rand);
          return discriminatorLoss(D.apply(cy, { training: true }), D.apply(cl, { training: true }));
        }, Object.values(D.variables));
        y.dispose();
      });
    const called = await gradientsCalledBy(step);
    D.commitStats();
    G.dispose();
    D.dispose();

    // A sanity check on the recorder: the convolutions and our overrides must show up.
    expect([...called.keys()]).toEqual(expect.arrayContaining(['Conv2D', ...OVERRIDDEN_GRADIENTS]));
    for (const [k, g] of called) {
      if (REGISTERED_GRADIENTS.includes(k)) {
        expect(g, `${k}: ours`).not.toBe(UPSTREAM.get(k));
        expect(g, `${k}: ours`).toBe(tf.getGradient(k));
      } else {
        expect(g, `${k}: upstream's`).toBe(UPSTREAM.get(k));
      }
    }

    // Coverage by what runs, not by what a case is called: each gradient the steps ran (the same config
    // object) runs while some case's gradients are computed.
    const covered = new Map<string, tf.GradConfig>();
    for (const c of cases) for (const [k, g] of await caseGradients(c)) covered.set(k, g);
    const untested = [...called].filter(([k, g]) => covered.get(k) !== g).map(([k]) => k);
    expect(untested).toEqual([]);
  });
});

describe('our broadcast gradients', () => {
  const biasGradKernels = async (): Promise<string[]> => {
    const x = tf.ones([8, 16, 16, 4]);
    const b = tf.zeros([4]);
    const { kernelNames } = await tf.profile(() => {
      tf.dispose(tf.grad((t: tf.Tensor) => tf.sum(tf.add(x, t)))(b));
    });
    tf.dispose([x, b]);
    return kernelNames;
  };

  it('are installed over upstream: a bias gradient is one matMul, no Sum over the batch', async () => {
    for (const k of OVERRIDDEN_GRADIENTS) expect(tf.getGradient(k), k).toBeDefined();
    const kernels = await biasGradKernels();
    expect(kernels).toContain('BatchMatMul');
    // The only Sum left is the scalar loss itself (tf.sum in the function differentiated).
    expect(kernels.filter((k) => k === 'Sum')).toHaveLength(1);
  });

  it('register idempotently, and take the registry back from a later registration', () => {
    const ours = OVERRIDDEN_GRADIENTS.map((k) => tf.getGradient(k));
    registerBroadcastGradients();
    expect(OVERRIDDEN_GRADIENTS.map((k) => tf.getGradient(k))).toEqual(ours);
    ours.forEach((g, i) => expect(tf.getGradient(OVERRIDDEN_GRADIENTS[i])).toBe(g));

    // As if something registered upstream's again (importing the @tensorflow/tfjs union package does).
    tf.unregisterGradient(tf.Add);
    tf.registerGradient({ ...ours[0] });
    expect(tf.getGradient(tf.Add)).not.toBe(ours[0]);
    registerBroadcastGradients();
    expect(tf.getGradient(tf.Add)).toBe(ours[0]);
  });
});

describe('initBackend', () => {
  const conv = tf.getGradient(tf.Conv2D);
  afterAll(() => {
    if (tf.getGradient(tf.Conv2D) == null) tf.registerGradient(conv);
  });

  it('refuses to start when upstream gradients are missing (SRGAN_ERR_BACKEND)', async () => {
    tf.unregisterGradient(tf.Conv2D);
    await expect(initBackend('wasm')).rejects.toMatchObject({ code: 'SRGAN_ERR_BACKEND' });
    tf.registerGradient(conv);
    await expect(initBackend('wasm')).resolves.toMatchObject({ name: 'wasm' });
  });
});
