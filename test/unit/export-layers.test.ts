// Generator → tfjs LayersModel export (src/models/io/export-layers.ts). Every kind and layout is saved
// with random weights, served over http on 127.0.0.1 and loaded with plain `tf.loadLayersModel(url)`
// (no custom layers; tfjs fetches model.json and the shards as a browser would), then compared with
// gen.apply on an odd-sized LR image, on wasm and on cpu, each within the bound docs/checkpoints.md
// states ("Exactness": float rounding on wasm, bit-exact on cpu). Loading the folder back into a fresh
// generator must reproduce gen.apply exactly. Small channel counts and one block keep the file fast.

import { promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { hasCode } from '../../src/util/errors.js';
import { initBackend } from '../../src/models/backend/init.js';
import {
  generatorTopology,
  loadGeneratorWeights,
  saveGeneratorLayersModel,
  type ExportOptions,
} from '../../src/models/io/export-layers.js';
import type { Generator } from '../../src/models/archs/network.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import type { GeneratorConfig } from '../../src/config/presets.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { tempDir } from '../support/tmp.js';

const LR_H = 13;
const LR_W = 17;

let root: { dir: string; cleanup: () => void };
let server: http.Server;
let base: string;

beforeAll(async () => {
  await initBackend('wasm');
  root = tempDir('srgan-export-');
  // A static file server for the export folders: the browser path, with Node 20's fetch underneath tfjs.
  server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(root.dir, path.normalize(rel));
    if (!file.startsWith(root.dir + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    fsp.readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  root.cleanup();
});

const lrImage = (seed: number): tf.Tensor4D => tf.tidy(() => tf.add(seededUniform([1, LR_H, LR_W, 3], 0.5, seed), 0.5) as tf.Tensor4D);

/** Max |a − b| over the whole image, over the outer `band` rows/columns, and over the rest. */
function diffs(a: tf.Tensor4D, b: tf.Tensor4D, band: number): { all: number; border: number; interior: number } {
  const [, h, w, c] = a.shape;
  const da = a.dataSync();
  const db = b.dataSync();
  let border = 0;
  let interior = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const edge = y < band || x < band || y >= h - band || x >= w - band;
      for (let k = 0; k < c; k++) {
        const i = (y * w + x) * c + k;
        const d = Math.abs(da[i] - db[i]);
        if (edge) border = Math.max(border, d);
        else interior = Math.max(interior, d);
      }
    }
  }
  return { all: Math.max(border, interior), border, interior };
}

const measured: string[] = [];

const CASES: Array<[string, GeneratorConfig, 2 | 4, ExportOptions?]> = [
  ['espcn plain ×2', { kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 }, 2],
  ['espcn plain ×2 + skip', { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 }, 2],
  ['espcn plain ×4', { kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 }, 4],
  ['espcn plain ×4 + skip', { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 }, 4],
  ['espcn x2x2 ×4', { kind: 'espcn', channels: 8, layout: 'x2x2', skip: false, depth: 0 }, 4],
  ['espcn x2x2 ×4 + skip', { kind: 'espcn', channels: 8, layout: 'x2x2', skip: true, depth: 0 }, 4],
  ['espcn conv-after-upsample ×2', { kind: 'espcn', channels: 8, layout: 'conv-after-upsample', skip: false, depth: 0 }, 2],
  ['espcn conv-after-upsample ×4 + skip', { kind: 'espcn', channels: 8, layout: 'conv-after-upsample', skip: true, depth: 0 }, 4],
  ['espcn dilated ×2 + skip', { kind: 'espcn', channels: 8, layout: 'dilated', skip: true, depth: 0 }, 2],
  ['espcn dilated ×4', { kind: 'espcn', channels: 8, layout: 'dilated', skip: false, depth: 0 }, 4],
  ['final ×2 (dilated blocks)', { kind: 'final', channels: 8, blocks: 1, dilatedBlocks: true }, 2],
  ['final ×2 (no dilated blocks)', { kind: 'final', channels: 8, blocks: 1, dilatedBlocks: false }, 2],
  [
    'final ×2, 2 blocks, 0.2 folded, 4 KiB shards',
    { kind: 'final', channels: 8, blocks: 2, dilatedBlocks: true },
    2,
    { residualScale: 'fold', shardBytes: 4096 },
  ],
  ['rrdbnet ×2', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 2],
  ['rrdbnet ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4],
  ['rrdbnet ×4, 0.2 folded', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4, { residualScale: 'fold' }],
  ['compact ×2', { kind: 'compact', channels: 8, convs: 2 }, 2],
  ['compact ×4', { kind: 'compact', channels: 8, convs: 2 }, 4],
];

type Backend = 'wasm' | 'cpu';

/**
 * The largest max |Δ| between the loaded model and gen.apply that docs/checkpoints.md ("Exactness")
 * states for each backend: float summation order on wasm (XNNPACK), nothing on cpu except the folded
 * 0.2, which is no longer the same float operation.
 */
function exactness(backend: Backend, cfg: GeneratorConfig, opts?: ExportOptions): number {
  if (opts?.residualScale === 'fold') return backend === 'wasm' ? 7.5e-8 : 3e-8;
  if (backend === 'cpu') return 0;
  return cfg.kind === 'espcn' ? 1.8e-7 : 1.2e-7;
}

/** The bilinear skip alone against tf.image.resizeBilinear: ≤ 1.2e-7 on wasm, bit-exact on cpu. */
const skipExactness = (backend: Backend): number => (backend === 'wasm' ? 1.2e-7 : 0);

async function exportCase(backend: Backend, label: string, cfg: GeneratorConfig, scale: 2 | 4, opts?: ExportOptions): Promise<void> {
  const folder = `${backend}-${label.replace(/[^a-z0-9]+/gi, '-')}`;
  const gen = buildGenerator(cfg, scale, 7);
  const fresh = buildGenerator(cfg, scale, 8);
  const x = lrImage(11);
  try {
    await saveGeneratorLayersModel(gen, cfg, path.join(root.dir, folder), opts);
    const files = await fsp.readdir(path.join(root.dir, folder));
    expect(files).toContain('model.json');
    if (opts?.shardBytes !== undefined) expect(files.filter((f) => f.endsWith('.bin')).length).toBeGreaterThan(1);

    const model = await tfl.loadLayersModel(`${base}/${folder}/model.json`);
    const theirs = model.predict(x) as tf.Tensor4D;
    const ours = gen.apply(x);
    expect(theirs.shape).toEqual([1, LR_H * scale, LR_W * scale, 3]);
    const d = diffs(ours, theirs, scale);
    measured.push(
      `${backend} ${label}: max |Δ| ${d.all.toExponential(2)} (border ${d.border.toExponential(2)}, interior ${d.interior.toExponential(2)})`,
    );
    expect(d.all).toBeLessThanOrEqual(exactness(backend, cfg, opts));

    // Back into our own graph: the default keeps our weights bit for bit; 'fold' divides by 0.2.
    await loadGeneratorWeights(fresh, path.join(root.dir, folder));
    const again = fresh.apply(x);
    if (opts?.residualScale === 'fold') {
      expect(diffs(ours, again, 0).all).toBeLessThanOrEqual(1e-6);
    } else {
      expect(Array.from(again.dataSync())).toEqual(Array.from(ours.dataSync()));
      for (const [k, v] of Object.entries(gen.variables)) {
        expect(Array.from(fresh.variables[k].dataSync()), k).toEqual(Array.from(v.dataSync()));
      }
    }
    tf.dispose([theirs, ours, again]);
    model.dispose();
  } finally {
    gen.dispose();
    fresh.dispose();
    x.dispose();
  }
}

const SKIP_CASES = [
  [2, 1, 1],
  [2, 1, 5],
  [4, 3, 1],
  [2, 13, 17],
  [4, 13, 17],
] as const;

async function skipCase(backend: Backend, scale: 2 | 4, h: number, w: number): Promise<void> {
  const cfg: GeneratorConfig = { kind: 'espcn', channels: 4, layout: 'plain', skip: true, depth: 0 };
  const gen = buildGenerator(cfg, scale, 5);
  for (const v of Object.values(gen.variables)) v.assign(tf.zerosLike(v));
  const folder = `${backend}-skip-only-${scale}-${h}x${w}`;
  await saveGeneratorLayersModel(gen, cfg, path.join(root.dir, folder));
  const model = await tfl.loadLayersModel(`${base}/${folder}/model.json`);
  const x = tf.tidy(() => tf.add(seededUniform([2, h, w, 3], 0.5, 9), 0.5) as tf.Tensor4D);
  const theirs = model.predict(x) as tf.Tensor4D;
  const want = tf.image.resizeBilinear(x, [h * scale, w * scale], false, true);
  const d = diffs(want, theirs, scale);
  measured.push(
    `${backend} skip only ×${scale} ${h}×${w}: max |Δ| ${d.all.toExponential(2)} (border ${d.border.toExponential(2)}, interior ${d.interior.toExponential(2)})`,
  );
  expect(d.all).toBeLessThanOrEqual(skipExactness(backend));
  tf.dispose([x, theirs, want]);
  model.dispose();
  gen.dispose();
}

describe('generator → LayersModel, loaded over http with plain tf.loadLayersModel', () => {
  it.each(CASES)('%s', (label, cfg, scale, opts) => exportCase('wasm', label, cfg, scale, opts));

  it.each(SKIP_CASES)(
    'bilinear skip alone (G zeroed), ×%i on %i×%i, batch 2, equals tf.image.resizeBilinear at the borders too',
    (scale, h, w) => skipCase('wasm', scale, h, w),
  );

  it('uses only layer classes tfjs-layers registers by default, and is plain JSON', () => {
    const registered = tf.serialization.SerializationMap.getMap().classNameMap;
    const cfgs: Array<[GeneratorConfig, 2 | 4]> = CASES.map(([, c, s]) => [c, s]);
    const classes = new Set<string>();
    for (const [cfg, scale] of cfgs) {
      const topo = generatorTopology(cfg, scale);
      expect(JSON.parse(JSON.stringify(topo.modelTopology))).toEqual(topo.modelTopology);
      for (const layer of topo.modelTopology.config.layers) classes.add(layer.class_name);
    }
    for (const c of classes) expect(registered[c], c).toBeDefined();
    expect(topo0().modelTopology.config.layers[0].config['batch_input_shape']).toEqual([null, null, null, 3]);
  });

  it('maps our variables to Keras weight names in order, constants after their layer', () => {
    const topo = generatorTopology({ kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 }, 2);
    expect(topo.weights.map((w) => [w.name, w.source.kind === 'variable' ? w.source.variable : 'fixed', w.shape])).toEqual([
      ['conv1/kernel', 'conv1.w', [5, 5, 3, 8]],
      ['conv1/bias', 'conv1.b', [8]],
      ['conv2/kernel', 'conv2.w', [3, 3, 8, 8]],
      ['conv2/bias', 'conv2.b', [8]],
      ['conv3/kernel', 'conv3.w', [3, 3, 8, 12]],
      ['conv3/bias', 'conv3.b', [12]],
      ['pixel_shuffle_1/kernel', 'fixed', [2, 2, 3, 12]],
    ]);
  });

  it('writes format, generatedBy, convertedBy and our config into model.json', async () => {
    const cfg: GeneratorConfig = { kind: 'espcn', channels: 4, layout: 'plain', skip: true, depth: 0 };
    const gen = buildGenerator(cfg, 2, 1);
    const dir = path.join(root.dir, 'meta');
    await saveGeneratorLayersModel(gen, cfg, dir);
    gen.dispose();
    const json = JSON.parse(await fsp.readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toMatch(/^srgan-daemon export-layers/);
    expect(json).toHaveProperty('convertedBy', null);
    expect(json.userDefinedMetadata.srganGenerator).toEqual({ version: 1, config: cfg, scale: 2, residualScale: 'rescaling' });
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toHaveLength(1);
  });
});

function topo0(): ReturnType<typeof generatorTopology> {
  return generatorTopology({ kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 }, 2);
}

describe('loadGeneratorWeights rejects what does not fit, naming the weight', () => {
  const cfg: GeneratorConfig = { kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 };
  let dir: string;

  beforeAll(async () => {
    dir = path.join(root.dir, 'reject');
    const gen = buildGenerator(cfg, 2, 3);
    await saveGeneratorLayersModel(gen, cfg, dir);
    gen.dispose();
  });

  /** A copy of the export with model.json edited by `edit`. */
  async function tampered(
    name: string,
    edit: (json: { weightsManifest: Array<{ weights: Array<{ name: string; shape: number[] }> }> }) => void,
  ): Promise<string> {
    const out = path.join(root.dir, name);
    await fsp.cp(dir, out, { recursive: true });
    const json = JSON.parse(await fsp.readFile(path.join(out, 'model.json'), 'utf8')) as Parameters<typeof edit>[0];
    edit(json);
    await fsp.writeFile(path.join(out, 'model.json'), JSON.stringify(json));
    return out;
  }

  async function rejection(gen: Generator, from: string, probe = 'conv1.w'): Promise<Error> {
    const before = gen.variables[probe].dataSync().slice();
    const err = await loadGeneratorWeights(gen, from).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).not.toBeNull();
    expect(hasCode(err, 'SRGAN_ERR_CHECKPOINT')).toBe(true);
    // All or nothing: a rejected folder leaves the generator as it was.
    expect(Array.from(gen.variables[probe].dataSync())).toEqual(Array.from(before));
    return err!;
  }

  it('a wrong shape in model.json (same byte count)', async () => {
    const bad = await tampered('tampered-shape', (json) => {
      const w = json.weightsManifest[0].weights.find((s) => s.name === 'conv1/kernel')!;
      w.shape = [5, 5, 8, 3];
    });
    const gen = buildGenerator(cfg, 2, 4);
    const err = await rejection(gen, bad);
    expect(err.message).toMatch(/weight 'conv1\/kernel' has shape \[5,5,8,3\], its layer needs \[5,5,3,8\]/);
    // tfjs itself refuses it too (its own message).
    await expect(tfl.loadLayersModel(`${base}/tampered-shape/model.json`)).rejects.toThrow();
    gen.dispose();
  });

  it('a wrong shape whose byte count no longer matches the shards', async () => {
    const bad = await tampered('tampered-size', (json) => {
      json.weightsManifest[0].weights.find((s) => s.name === 'conv2/bias')!.shape = [9];
    });
    const gen = buildGenerator(cfg, 2, 4);
    const err = await rejection(gen, bad);
    expect(err.message).toMatch(/weight shards hold \d+ bytes/);
    gen.dispose();
  });

  it('a renamed weight', async () => {
    const bad = await tampered('tampered-name', (json) => {
      json.weightsManifest[0].weights.find((s) => s.name === 'conv3/bias')!.name = 'conv9/bias';
    });
    const gen = buildGenerator(cfg, 2, 4);
    expect((await rejection(gen, bad)).message).toMatch(/weight 'conv9\/bias' is not part of a espcn ×2 generator/);
    gen.dispose();
  });

  it('a generator of another size or kind', async () => {
    const wider = buildGenerator({ ...cfg, channels: 16 }, 2, 4);
    expect((await rejection(wider, dir)).message).toMatch(
      /weight 'conv1\/kernel' has shape \[5,5,3,8\], this generator's 'conv1.w' has \[5,5,3,16\]/,
    );
    wider.dispose();
    const rrdb = buildGenerator({ kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 2, 4);
    expect((await rejection(rrdb, dir, 'conv_first.w')).message).toMatch(
      /weight 'conv1\/kernel' has no variable 'conv1.w' in this generator/,
    );
    rrdb.dispose();
  });

  it('missing or lying srganGenerator metadata', async () => {
    const gen = buildGenerator(cfg, 2, 4);
    const none = await tampered('tampered-no-meta', (json) => {
      delete (json as { userDefinedMetadata?: unknown }).userDefinedMetadata;
    });
    expect((await rejection(gen, none)).message).toMatch(/has no userDefinedMetadata.srganGenerator/);
    const huge = await tampered('tampered-blocks', (json) => {
      (json as unknown as { userDefinedMetadata: { srganGenerator: { config: unknown } } }).userDefinedMetadata.srganGenerator.config = {
        kind: 'final',
        channels: 8,
        blocks: 1e9,
        dilatedBlocks: true,
      };
    });
    expect((await rejection(gen, huge)).message).toMatch(/srganGenerator.config.blocks must be an integer in 1..64, got 1000000000/);
    const lying = await tampered('tampered-blocks-60', (json) => {
      (json as unknown as { userDefinedMetadata: { srganGenerator: { config: unknown } } }).userDefinedMetadata.srganGenerator.config = {
        kind: 'final',
        channels: 8,
        blocks: 60,
        dilatedBlocks: true,
      };
    });
    expect((await rejection(gen, lying)).message).toMatch(/blocks \(60\) exceeds the manifest's 7 weights/);
    gen.dispose();
  });

  it('a folder without model.json', async () => {
    const gen = buildGenerator(cfg, 2, 4);
    expect((await rejection(gen, path.join(root.dir, 'nowhere'))).message).toMatch(/no such file/);
    gen.dispose();
  });
});

describe('saveGeneratorLayersModel checks that the config describes the generator', () => {
  it('throws RangeError naming the variable', async () => {
    const gen = buildGenerator({ kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 }, 2, 1);
    await expect(
      saveGeneratorLayersModel(gen, { kind: 'espcn', channels: 16, layout: 'plain', skip: false, depth: 0 }, path.join(root.dir, 'x')),
    ).rejects.toThrow(/variable 'conv1.w' has shape \[5,5,3,8\]/);
    await expect(
      saveGeneratorLayersModel(gen, { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, path.join(root.dir, 'x')),
    ).rejects.toThrow(RangeError);
    gen.dispose();
  });
});

// The same on the cpu backend, where the export is bit-exact (docs/checkpoints.md). Last in the file:
// every other test runs on wasm.
describe('the same on the cpu backend', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  afterAll(async () => {
    await initBackend('wasm');
  });

  it.each(CASES)('%s', (label, cfg, scale, opts) => exportCase('cpu', label, cfg, scale, opts));

  it.each(SKIP_CASES)('bilinear skip alone, ×%i on %i×%i', (scale, h, w) => skipCase('cpu', scale, h, w));

  it('measured max |Δ| per case (printed; each case asserts its bound)', () => {
    console.log(measured.join('\n'));
    expect(measured.length).toBe(2 * (CASES.length + SKIP_CASES.length));
  });
});
