// ONNX models as input (docs/export.md, "Running it in srgan"): a generator exported to ONNX and run by
// `srgan upscale --model x.onnx` / `srgan eval --model x.onnx` in onnxruntime-node gives what the same
// generator gives on tfjs, through the real CLI; broken and non-upscaler ONNX files are refused naming
// the file.

import fs from 'node:fs';
import path from 'node:path';

import onnxProto from 'onnx-proto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../../src/models/backend/init.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import type { GeneratorConfig } from '../../src/config/presets.js';
import { saveGeneratorOnnx } from '../../src/models/io/export-onnx.js';
import { saveGeneratorLayersModel } from '../../src/models/io/export-layers.js';
import { srgan } from '../support/cli.js';
import { writePhotos } from '../support/photos.js';
import { tempDir } from '../support/tmp.js';

const { onnx } = onnxProto;

let tmp: ReturnType<typeof tempDir>;
let home: string;
let onnxFile: string;
let tfjsDir: string;
let photos: string;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = tempDir('srgan-onnx-input-');
  home = path.join(tmp.dir, 'home');
  const config: GeneratorConfig = { kind: 'compact', channels: 8, convs: 2 };
  const gen = buildGenerator(config, 2, 1);
  try {
    onnxFile = path.join(tmp.dir, 'compact-x2.onnx');
    saveGeneratorOnnx(gen, config, onnxFile, { step: '7' });
    tfjsDir = path.join(tmp.dir, 'compact-x2-tfjs');
    await saveGeneratorLayersModel(gen, config, tfjsDir);
  } finally {
    gen.dispose();
  }
  photos = path.join(tmp.dir, 'photos');
  // Different sides (odd ones too), each larger than SSIM's window after the border crop.
  await writePhotos(photos, 2, 37, 29);
});
afterAll(() => tmp.cleanup());

async function raw(file: string): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

describe('srgan upscale --model x.onnx', () => {
  it('writes the PNG the same generator writes on tfjs, within 1/255', async () => {
    const outOnnx = path.join(tmp.dir, 'up-onnx');
    const outTfjs = path.join(tmp.dir, 'up-tfjs');
    const img = path.join(photos, 'p0.png');
    const a = srgan(home, ['upscale', img, '--model', onnxFile, '--out', outOnnx, '--json']);
    expect(a.status, a.stderr).toBe(0);
    const b = srgan(home, ['upscale', img, '--checkpoint', tfjsDir, '--out', outTfjs, '--runtime', 'tfjs', '--json']);
    expect(b.status, b.stderr).toBe(0);
    const ra = JSON.parse(a.stdout) as Record<string, unknown> & { files: { out: string; outWidth: number }[] };
    expect(ra).toMatchObject({ source: onnxFile, scale: 2, step: 7, generator: null, format: 'onnx', runtime: 'onnxruntime-node' });
    expect(ra.files[0].outWidth).toBe(74);
    expect(a.stderr).toContain('[ONNX SRVGGNetCompact ×2, onnxruntime-node]');
    const pa = await raw(path.join(outOnnx, 'p0.png'));
    const pb = await raw(path.join(outTfjs, 'p0.png'));
    expect([pa.width, pa.height]).toEqual([74, 58]);
    expect([pb.width, pb.height]).toEqual([74, 58]);
    let max = 0;
    for (let i = 0; i < pa.data.length; i++) max = Math.max(max, Math.abs(pa.data[i] - pb.data[i]));
    console.log(`upscale ONNX vs tfjs: max |Δ| ${max}/255`);
    expect(max).toBeLessThanOrEqual(1);
  });

  it('tiles a TileModel like a generator: --tile 24 gives the same PNG within 1/255', async () => {
    const out = path.join(tmp.dir, 'up-onnx-tiled');
    const r = srgan(home, [
      'upscale',
      path.join(photos, 'p1.png'),
      '--model',
      onnxFile,
      '--out',
      out,
      '--tile',
      '24',
      '--overlap',
      '4',
      '--blend',
      '0',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const whole = path.join(tmp.dir, 'up-onnx-whole');
    const w = srgan(home, ['upscale', path.join(photos, 'p1.png'), '--model', onnxFile, '--out', whole]);
    expect(w.status, w.stderr).toBe(0);
    const pa = await raw(path.join(out, 'p1.png'));
    const pb = await raw(path.join(whole, 'p1.png'));
    let max = 0;
    for (let i = 0; i < pa.data.length; i++) max = Math.max(max, Math.abs(pa.data[i] - pb.data[i]));
    expect(max).toBeLessThanOrEqual(1);
  });
});

describe('srgan eval with ONNX models', () => {
  it('--model x.onnx --compare tfjsFolder: the two rows agree to 1e-3 dB', () => {
    const r = srgan(home, ['eval', '--data', photos, '--model', onnxFile, '--compare', tfjsDir, '--no-save', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      source: string;
      format: string;
      scale: number;
      results: { model: string; psnr: number; ssim: number }[];
    };
    expect(report).toMatchObject({ source: onnxFile, format: 'onnx', scale: 2 });
    const [model, bicubic, other] = report.results;
    expect(bicubic.model).toBe('bicubic');
    expect(other.model).toBe(tfjsDir);
    console.log(`eval PSNR-Y: ONNX ${model.psnr}, tfjs ${other.psnr}`);
    expect(Math.abs(model.psnr - other.psnr)).toBeLessThanOrEqual(1e-3);
    expect(Math.abs(model.ssim - other.ssim)).toBeLessThanOrEqual(1e-5);
  });

  it('--compare x.onnx beside a tfjs model', () => {
    const r = srgan(home, ['eval', '--data', photos, '--checkpoint', tfjsDir, '--compare', onnxFile, '--no-save', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { generator: unknown; results: { model: string; psnr: number }[] };
    expect(report.generator).toMatchObject({ kind: 'compact' });
    const [model, , other] = report.results;
    expect(other.model).toBe(onnxFile);
    expect(Math.abs(model.psnr - other.psnr)).toBeLessThanOrEqual(1e-3);
  });
});

describe('refused ONNX files', () => {
  it('a corrupt file (random bytes): SRGAN_ERR_CHECKPOINT naming it', () => {
    const bad = path.join(tmp.dir, 'random.onnx');
    const bytes = Buffer.alloc(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    fs.writeFileSync(bad, bytes);
    const r = srgan(home, ['upscale', path.join(photos, 'p0.png'), '--model', bad, '--out', path.join(tmp.dir, 'never')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toMatch(/SRGAN_ERR_CHECKPOINT|not an ONNX model|cannot load/);
    const e = srgan(home, ['eval', '--data', photos, '--checkpoint', tfjsDir, '--compare', bad, '--no-save']);
    expect(e.status).not.toBe(0);
    expect(e.stderr).toContain(`--compare ${bad}`);
  });

  it('an ONNX model that is not an upscaler (Identity): SRGAN_ERR_CONFIG naming it and the probe', () => {
    const identity = path.join(tmp.dir, 'identity.onnx');
    const io = (name: string) => ({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }, { dimParam: 'H' }, { dimParam: 'W' }] } } },
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'identity',
        node: [{ opType: 'Identity', input: ['input'], output: ['output'] }],
        input: [io('input')],
        output: [io('output')],
      },
    });
    fs.writeFileSync(identity, onnx.ModelProto.encode(model).finish());
    const r = srgan(home, ['upscale', path.join(photos, 'p0.png'), '--model', identity, '--out', path.join(tmp.dir, 'never'), '--json']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(identity);
    expect(r.stderr).toMatch(/expected a ×2 or ×4 RGB upscaler/);
  });

  it('--help names .onnx for --model and --compare', () => {
    const up = srgan(home, ['upscale', '--help']);
    expect(up.stdout).toMatch(/--model FILE[^\n]*\.onnx/);
    const ev = srgan(home, ['eval', '--help']);
    expect(ev.stdout).toMatch(/--model FILE[^\n]*\.onnx/);
    expect(ev.stdout).toMatch(/--compare MODEL[^\n]*\.onnx/);
  });
});
