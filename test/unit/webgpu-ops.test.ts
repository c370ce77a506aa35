// Every op the presets train with, on the webgpu rung against the cpu reference: forward values and
// gradients, computed from the same seeded inputs on both backends in one process. Needs a WebGPU
// adapter: on a machine without a card, SwiftShader's Vulkan driver from Debian's chromium package
// and the Vulkan loader (libvulkan1), taken through SRGAN_WEBGPU_SOFTWARE=1 (docs/backends.md,
// "webgpu"). `.ci/run` installs both and sets SRGAN_REQUIRE_WEBGPU=1, so there the cases must run.
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, SOFTWARE_ADAPTER_ENV, SWIFTSHADER_ICD, takeGpuErrors, type AdapterInfo } from '../../src/models/backend/ladder.js';
import { conv2d, pixelShuffle, seededUniform, upsampleBilinear2x, upsampleNearest2x } from '../../src/models/archs/ops.js';
import { buildDiscriminator, buildGenerator } from '../../src/models/archs/build.js';
import type { DiscriminatorConfig, GeneratorConfig } from '../../src/config/presets.js';
import { discriminatorLoss, generatorAdvLoss } from '../../src/models/losses/pixel-adversarial.js';
import { createPerceptualLoss } from '../../src/models/losses/perceptual.js';
import { mulberry32 } from '../../src/util/prng.js';

let gpu: string | null = null;
let why = '';
/** Where the software adapter can be had: chromium's SwiftShader driver and the Vulkan loader. */
const swiftshader =
  fs.existsSync(SWIFTSHADER_ICD) &&
  ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1'].some((f) => fs.existsSync(f));

beforeAll(async () => {
  if (swiftshader) {
    // Only ever on request: a forced webgpu without the switch, and auto with it, refuse the software adapter.
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    delete process.env[SOFTWARE_ADAPTER_ENV];
    refusals.forced = await selectBackend('webgpu').then(
      () => 'taken',
      (err: Error) => err.message,
    );
    process.env[SOFTWARE_ADAPTER_ENV] = '1';
    const auto = await selectBackend('auto');
    refusals.auto = `${auto.name}; webgpu: ${auto.skipped.find((s) => s.name === 'webgpu')?.why ?? 'not skipped'}`;
  }
  process.env[SOFTWARE_ADAPTER_ENV] = '1';
  try {
    const sel = await selectBackend('webgpu');
    gpu = sel.reason;
    adapter = sel.adapter ?? null;
  } catch (err) {
    why = (err as Error).message;
  }
  await tf.setBackend('cpu');
}, 60_000);
const refusals: { forced?: string; auto?: string } = {};
let adapter: AdapterInfo | null = null;

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs `fn` (which builds its inputs from seeds) on `backend`; returns every output's values. */
async function runOn(backend: string, fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = fn();
  try {
    return await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
  } finally {
    tf.dispose(outs);
  }
}

/**
 * `fn` on cpu and on webgpu: each output within `rtol` of the cpu output's largest magnitude.
 * Returns the worst relative difference, for the log.
 */
async function agree(label: string, fn: () => tf.Tensor[], rtol = 1e-4): Promise<number> {
  const want = await runOn('cpu', fn);
  const got = await runOn('webgpu', fn);
  expect(takeGpuErrors(), `${label}: GPU errors`).toEqual([]);
  let worst = 0;
  want.forEach((w, i) => {
    expect(got[i].length, `${label}: output ${i} size`).toBe(w.length);
    const scale = Math.max(1e-6, ...w.map(Math.abs));
    let diff = 0;
    for (let j = 0; j < w.length; j++) diff = Math.max(diff, Math.abs(got[i][j] - w[j]));
    expect(Number.isFinite(diff), `${label}: output ${i} finite`).toBe(true);
    worst = Math.max(worst, diff / scale);
  });
  console.log(`${label}: worst |Δ|/max|ref| = ${worst.toExponential(2)}`);
  expect(worst, label).toBeLessThanOrEqual(rtol);
  return worst;
}

const rand4 = (shape: [number, number, number, number], seed: number) => tf.add(seededUniform(shape, 0.5, seed), 0.5) as tf.Tensor4D;

/** The value of `loss` and its gradients with respect to each input. */
function withGrads(inputs: tf.Tensor[], loss: (...xs: tf.Tensor[]) => tf.Scalar): tf.Tensor[] {
  const { value, grads } = tf.valueAndGrads(loss)(inputs);
  return [value, ...grads];
}

/** A loss that weighs every output element differently, so a gradient that mixes up positions shows. */
function weighted(y: tf.Tensor): tf.Scalar {
  const w = tf.reshape(tf.add(seededUniform([y.size], 1, 99), 1), y.shape);
  return tf.sum(tf.mul(y, w));
}

describe('webgpu rung vs cpu', () => {
  it('has an adapter where it must', () => {
    if (process.env.SRGAN_REQUIRE_WEBGPU === '1') expect(gpu, `no webgpu adapter: ${why}`).not.toBeNull();
    if (gpu === null) console.log(`webgpu cases skipped: ${why}`);
  });

  it('takes a software adapter only when forced and switched on, and says what it is', (ctx) => {
    if (!swiftshader || gpu === null) return ctx.skip();
    expect(refusals.forced).toMatch(
      /backend "webgpu" cannot be used: the only GPU adapter is a software one, google swiftshader .*SRGAN_WEBGPU_SOFTWARE=1/,
    );
    expect(refusals.auto).toMatch(/^wasm(-native)?; webgpu: the only GPU adapter is a software one/);
    expect(adapter).toMatchObject({ vendor: 'google', architecture: 'swiftshader', software: true });
    expect(gpu).toMatch(/^webgpu on Dawn, google swiftshader \(SwiftShader .*; software adapter\)$/);
  });

  const gpuIt = (name: string, fn: () => Promise<void>, timeout = 120_000) =>
    it(
      name,
      async (ctx) => {
        if (gpu === null) return ctx.skip();
        await fn();
      },
      timeout,
    );

  gpuIt('addN of more tensors than a shader may bind (webgpu-kernels.ts), and isFinite/where with a scalar condition', async () => {
    for (const n of [2, 7, 8, 23]) {
      await agree(`addN of ${n}`, () => [tf.addN(Array.from({ length: n }, (_, i) => rand4([2, 3, 4, 5], 40 + i)))]);
    }
    await agree('where(isFinite(scalar), a, b)', () => {
      const a = rand4([2, 3, 4, 5], 1);
      const b = rand4([2, 3, 4, 5], 2);
      const bad = tf.div(tf.scalar(0), tf.scalar(0));
      return [tf.where(tf.isFinite(tf.scalar(1.5)), a, b), tf.where(tf.isFinite(bad), a, b)];
    });
  });

  gpuIt('conv2d forward and both gradients: strides, dilation, same/valid/explicit padding, with and without bias', async () => {
    const cases: { k: number; stride?: number; dilation?: number; pad?: 'same' | 'valid' | number; bias: boolean; hw: [number, number] }[] =
      [
        { k: 3, bias: true, hw: [9, 11] },
        { k: 3, stride: 2, bias: true, hw: [9, 11] },
        { k: 4, stride: 2, pad: 1, bias: false, hw: [16, 12] },
        { k: 3, dilation: 2, bias: true, hw: [10, 9] },
        { k: 3, dilation: 3, pad: 'valid', bias: false, hw: [12, 13] },
        { k: 5, pad: 'valid', bias: true, hw: [9, 9] },
      ];
    for (const c of cases) {
      await agree(`conv2d k${c.k} s${c.stride ?? 1} d${c.dilation ?? 1} ${c.pad ?? 'same'}${c.bias ? ' +b' : ''}`, () => {
        const x = rand4([2, ...c.hw, 5], 1);
        const w = seededUniform([c.k, c.k, 5, 7], 0.3, 2) as tf.Tensor4D;
        const b = seededUniform([7], 0.3, 3) as tf.Tensor1D;
        const opts = { stride: c.stride, dilation: c.dilation, pad: c.pad };
        return c.bias
          ? withGrads([x, w, b], (xx, ww, bb) => weighted(conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D, opts)))
          : withGrads([x, w], (xx, ww) => weighted(conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, null, opts)));
      });
    }
  });

  gpuIt('depth-to-space (tf.depthToSpace and pixelShuffle ×2, ×4) and the upsampling ops, with gradients', async () => {
    await agree('depthToSpace ×2', () => withGrads([rand4([2, 5, 6, 12], 4)], (x) => weighted(tf.depthToSpace(x as tf.Tensor4D, 2))));
    await agree('pixelShuffle ×4', () => withGrads([rand4([1, 4, 3, 48], 5)], (x) => weighted(pixelShuffle(x as tf.Tensor4D, 4))));
    await agree('nearest ×2', () => withGrads([rand4([2, 5, 7, 3], 6)], (x) => weighted(upsampleNearest2x(x as tf.Tensor4D))));
    await agree('bilinear ×2', () => withGrads([rand4([2, 5, 7, 3], 7)], (x) => weighted(upsampleBilinear2x(x as tf.Tensor4D))));
  });

  gpuIt('LeakyReLU, PReLU and max-pool, with gradients', async () => {
    const signed = () => tf.sub(rand4([2, 6, 8, 4], 8), 0.5) as tf.Tensor4D;
    await agree('leakyRelu', () => withGrads([signed()], (x) => weighted(tf.leakyRelu(x, 0.2))));
    await agree('prelu', () => withGrads([signed(), seededUniform([4], 0.5, 9)], (x, a) => weighted(tf.prelu(x, a))));
    await agree('maxPool 2×2', () => withGrads([rand4([2, 8, 6, 3], 10)], (x) => weighted(tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'))));
  });

  gpuIt('the capped relativistic losses and their custom gradients', async () => {
    const logits = (seed: number) => tf.mul(tf.sub(rand4([2, 3, 3, 1], seed), 0.5), 8);
    await agree('discriminatorLoss', () => withGrads([logits(11), logits(12)], (a, b) => discriminatorLoss(a, b)));
    await agree('generatorAdvLoss', () => withGrads([logits(13), logits(14)], (a, b) => generatorAdvLoss(a, b)));
  });

  const generators: [string, GeneratorConfig, 2 | 4][] = [
    ['espcn (skip, depth)', { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 2 }, 2],
    ['final (dilated blocks)', { kind: 'final', channels: 8, blocks: 2, dilatedBlocks: true }, 2],
    ['rrdbnet ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4],
    ['compact ×4 (PReLU)', { kind: 'compact', channels: 8, convs: 2 }, 4],
  ];
  for (const [name, cfg, scale] of generators) {
    gpuIt(`generator ${name}: output and every weight's gradient`, async () => {
      await agree(`G ${name}`, () => {
        const G = buildGenerator(cfg, scale, 21);
        const x = rand4([1, 8, 6, 3], 22);
        const vars = Object.values(G.variables);
        const { value, grads } = tf.variableGrads(() => weighted(G.apply(x)), vars);
        const out = [value, ...vars.map((v) => grads[v.name])];
        G.dispose();
        return out;
      });
    });
  }

  const discriminators: [string, DiscriminatorConfig][] = [
    ['patch (BatchNorm, training mode)', { kind: 'patch', mid: 4 }],
    ['dilated (BatchNorm)', { kind: 'dilated', mid: 4 }],
    ['unet (spectral norm)', { kind: 'unet', channels: 4 }],
  ];
  for (const [name, cfg] of discriminators) {
    gpuIt(`discriminator ${name}: logits, input and weight gradients, and the statistics it updates`, async () => {
      await agree(`D ${name}`, () => {
        const D = buildDiscriminator(cfg, 31);
        const x = rand4([2, 32, 32, 3], 32);
        const vars = Object.values(D.variables);
        const { value, grads } = tf.variableGrads(() => weighted(D.apply(x, { training: true })), vars);
        const dx = tf.grad((xx: tf.Tensor) => weighted(D.apply(xx as tf.Tensor4D, { training: true })))(x);
        D.commitStats();
        const stats = Object.values(D.stats).map((s) => tf.clone(s));
        const out = [value, dx, ...vars.map((v) => grads[v.name]), ...stats];
        D.dispose();
        return out;
      });
    });
  }

  gpuIt(
    'the perceptual feature network (bundled): both losses and their gradient',
    async () => {
      // No shift crops (maxShift 0): the same net, called once per backend, must draw nothing.
      const net = await createPerceptualLoss(
        { kind: 'bundled', path: null, weight: 1e-4, halfWeight: 1e-4, preprocess: 'torch', maxShift: 0 },
        mulberry32(41),
      );
      try {
        await agree(
          'perceptual',
          () => {
            const label = rand4([1, 24, 24, 3], 43);
            return withGrads([rand4([1, 24, 24, 3], 42)], (y) => {
              const { full, half } = net.apply(y as tf.Tensor4D, label);
              return tf.add(full, half) as tf.Scalar;
            });
          },
          1e-3,
        );
      } finally {
        net.dispose();
      }
    },
    300_000,
  );

  gpuIt('Adam: three updates of the same gradients', async () => {
    await agree('adam', () => {
      const v = tf.variable(seededUniform([3, 3, 4, 5], 0.5, 51));
      const opt = tf.train.adam(1e-2, 0.9, 0.999, 1e-8);
      for (let i = 0; i < 3; i++) opt.applyGradients({ [v.name]: tf.mul(seededUniform([3, 3, 4, 5], 1, 52 + i), i + 1) });
      const out = [tf.clone(v)];
      opt.dispose();
      v.dispose();
      return out;
    });
  });
});
