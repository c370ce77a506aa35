// ONNX export (docs/export.md, "ONNX"): every generator kind and layout, exported with random weights,
// run in ONNX Runtime (onnxruntime-node, CPU) on odd and even sizes and compared with gen.apply on
// tfjs; and `srgan export --format onnx` through the real CLI.
//
// onnxruntime-node is a native addon: it is loaded here, on the test process's main thread (vitest's
// forks pool gives every file its own process), before anything could start a worker.

import fs from 'node:fs';
import path from 'node:path';

import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../../src/models/backend/init.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import type { Generator } from '../../src/models/archs/network.js';
import type { GeneratorConfig } from '../../src/config/presets.js';
import { generatorOnnx, ONNX_OPSET } from '../../src/models/io/export-onnx.js';
import { saveGeneratorLayersModel } from '../../src/models/io/export-layers.js';
import { srgan } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const { onnx } = onnxProto;

/** Sizes (h, w): odd ones show off-by-one padding and the bilinear edge clamping. */
const SIZES: [number, number][] = [
  [13, 17],
  [64, 48],
];

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = tempDir('srgan-export-onnx-');
});
afterAll(() => tmp.cleanup());

/** A generator with random weights, its PReLU slopes random too (their init, 0.25 everywhere, would hide a layout error). */
function randomGenerator(config: GeneratorConfig, scale: 2 | 4, seed: number): Generator {
  const gen = buildGenerator(config, scale, seed);
  let i = 0;
  for (const [name, v] of Object.entries(gen.variables)) {
    if (name.endsWith('.alpha')) tf.tidy(() => v.assign(seededUniform(v.shape, 0.5, seed * 100 + i++)));
  }
  return gen;
}

/** The largest |Δ| between ONNX Runtime's output for `model` and gen.apply, on a random [1, h, w, 3] image in [0, 1]. */
async function maxDiff(model: Uint8Array, gen: Generator, h: number, w: number, seed: number): Promise<number> {
  const x = tf.tidy(() => tf.add(seededUniform([1, h, w, 3], 0.5, seed), 0.5) as tf.Tensor4D);
  const want = gen.apply(x);
  const session = await ort.InferenceSession.create(model);
  try {
    const nchw = tf.tidy(() => tf.transpose(x, [0, 3, 1, 2]));
    const input = new ort.Tensor('float32', nchw.dataSync<'float32'>().slice(), [1, 3, h, w]);
    const result = await session.run({ input });
    const got = result['output'];
    const s = gen.scale;
    expect(got.dims).toEqual([1, 3, h * s, w * s]);
    const gotNhwc = tf.tidy(() => tf.transpose(tf.tensor4d(got.data as Float32Array, [1, 3, h * s, w * s]), [0, 2, 3, 1]));
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(gotNhwc, want))).dataSync()[0]);
    tf.dispose([x, want, nchw, gotNhwc]);
    return diff;
  } finally {
    await session.release();
  }
}

describe('ONNX export: every kind and layout computes what gen.apply does', () => {
  const cases: [string, GeneratorConfig, 2 | 4][] = [
    ['espcn plain ×2', { kind: 'espcn', channels: 8, layout: 'plain', skip: false, depth: 0 }, 2],
    ['espcn dilated + bilinear skip ×2', { kind: 'espcn', channels: 8, layout: 'dilated', skip: true, depth: 1 }, 2],
    ['espcn dilated + bilinear skip ×4', { kind: 'espcn', channels: 8, layout: 'dilated', skip: true, depth: 0 }, 4],
    ['espcn x2x2 ×4', { kind: 'espcn', channels: 8, layout: 'x2x2', skip: false, depth: 0 }, 4],
    ['espcn conv-after-upsample ×2 + skip', { kind: 'espcn', channels: 8, layout: 'conv-after-upsample', skip: true, depth: 0 }, 2],
    ['final, dilated blocks', { kind: 'final', channels: 4, blocks: 1, dilatedBlocks: true }, 2],
    ['final, plain blocks', { kind: 'final', channels: 4, blocks: 1, dilatedBlocks: false }, 2],
    ['rrdbnet ×2', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 2],
    ['rrdbnet ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4],
    ['compact ×2', { kind: 'compact', channels: 8, convs: 2 }, 2],
    ['compact ×4', { kind: 'compact', channels: 8, convs: 2 }, 4],
  ];
  for (const [name, config, scale] of cases) {
    it(`${name}: ONNX Runtime matches tfjs on ${SIZES.map(([h, w]) => `${h}×${w}`).join(' and ')}`, async () => {
      const gen = randomGenerator(config, scale, 3);
      try {
        const model = generatorOnnx(gen, config);
        const diffs: string[] = [];
        for (const [h, w] of SIZES) {
          const d = await maxDiff(model, gen, h, w, h * 31 + w);
          diffs.push(`${h}×${w}: ${d.toExponential(2)}`);
          expect(d, `${name} at ${h}×${w}`).toBeLessThanOrEqual(1e-4);
        }
        console.log(`max |Δ| ${name}: ${diffs.join(', ')}`);
      } finally {
        gen.dispose();
      }
    });
  }

  it('writes input/output names, NCHW with symbolic N, H, W, opset 17, OIHW weights and the metadata', () => {
    const config: GeneratorConfig = { kind: 'compact', channels: 8, convs: 1 };
    const gen = randomGenerator(config, 4, 9);
    const bytes = generatorOnnx(gen, config, { run_id: 'abc', step: '12', skipped: undefined });
    const model = onnx.ModelProto.decode(bytes);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', ONNX_OPSET]]);
    const graph = model.graph!;
    const dims = (v: onnxProto.onnx.IValueInfoProto) =>
      v.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
    expect(graph.input!.map((v) => [v.name, dims(v)])).toEqual([['input', ['N', 3, 'H', 'W']]]);
    expect(graph.output!.map((v) => [v.name, dims(v)])).toEqual([['output', ['N', 3, 'H*4', 'W*4']]]);
    expect(Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]))).toEqual({
      arch: 'SRVGGNetCompact',
      scale: '4',
      config: JSON.stringify(config),
      run_id: 'abc',
      step: '12',
    });
    // body.0's HWIO [3, 3, 3, 8] weight as OIHW [8, 3, 3, 3]: w[o, i, y, x] = hwio[y, x, i, o].
    const init = graph.initializer!.find((t) => t.name === 'body.0.weight')!;
    expect(init.dims!.map(Number)).toEqual([8, 3, 3, 3]);
    const oihw = new Float32Array(new Uint8Array(init.rawData!).buffer);
    const hwio = gen.variables['body.0.w'].dataSync<'float32'>();
    expect(oihw[((5 * 3 + 2) * 3 + 1) * 3 + 0]).toBe(hwio[((1 * 3 + 0) * 3 + 2) * 8 + 5]);
    expect(() => generatorOnnx(gen, { kind: 'compact', channels: 8, convs: 2 })).toThrow(/config does not describe gen/);
    gen.dispose();
  });
});

describe('srgan export --format onnx', () => {
  const cases: [string, GeneratorConfig, 2 | 4][] = [
    ['espcn dilated + skip', { kind: 'espcn', channels: 8, layout: 'dilated', skip: true, depth: 0 }, 2],
    ['rrdbnet ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4],
  ];
  for (const [name, config, scale] of cases) {
    it(`${name}: writes a model file that ONNX Runtime runs as the generator`, async () => {
      const home = path.join(tmp.dir, `home-${config.kind}`);
      const model = path.join(tmp.dir, `model-${config.kind}`);
      const gen = randomGenerator(config, scale, 5);
      try {
        await saveGeneratorLayersModel(gen, config, model);
        const out = path.join(tmp.dir, `${config.kind}.onnx`);
        const r = srgan(home, ['export', model, '--format', 'onnx', '--out', out, '--json']);
        expect(r.status, r.stderr).toBe(0);
        const report = JSON.parse(r.stdout) as { out: string; format: string; scale: number; params: number; bytes: number };
        expect(report).toMatchObject({ out, format: 'onnx', scale, params: gen.paramCount, bytes: fs.statSync(out).size });
        const bytes = new Uint8Array(fs.readFileSync(out));
        const meta = Object.fromEntries(onnx.ModelProto.decode(bytes).metadataProps.map((p) => [p.key, p.value]));
        expect(meta).toMatchObject({ scale: String(scale), config: JSON.stringify(config) });
        expect(await maxDiff(bytes, gen, 13, 17, 1)).toBeLessThanOrEqual(1e-4);
      } finally {
        gen.dispose();
      }
    });
  }

  it('--help names onnx for every kind', () => {
    const help = srgan(path.join(tmp.dir, 'home-help'), ['export', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/onnx: an ONNX model .*every kind/);
  });
});
