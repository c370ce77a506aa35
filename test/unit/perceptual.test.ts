// The perceptual loss (docs/seed.md §4.2, docs/perceptual.md): the fs model handler, the frozen feature
// graph, VGG16 files (a small VGG-shaped model built and saved here, checked against a reference
// computed in this file from its weights), the bundled nsfwjs MobileNetV2, and 'off'. Inputs are tiny.

import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import { SrganError } from '../../src/util/errors.js';
import { initBackend } from '../../src/models/backend/init.js';
import { depthwiseConv2dFrozen } from '../../src/models/losses/feature-graph.js';
import { fileModelIO } from '../../src/models/io/layers-io.js';
import {
  BUNDLED_CALIBRATION,
  BUNDLED_LAYERS,
  createPerceptualLoss,
  gammaDownsample2,
  type PerceptualLoss,
  type PerceptualOptions,
} from '../../src/models/losses/perceptual.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import { mulberry32 } from '../../src/util/prng.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-perceptual-');
afterAll(() => tmp.cleanup());

beforeAll(async () => {
  await initBackend('wasm');
});

/** A VGG-shaped stack: conv widths, 'pool' for a 2×2 max-pool, optional extra layers. */
type Spec = Array<number | 'pool' | 'dropout'>;
const VGG_SPEC: Spec = [4, 4, 'pool', 6, 6, 'pool', 8, 8, 8, 8]; // 8 convs: the 8th must be ignored

/** Builds a Sequential from `spec` with seeded weights and saves it under tmp/name. */
async function saveVggLike(name: string, spec: Spec, inChannels = 3): Promise<{ dir: string; weights: tf.Tensor[][] }> {
  const m = tfl.sequential();
  let cin = inChannels;
  let k = 0;
  const weights: tf.Tensor[][] = [];
  for (const item of spec) {
    const first = m.layers.length === 0 ? { inputShape: [null, null, inChannels] } : {};
    if (item === 'pool') m.add(tfl.layers.maxPooling2d({ poolSize: 2, strides: 2, ...first }));
    else if (item === 'dropout') m.add(tfl.layers.dropout({ rate: 0.5, ...first }));
    else {
      const conv = tfl.layers.conv2d({ name: `c${++k}`, filters: item, kernelSize: 3, padding: 'same', activation: 'relu', ...first });
      m.add(conv);
      const w = [seededUniform([3, 3, cin, item], 0.4, 100 + k), seededUniform([item], 0.1, 200 + k)];
      conv.setWeights(w);
      weights.push(w);
      cin = item;
    }
  }
  const dir = path.join(tmp.dir, name);
  await m.save(fileModelIO(dir));
  m.dispose();
  return { dir, weights };
}

// torchvision's published ImageNet statistics (its pretrained models' Normalize), written out here so
// that a changed constant in perceptual.ts shows as a different distance.
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Independent reference: the seed's 7 features (relu for 1–6, raw conv for 7) of a VGG-like spec. */
function referenceFeatures(x: tf.Tensor4D, spec: Spec, weights: tf.Tensor[][], caffe = false): tf.Tensor[] {
  let h: tf.Tensor4D = caffe
    ? tf.sub(tf.mul(tf.reverse(x, 3), 255), [103.939, 116.779, 123.68])
    : tf.div(tf.sub(x, IMAGENET_MEAN), IMAGENET_STD);
  const feats: tf.Tensor[] = [];
  let k = 0;
  for (const item of spec) {
    if (item === 'pool') h = tf.maxPool(h, 2, 2, 'valid');
    if (typeof item !== 'number') continue;
    const [w, b] = weights[k++];
    const lin = tf.add(tf.conv2d(h, w as tf.Tensor4D, 1, 'same'), b) as tf.Tensor4D;
    feats.push(k < 7 ? tf.relu(lin) : lin);
    if (k === 7) break;
    h = tf.relu(lin);
  }
  return feats;
}

const referenceDistance = (a: tf.Tensor4D, b: tf.Tensor4D, spec: Spec, weights: tf.Tensor[][], caffe = false): number =>
  tf.tidy(() => {
    const fa = referenceFeatures(a, spec, weights, caffe);
    const fb = referenceFeatures(b, spec, weights, caffe);
    return fa.reduce((s, f, i) => s + tf.mean(tf.squaredDifference(f, fb[i])).dataSync()[0], 0);
  });

/** A rand that replays `values` (cycling) and counts its calls. */
function replay(values: number[]): (() => number) & { calls: number } {
  const f = Object.assign(() => values[f.calls++ % values.length], { calls: 0 });
  return f;
}

const crop = (x: tf.Tensor4D, off: number, size: number): tf.Tensor4D => tf.slice(x, [0, off, off, 0], [-1, size, size, -1]);
const num = (t: tf.Tensor): number => t.dataSync()[0];

async function configError(opts: PerceptualOptions): Promise<SrganError> {
  const err = await createPerceptualLoss(opts, Math.random).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SrganError);
  expect((err as SrganError).code).toBe('SRGAN_ERR_CONFIG');
  return err as SrganError;
}

describe('fileModelIO', () => {
  it('saves model.json plus content-named shards and loads the same weights back', async () => {
    const dir = path.join(tmp.dir, 'roundtrip');
    const m = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [2] })] });
    m.layers[0].setWeights([tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), tf.tensor1d([7, 8, 9])]);
    await m.save(fileModelIO(dir, { shardBytes: 1024 }));
    const shards1 = fs.readdirSync(dir).filter((f) => f.endsWith('.bin'));
    expect(shards1).toHaveLength(1);
    expect(shards1[0]).toMatch(/^group1-shard1of1-[0-9a-f]{12}\.bin$/);

    const back = await tfl.loadLayersModel(fileModelIO(path.join(dir, 'model.json')));
    expect(Array.from(back.layers[0].getWeights()[0].dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(back.layers[0].getWeights()[1].dataSync())).toEqual([7, 8, 9]);

    // Re-saving other weights replaces the shards; the old ones are removed, no temp files stay.
    m.layers[0].setWeights([tf.zeros([2, 3]), tf.ones([3])]);
    await m.save(fileModelIO(dir));
    const files = fs.readdirSync(dir);
    expect(files.filter((f) => f.endsWith('.bin'))).toHaveLength(1);
    expect(files).not.toContain(shards1[0]);
    expect(files.some((f) => f.endsWith('.tmp'))).toBe(false);
    m.dispose();
    back.dispose();
  });

  it('rejects a missing file, bad JSON, short shards and shard paths outside the directory', async () => {
    const load = (p: string) => fileModelIO(p).load!();
    await expect(load(path.join(tmp.dir, 'nope', 'model.json'))).rejects.toThrow(/no such file/);
    const dir = path.join(tmp.dir, 'broken');
    fs.mkdirSync(dir, { recursive: true });
    const json = path.join(dir, 'model.json');
    fs.writeFileSync(json, '{"modelTopology": ');
    await expect(load(json)).rejects.toThrow(/is not JSON/);
    const weights = [{ name: 'w', shape: [4], dtype: 'float32' }];
    fs.writeFileSync(json, JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights }] }));
    fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.alloc(12));
    await expect(load(json)).rejects.toThrow(/hold 12 bytes.*need 16/);
    fs.writeFileSync(json, JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['../x.bin'], weights }] }));
    await expect(load(json)).rejects.toThrow(/leaves the model's directory/);
  });
});

describe('depthwiseConv2dFrozen', () => {
  // y = f(x) is linear in x, so its gradient g(dy) is the adjoint: <f(x), dy> = <x, g(dy)>.
  it.each([
    ['stride 1 same', 9, [1, 1], 'same', [1, 1]],
    ['stride 2 valid, odd size', 9, [2, 2], 'valid', [1, 1]],
    ['stride 2 same, even size', 8, [2, 2], 'same', [1, 1]],
    ['stride 2 same, odd size', 7, [2, 2], 'same', [1, 1]],
    ['dilation 2 same', 9, [1, 1], 'same', [2, 2]],
  ] as const)('matches tf.depthwiseConv2d and has the adjoint as gradient (%s)', (_, size, strides, pad, dilation) => {
    tf.tidy(() => {
      const x = seededUniform([2, size, size, 3], 1, 1) as tf.Tensor4D;
      const w = seededUniform([3, 3, 3, 1], 1, 2) as tf.Tensor4D;
      const y = depthwiseConv2dFrozen(x, w, [...strides], pad, [...dilation]);
      const want = tf.depthwiseConv2d(x, w, [...strides], pad, 'NHWC', [...dilation]);
      expect(num(tf.max(tf.abs(tf.sub(y, want))))).toBeLessThan(1e-5);
      const dy = seededUniform(y.shape, 1, 3);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(depthwiseConv2dFrozen(t as tf.Tensor4D, w, [...strides], pad, [...dilation]), dy)))(
        x,
      );
      expect(g.shape).toEqual(x.shape);
      expect(num(tf.sum(tf.mul(x, g)))).toBeCloseTo(num(tf.sum(tf.mul(y, dy))), 3);
    });
  });
});

describe('gammaDownsample2', () => {
  it('clips to [1e-6, 1], then averages x^2.2 over 2×2 blocks and takes the 1/2.2 power', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([-0.5, 0.25, 1.5, 0.64], [1, 2, 2, 1]);
      const want = ((1e-6 ** 2.2 + 0.25 ** 2.2 + 1 + 0.64 ** 2.2) / 4) ** (1 / 2.2);
      expect(num(gammaDownsample2(x))).toBeCloseTo(want, 5);
      expect(gammaDownsample2(tf.zeros([1, 5, 7, 3])).shape).toEqual([1, 2, 3, 3]);
    });
  });
});

describe('perceptual kind "vgg16"', () => {
  let vgg: { dir: string; weights: tf.Tensor[][] };
  let loss: PerceptualLoss;
  beforeAll(async () => {
    vgg = await saveVggLike('vgg', VGG_SPEC);
    loss = await createPerceptualLoss({ kind: 'vgg16', path: path.join(vgg.dir, 'model.json'), maxShift: 4 }, Math.random);
  });
  afterAll(() => loss.dispose());

  it('reads the first 7 convs in order: 1–6 after ReLU, the 7th before it', () => {
    expect(loss.kind).toBe('vgg16');
    expect(loss.layers).toEqual(['c1:relu', 'c2:relu', 'c3:relu', 'c4:relu', 'c5:relu', 'c6:relu', 'c7:linear']);
    expect(loss.weight).toBe(1e-4);
    expect(loss.halfWeight).toBe(1e-4);
    expect(loss.calibration).toEqual({ full: 1, half: 1 });
    expect(loss.describe).toMatch(/vgg16 .*torchvision ImageNet normalisation.*shift 4/);
  });

  it('full term = 1e-4 · Σ MSE of the ImageNet-normalised features of the shift crop', () => {
    tf.tidy(() => {
      const y = tf.add(seededUniform([2, 20, 20, 3], 0.5, 5), 0.5) as tf.Tensor4D;
      const label = tf.add(seededUniform([2, 20, 20, 3], 0.5, 6), 0.5) as tf.Tensor4D;
      const want = referenceDistance(crop(y, 2, 16), crop(label, 2, 16), VGG_SPEC, vgg.weights);
      expect(num(loss.distance(crop(y, 2, 16), crop(label, 2, 16)))).toBeCloseTo(want, 4);
    });
  });

  it('half term: shift crop, clip, gamma downsample, then the same features; each term draws its own shift', async () => {
    // rand 0.5 → offset 2 (maxShift 4) for the full term; 0 then 0.99 → x 0, y 3 for the half term.
    const rand = replay([0.5, 0.5, 0, 0.99]);
    const l = await createPerceptualLoss({ kind: 'vgg16', path: vgg.dir, maxShift: 4, weight: 2e-4, halfWeight: 3e-4 }, rand);
    tf.tidy(() => {
      const y = tf.add(seededUniform([1, 20, 20, 3], 0.7, 7), 0.5) as tf.Tensor4D; // some values < 0 and > 1
      const label = tf.add(seededUniform([1, 20, 20, 3], 0.5, 8), 0.5) as tf.Tensor4D;
      const { full, half } = l.apply(y, label);
      expect(rand.calls).toBe(4);
      const fullWant = 2e-4 * referenceDistance(crop(y, 2, 16), crop(label, 2, 16), VGG_SPEC, vgg.weights);
      expect(num(full) / fullWant).toBeCloseTo(1, 4);
      const hc = (t: tf.Tensor4D) => tf.slice(t, [0, 3, 0, 0], [-1, 16, 16, -1]);
      const g = (t: tf.Tensor4D) =>
        tf.pow(tf.avgPool(tf.pow(tf.clipByValue(t, 1e-6, 1), 2.2) as tf.Tensor4D, 2, 2, 'valid'), 1 / 2.2) as tf.Tensor4D;
      const halfWant = 3e-4 * referenceDistance(g(hc(y)), g(hc(label)), VGG_SPEC, vgg.weights);
      expect(num(half) / halfWant).toBeCloseTo(1, 4);
    });
    l.dispose();
  });

  it('weight 0 turns a term off (exactly 0, no shift drawn)', async () => {
    const rand = replay([0.3]);
    const l = await createPerceptualLoss({ kind: 'vgg16', path: vgg.dir, halfWeight: 0 }, rand);
    tf.tidy(() => {
      const { full, half } = l.apply(tf.fill([1, 24, 24, 3], 0.2) as tf.Tensor4D, tf.fill([1, 24, 24, 3], 0.6) as tf.Tensor4D);
      expect(num(full)).toBeGreaterThan(0);
      expect(num(half)).toBe(0);
      expect(rand.calls).toBe(2);
    });
    l.dispose();
  });

  it("preprocess 'caffe': BGR, 0–255, mean subtracted", async () => {
    const l = await createPerceptualLoss({ kind: 'vgg16', path: vgg.dir, preprocess: 'caffe' }, Math.random);
    expect(l.describe).toMatch(/caffe/);
    tf.tidy(() => {
      const a = tf.add(seededUniform([1, 12, 12, 3], 0.5, 9), 0.5) as tf.Tensor4D;
      const b = tf.add(seededUniform([1, 12, 12, 3], 0.5, 10), 0.5) as tf.Tensor4D;
      expect(num(l.distance(a, b)) / referenceDistance(a, b, VGG_SPEC, vgg.weights, true)).toBeCloseTo(1, 4);
    });
    l.dispose();
  });

  it('has a finite, nonzero gradient w.r.t. y; its weights are constants that a training step leaves alone', () => {
    const y = tf.variable(tf.add(seededUniform([1, 24, 24, 3], 0.8, 11), 0.5), true, 'perceptual_test_y');
    const label = tf.tidy(() => tf.add(seededUniform([1, 24, 24, 3], 0.5, 12), 0.5) as tf.Tensor4D);
    const probe = tf.tidy(() => [tf.add(seededUniform([1, 16, 16, 3], 0.5, 13), 0.5), tf.fill([1, 16, 16, 3], 0.5)] as tf.Tensor4D[]);
    const before = num(tf.tidy(() => loss.distance(probe[0], probe[1])));
    const y0 = y.dataSync().slice();
    const sgd = tf.train.sgd(100); // holds a tensor of its own: made before counting
    const tensors = tf.memory().numTensors;
    tf.tidy(() => {
      // No variable list: every trainable variable in the process would get a gradient.
      const { grads } = tf.variableGrads(() => {
        const { full, half } = loss.apply(y as tf.Tensor4D, label);
        return tf.add(full, half) as tf.Scalar;
      });
      expect(Object.keys(grads)).toEqual(['perceptual_test_y']);
      const g = grads.perceptual_test_y;
      expect(num(tf.sum(tf.cast(tf.isFinite(g), 'float32')))).toBe(g.size);
      expect(num(tf.sum(tf.abs(g)))).toBeGreaterThan(0);
      sgd.applyGradients(grads);
    });
    expect(tf.memory().numTensors).toBe(tensors); // tidy-safe: nothing leaks from apply or its gradient
    expect(num(tf.tidy(() => loss.distance(probe[0], probe[1])))).toBe(before);
    expect(y.dataSync().some((v, i) => v !== y0[i])).toBe(true); // the step did move y
    tf.dispose([y, label, ...probe]);
    sgd.dispose();
  });

  it('rejects files that are missing, not LayersModels, too shallow, or not RGB, naming the problem', async () => {
    expect((await configError({ kind: 'vgg16', path: path.join(tmp.dir, 'missing', 'model.json') })).message).toMatch(
      /missing.*no such file/,
    );
    expect((await configError({ kind: 'vgg16', path: null })).message).toMatch(/perceptual\.path/);

    const graphDir = path.join(tmp.dir, 'graph');
    fs.mkdirSync(graphDir, { recursive: true });
    fs.writeFileSync(
      path.join(graphDir, 'model.json'),
      JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }),
    );
    expect((await configError({ kind: 'vgg16', path: graphDir })).message).toMatch(/graph model, not a LayersModel/);

    const notModel = path.join(tmp.dir, 'notmodel.json');
    fs.writeFileSync(notModel, JSON.stringify({ modelTopology: { hello: 1 } }));
    expect((await configError({ kind: 'vgg16', path: notModel })).message).toMatch(/not a tfjs LayersModel/);

    const shallow = await saveVggLike('shallow', [4, 4, 'pool', 6, 6, 'pool', 8]);
    expect((await configError({ kind: 'vgg16', path: shallow.dir })).message).toMatch(/has 5 Conv2D layers; .* need 7/);

    const gray = await saveVggLike('gray', VGG_SPEC, 1);
    expect((await configError({ kind: 'vgg16', path: gray.dir })).message).toMatch(/takes 1 input channels; an RGB VGG16 takes 3/);

    const odd = await saveVggLike('dropout', [4, 'dropout', 4, 'pool', 6, 6, 'pool', 8, 8, 8]);
    expect((await configError({ kind: 'vgg16', path: odd.dir })).message).toMatch(/Dropout\) is not supported/);
  });

  it('refuses unknown options and bad values by name', async () => {
    await expect(createPerceptualLoss({ kind: 'vgg16', path: vgg.dir, wieght: 1 } as never, Math.random)).rejects.toThrow(
      /perceptual\.wieght: unknown option/,
    );
    await expect(createPerceptualLoss({ kind: 'bundled', weight: -1 }, Math.random)).rejects.toThrow(RangeError);
    await expect(createPerceptualLoss({ kind: 'vgg' } as never, Math.random)).rejects.toThrow(/perceptual\.kind/);
  });
});

describe('perceptual kind "bundled" (nsfwjs MobileNetV2, no download)', () => {
  let loss: PerceptualLoss;
  beforeAll(async () => {
    // Exactly what the trainer passes: the run config's fields, path null, plus maxShift.
    loss = await createPerceptualLoss({ kind: 'bundled', path: null, weight: 1e-4, halfWeight: 1e-4, maxShift: 8 }, mulberry32(3));
  });
  afterAll(() => loss.dispose());

  it('loads the 7 documented layers with its calibration', () => {
    expect(loss.kind).toBe('bundled');
    // docs/perceptual.md, "Layers": the seven BatchNorm outputs, in order.
    const documented = [
      'bn_Conv1',
      'expanded_conv_depthwise_BN',
      'block_1_depthwise_BN',
      'block_2_expand_BN',
      'block_2_depthwise_BN',
      'block_3_depthwise_BN',
      'block_4_depthwise_BN',
    ];
    expect(BUNDLED_LAYERS).toEqual(documented);
    expect(loss.layers).toEqual(documented);
    expect(loss.calibration).toEqual({ full: 20, half: 33 });
    expect(loss.describe).toMatch(/MobileNetV2/);
  });

  it("the calibration is the seed's VGG-to-pixel ratio over the bundled net's measured one, as docs/perceptual.md derives it", () => {
    // docs/seed.md §7, end of the final run: weighted pixel MSE 0.0012, VGG full 0.0035, VGG half 0.0016.
    const target = { full: 0.0035 / 0.0012, half: 0.0016 / 0.0012 };
    // docs/perceptual.md, "Calibration": r = 1e-4 · D / MSE of the bundled net on two demo sets (seeds 7
    // and 11), for the bicubic and the blur + noise degradations; c = target / geometric mean of r.
    const r = {
      full: [
        [0.122, 0.156],
        [0.136, 0.171],
      ],
      half: [
        [0.035, 0.048],
        [0.035, 0.045],
      ],
    };
    for (const k of ['full', 'half'] as const) {
      const perSet = r[k].map(([a, b]) => target[k] / Math.sqrt(a * b));
      // The two sets give 21.1 / 19.1 (full) and 32.5 / 33.6 (half); the constant is their mean, rounded.
      expect(BUNDLED_CALIBRATION[k], k).toBe(Math.round((perSet[0] + perSet[1]) / 2));
    }
  });

  it('gives finite positive terms for different images, exactly 0 for identical ones, and a gradient', () => {
    tf.tidy(() => {
      const label = tf.add(seededUniform([2, 48, 48, 3], 0.5, 21), 0.5) as tf.Tensor4D;
      const y = tf.clipByValue(tf.add(label, seededUniform(label.shape, 0.05, 22)), 0, 1) as tf.Tensor4D;
      const { full, half } = loss.apply(y, label);
      for (const v of [num(full), num(half)]) {
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThan(0);
      }
      const same = loss.apply(label, label);
      expect(num(same.full)).toBe(0);
      expect(num(same.half)).toBe(0);
      const g = tf.grad((t: tf.Tensor) => {
        const r = loss.apply(t as tf.Tensor4D, label);
        return tf.add(r.full, r.half);
      })(y);
      expect(num(tf.sum(tf.cast(tf.isFinite(g), 'float32')))).toBe(g.size);
      expect(num(tf.sum(tf.abs(g)))).toBeGreaterThan(0);
    });
  });

  it('full term = weight · 20 · raw distance; half term = halfWeight · 33 · raw distance of the gamma-downsampled pair', async () => {
    const l = await createPerceptualLoss({ kind: 'bundled', maxShift: 0, weight: 3e-4, halfWeight: 2e-4 }, Math.random);
    tf.tidy(() => {
      const a = tf.add(seededUniform([1, 32, 32, 3], 0.5, 23), 0.5) as tf.Tensor4D;
      const b = tf.add(seededUniform([1, 32, 32, 3], 0.5, 24), 0.5) as tf.Tensor4D;
      const { full, half } = l.apply(a, b);
      expect(num(full) / (3e-4 * 20 * num(l.distance(a, b)))).toBeCloseTo(1, 5);
      expect(num(half) / (2e-4 * 33 * num(l.distance(gammaDownsample2(a), gammaDownsample2(b))))).toBeCloseTo(1, 5);
    });
    l.dispose();
  });
});

describe('perceptual kind "off"', () => {
  it('returns zeros and uses no layers', async () => {
    const l = await createPerceptualLoss({ kind: 'off', path: null, weight: 0, halfWeight: 0 }, Math.random);
    expect(l.layers).toEqual([]);
    tf.tidy(() => {
      const { full, half } = l.apply(tf.ones([1, 16, 16, 3]), tf.zeros([1, 16, 16, 3]));
      expect([num(full), num(half)]).toEqual([0, 0]);
    });
    l.dispose();
  });
});
