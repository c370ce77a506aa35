// Generators out to and in from PyTorch state dicts in .safetensors (docs/export.md). The reference is
// test/fixtures/esrgan_reference.py: ESRGAN's RRDBNet in PyTorch, its state dict written by hand (not by
// our writer) and its output on a fixed image. Our rrdbnet must load that file, compute the same image,
// and export the same names, shapes and values; `srgan export` must write files that load back into
// the generator they came from; damaged files are refused, naming the file and what is wrong.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../../src/models/backend/init.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import type { GeneratorConfig } from '../../src/config/presets.js';
import { saveGeneratorLayersModel } from '../../src/models/io/export-layers.js';
import { decodeSafetensors, encodeSafetensors, halfToFloat, readSafetensors } from '../../src/models/io/safetensors.js';
import { readPth } from '../../src/models/io/pth.js';
import { describeStateDict, generatorStateDict, loadStateDict } from '../../src/models/io/state-dict.js';
import { hasCode } from '../../src/util/errors.js';
import { srgan } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { writePhotos } from '../support/photos.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
const REF = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'esrgan_reference.json'), 'utf8')) as {
  input: { shape_nchw: number[]; nchw: number[] };
  models: Record<
    string,
    {
      nf: number;
      nb?: number;
      gc?: number;
      convs?: number;
      scale: number;
      params: number;
      names: string[];
      output_shape_nchw: number[];
      output_nchw: number[];
    }
  >;
};

/** NCHW values → an NHWC tensor. */
function nhwc(values: readonly number[], [n, c, h, w]: readonly number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(Float32Array.from(values), [n, c, h, w]), [0, 2, 3, 1]));
}

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = tempDir('srgan-export-');
});
afterAll(() => tmp.cleanup());

describe("ESRGAN's and Real-ESRGAN Compact's own state dicts", () => {
  for (const file of [
    'esrgan-tiny-x2.safetensors',
    'esrgan-tiny-x4.safetensors',
    'compact-tiny-x2.safetensors',
    'compact-tiny-x4.safetensors',
  ]) {
    it(`${file}: loads into our generator, computes PyTorch's output, and exports back the same tensors`, () => {
      const ref = REF.models[file];
      const where = path.join(FIXTURES, file);
      const sd = readSafetensors(where);
      expect(sd.tensors.map((t) => t.name)).toEqual(ref.names);
      const { config, scale } = describeStateDict(sd, where);
      const want: GeneratorConfig = file.startsWith('compact')
        ? { kind: 'compact', channels: ref.nf, convs: ref.convs! }
        : { kind: 'rrdbnet', channels: ref.nf, growth: ref.gc!, blocks: ref.nb! };
      expect([config, scale]).toEqual([want, ref.scale]);
      const gen = buildGenerator(config, scale, 1);
      expect(gen.paramCount).toBe(ref.params);
      loadStateDict(gen, config, sd.tensors, where);
      const x = nhwc(REF.input.nchw, REF.input.shape_nchw);
      const y = gen.apply(x);
      const expected = nhwc(ref.output_nchw, ref.output_shape_nchw);
      expect(y.shape).toEqual(expected.shape);
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(y, expected))).dataSync()[0]);
      expect(diff).toBeLessThan(1e-4);

      // Back out: the same names, shapes and float values as the file PyTorch's side wrote.
      const out = generatorStateDict(gen, config);
      expect(out.map((t) => t.name).sort()).toEqual([...ref.names].sort());
      const byName = new Map(sd.tensors.map((t) => [t.name, t]));
      for (const t of out) {
        expect(t.shape, t.name).toEqual(byName.get(t.name)!.shape);
        expect(Buffer.from(t.data.buffer).equals(Buffer.from(byName.get(t.name)!.data.buffer)), t.name).toBe(true);
      }
      tf.dispose([x, y, expected]);
      gen.dispose();
    });
  }

  it('names the first tensors that differ when a state dict does not fit', () => {
    const where = path.join(FIXTURES, 'esrgan-tiny-x4.safetensors');
    const sd = readSafetensors(where);
    const gen = buildGenerator({ kind: 'rrdbnet', channels: 8, growth: 4, blocks: 2 }, 4, 1);
    const renamed = sd.tensors.map((t) => (t.name === 'trunk_conv.weight' ? { ...t, name: 'trunk.weight' } : t));
    expect(() => loadStateDict(gen, { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 2 }, renamed, where)).toThrow(
      /missing trunk_conv\.weight; not part of a rrdbnet generator: trunk\.weight/,
    );
    const wider = buildGenerator({ kind: 'rrdbnet', channels: 16, growth: 4, blocks: 2 }, 4, 1);
    expect(() => loadStateDict(wider, { kind: 'rrdbnet', channels: 16, growth: 4, blocks: 2 }, sd.tensors, where)).toThrow(
      /tensor conv_first\.weight has shape \[8,3,3,3\], the generator needs \[16,3,3,3\]/,
    );
    const foreign = { tensors: [{ name: 'body.0.weight', shape: [1], data: new Float32Array(1) }], metadata: {} };
    expect(() => describeStateDict(foreign, 'x.safetensors')).toThrow(
      /x\.safetensors: not a generator srgan can load: .*it has body\.0\.weight/,
    );
    gen.dispose();
    wider.dispose();
  });
});

describe('safetensors files', () => {
  it('round-trip F32 with metadata, and read F16 and BF16 as published models store them', () => {
    const tensors = [
      { name: 'a', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -0]) },
      { name: 'b.weight', shape: [1], data: Float32Array.from([Math.PI]) },
    ];
    const back = decodeSafetensors(encodeSafetensors(tensors, { arch: 'x', scale: '2' }));
    expect(back.metadata).toEqual({ arch: 'x', scale: '2' });
    expect(back.tensors).toEqual(tensors);
    // Half floats by hand: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, the smallest subnormal 0x0001.
    const halves = [0x3c00, 0xc100, 0x7bff, 0x0001];
    expect(halves.map(halfToFloat)).toEqual([1, -2.5, 65504, 2 ** -24]);
    const f16 = hand({ h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, Buffer.from(Uint16Array.from(halves).buffer));
    expect([...decodeSafetensors(f16).tensors[0].data]).toEqual([1, -2.5, 65504, 2 ** -24]);
    const bf = hand({ g: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, Buffer.from(Uint16Array.from([0x3f80, 0xc040]).buffer));
    expect([...decodeSafetensors(bf).tensors[0].data]).toEqual([1, -3]);
  });

  it('refuses files that do not add up, saying what is wrong', () => {
    const good = encodeSafetensors([{ name: 'a', shape: [2], data: Float32Array.from([1, 2]) }]);
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, 5), /shorter than the 8-byte header length/],
      [good.subarray(0, good.length - 1), /covers|runs past the end/],
      [Buffer.concat([good, Buffer.alloc(4)]), /cover 8 of the 12 data bytes/],
      [hand({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, Buffer.alloc(8)), /"a" is "I64"; only F32, F16 and BF16/],
      [hand({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)), /shape \[3\] \(3 F32 values\) but 8 bytes/],
      [
        hand(
          { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
          Buffer.alloc(12),
        ),
        /overlapping or a gap/,
      ],
      [Buffer.concat([Buffer.from([255, 255, 255, 255, 0, 0, 0, 0]), Buffer.alloc(8)]), /header length .* runs past the end/],
      [Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{no}')]), /header is not JSON/],
    ];
    for (const [bytes, message] of cases) {
      let err: unknown;
      try {
        decodeSafetensors(bytes, 'bad.safetensors');
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'SRGAN_ERR_CHECKPOINT'), String(message)).toBe(true);
      expect((err as Error).message).toMatch(/^bad\.safetensors: not a usable safetensors file: /);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('srgan export', () => {
  const cases: [string, GeneratorConfig, 2 | 4][] = [
    ['espcn (skip, depth)', { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 1 }, 2],
    ['final', { kind: 'final', channels: 4, blocks: 1, dilatedBlocks: true }, 2],
    ['rrdbnet ×4', { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 1 }, 4],
    ['compact ×4', { kind: 'compact', channels: 8, convs: 2 }, 4],
  ];
  for (const [name, config, scale] of cases) {
    it(`${name}: the safetensors it writes loads back into the same generator; --format tfjs writes a LayersModel`, async () => {
      const home = path.join(tmp.dir, `home-${config.kind}`);
      const model = path.join(tmp.dir, `model-${config.kind}`);
      const gen = buildGenerator(config, scale, 5);
      await saveGeneratorLayersModel(gen, config, model);
      const out = path.join(tmp.dir, `${config.kind}.safetensors`);
      const r = srgan(home, ['export', model, '--out', out, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { out: string; format: string; arch: string; scale: number; params: number };
      expect(report).toMatchObject({ out, format: 'safetensors', scale, params: gen.paramCount });
      const sd = readSafetensors(out);
      expect(sd.metadata).toMatchObject({
        format: 'pt',
        arch: report.arch,
        scale: String(scale),
        config: JSON.stringify(config),
        license: '',
      });
      const back = describeStateDict(sd, out);
      expect(back).toEqual({ config, scale });
      const fresh = buildGenerator(back.config, back.scale, 99);
      loadStateDict(fresh, back.config, sd.tensors, out);
      const x = tf.tidy(() => tf.add(seededUniform([1, 7, 5, 3], 0.5, 3), 0.5) as tf.Tensor4D);
      const [a, b] = [gen.apply(x), fresh.apply(x)];
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0])).toBe(0);
      // export → load → export gives the same bytes for every weight.
      const again = generatorStateDict(fresh, back.config);
      expect(again.map((t) => [t.name, Buffer.from(t.data.buffer).toString('base64')])).toEqual(
        sd.tensors.map((t) => [t.name, Buffer.from(t.data.buffer).toString('base64')]),
      );
      const tfjsOut = path.join(tmp.dir, `${config.kind}-tfjs`);
      const t = srgan(home, ['export', model, '--format', 'tfjs', '--out', tfjsOut]);
      expect(t.status, t.stderr).toBe(0);
      expect(fs.existsSync(path.join(tfjsOut, 'model.json'))).toBe(true);
      tf.dispose([x, a, b]);
      gen.dispose();
      fresh.dispose();
    });
  }

  it('--help names the formats; a bad format or a missing model is a clear error', () => {
    const home = path.join(tmp.dir, 'home-help');
    const help = srgan(home, ['export', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/safetensors \(default\): every kind; rrdbnet with ESRGAN's tensor names/);
    const bad = srgan(home, ['export', tmp.dir, '--format', 'pt']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/SRGAN_ERR_CONFIG.*--format must be one of safetensors, tfjs, onnx, got "pt"/);
    const none = srgan(home, ['export', 'no-such-run']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/SRGAN_ERR_/);
  });
});

/** A safetensors file by hand: header JSON as given, then `data`. */
function hand(header: Record<string, unknown>, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('a .safetensors model in srgan upscale and srgan eval', () => {
  it('upscale --model and eval --model/--compare take state dicts that PyTorch wrote', async () => {
    const home = path.join(tmp.dir, 'home-use');
    const images = path.join(tmp.dir, 'photos');
    await writePhotos(images, 2, 40, 36);
    const out = path.join(tmp.dir, 'up');
    const up = srgan(home, [
      'upscale',
      path.join(images, 'p0.png'),
      '--out',
      out,
      '--model',
      path.join(FIXTURES, 'esrgan-tiny-x2.safetensors'),
      '--json',
    ]);
    expect(up.status, up.stderr).toBe(0);
    const report = JSON.parse(up.stdout) as { scale: number; files: { outWidth: number; outHeight: number }[] };
    expect(report.scale).toBe(2);
    expect([report.files[0].outWidth, report.files[0].outHeight]).toEqual([80, 72]);
    const ev = srgan(home, [
      'eval',
      '--data',
      images,
      '--model',
      path.join(FIXTURES, 'esrgan-tiny-x2.safetensors'),
      '--compare',
      path.join(FIXTURES, 'compact-tiny-x2.safetensors'),
      '--no-save',
      '--json',
    ]);
    expect(ev.status, ev.stderr).toBe(0);
    expect(ev.stdout).toContain('compact-tiny-x2.safetensors');
    // A ×4 model compared with a ×2 one is refused, naming both scales.
    const mismatch = srgan(home, [
      'eval',
      '--data',
      images,
      '--model',
      path.join(FIXTURES, 'esrgan-tiny-x2.safetensors'),
      '--compare',
      path.join(FIXTURES, 'compact-tiny-x4.safetensors'),
      '--no-save',
    ]);
    expect(mismatch.status).toBe(1);
    expect(mismatch.stderr).toMatch(/upscales ×4, but the model being evaluated upscales ×2/);
  });
});

describe('PyTorch .pth files', () => {
  it('read the same tensors as the safetensors PyTorch wrote beside them, from a plain state dict and from {params_ema}', () => {
    for (const [pth, st] of Object.entries({
      'esrgan-tiny-x2.pth': 'esrgan-tiny-x2.safetensors',
      'compact-tiny-x4.pth': 'compact-tiny-x4.safetensors',
    })) {
      const a = readPth(path.join(FIXTURES, pth)).tensors;
      const b = readSafetensors(path.join(FIXTURES, st)).tensors;
      expect(a.map((t) => [t.name, t.shape])).toEqual(b.map((t) => [t.name, t.shape]));
      for (let i = 0; i < a.length; i++) expect(Buffer.from(a[i].data.buffer).equals(Buffer.from(b[i].data.buffer)), a[i].name).toBe(true);
    }
  });

  it('refuse a pickle that asks for anything but tensors and containers, without running it, and files that are not .pth', () => {
    const hostile = path.join(FIXTURES, 'hostile.pth');
    let err: unknown;
    try {
      readPth(hostile);
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'SRGAN_ERR_CHECKPOINT')).toBe(true);
    expect((err as Error).message).toMatch(
      /hostile\.pth: its pickle asks for (posix|os)\.system, which a state dict does not need; refused/,
    );
    const notZip = path.join(tmp.dir, 'text.pth');
    fs.writeFileSync(notZip, 'hello, not a model');
    expect(() => readPth(notZip)).toThrow(/text\.pth: not a PyTorch \.pth file \(not a zip archive\)/);
    const legacy = path.join(tmp.dir, 'legacy.pth');
    fs.writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
    expect(() => readPth(legacy)).toThrow(/an old-format PyTorch file/);
  });

  it('srgan upscale --model takes a .pth', async () => {
    const home = path.join(tmp.dir, 'home-pth');
    const images = path.join(tmp.dir, 'photos-pth');
    await writePhotos(images, 2, 40, 36);
    const out = path.join(tmp.dir, 'up-pth');
    const r = srgan(home, [
      'upscale',
      path.join(images, 'p1.png'),
      '--out',
      out,
      '--model',
      path.join(FIXTURES, 'esrgan-tiny-x2.pth'),
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { files: { outWidth: number }[] }).files[0].outWidth).toBe(80);
  });
});
