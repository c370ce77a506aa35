// Which runtime `srgan upscale` runs a generator of ours on (docs/export.md, "Running it in srgan"):
// ONNX Runtime by default where onnxruntime-node loads, tfjs when asked (--runtime tfjs, or --backend
// naming a tfjs backend), and tfjs as the fallback when onnxruntime-node is not installed: that case runs
// a copy of the built CLI whose node_modules has every package but onnxruntime-node, so the import
// really fails. Through the real CLI, on a real generator written by the exporter, on made photos.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../../src/models/backend/init.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import type { GeneratorConfig } from '../../src/config/presets.js';
import { saveGeneratorLayersModel } from '../../src/models/io/export-layers.js';
import { saveGeneratorOnnx } from '../../src/models/io/export-onnx.js';
import { srgan } from '../support/cli.js';
import { writePhotos } from '../support/photos.js';
import { tempDir } from '../support/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let tmp: ReturnType<typeof tempDir>;
let home: string;
let model: string;
let onnxFile: string;
let photo: string;
beforeAll(async () => {
  await initBackend('wasm');
  tmp = tempDir('srgan-upscale-runtime-');
  home = path.join(tmp.dir, 'home');
  // Every op the tiler meets at tile edges: dilated convs, concat, pixel shuffle and the bilinear skip.
  const config: GeneratorConfig = { kind: 'final', channels: 8, blocks: 1, dilatedBlocks: true };
  const gen = buildGenerator(config, 2, 3);
  try {
    model = path.join(tmp.dir, 'final-x2');
    await saveGeneratorLayersModel(gen, config, model);
    onnxFile = path.join(tmp.dir, 'final-x2.onnx');
    saveGeneratorOnnx(gen, config, onnxFile);
  } finally {
    gen.dispose();
  }
  const photos = path.join(tmp.dir, 'photos');
  await writePhotos(photos, 1, 83, 61);
  photo = path.join(photos, 'p0.png');
});
afterAll(() => tmp.cleanup());

async function pixels(file: string): Promise<Buffer> {
  return sharp(file).removeAlpha().raw().toBuffer();
}

function maxDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

interface Report {
  runtime: string;
  backend: string | null;
  files: { out: string; outWidth: number; outHeight: number }[];
}

function upscale(out: string, extra: string[], bin?: string): { report: Report; stderr: string } {
  const args = ['upscale', photo, '--checkpoint', model, '--out', path.join(tmp.dir, out), '--json', ...extra];
  const r =
    bin === undefined
      ? srgan(home, args)
      : spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, SRGAN_HOME: home }, encoding: 'utf8', timeout: 300_000 });
  expect(r.status, r.stderr).toBe(0);
  return { report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}

describe('srgan upscale --runtime', () => {
  it('runs a generator of ours in ONNX Runtime by default, within 1/255 of tfjs, tiled or not', async () => {
    const ort = upscale('ort', []);
    expect(ort.report).toMatchObject({ runtime: 'onnxruntime-node', backend: null });
    expect(ort.stderr).toContain('(ONNX Runtime (CPU))');
    const tfjs = upscale('tfjs', ['--runtime', 'tfjs', '--backend', 'wasm']);
    expect(tfjs.report).toMatchObject({ runtime: 'tfjs', backend: 'wasm' });
    expect(tfjs.stderr).toContain('(tfjs, backend wasm)');
    // Tiles of 40 with overlap 8: five tiles, each edge inside the image.
    const tiled = upscale('ort-tiled', ['--tile', '40', '--overlap', '8', '--blend', '4']);
    const tiledTfjs = upscale('tfjs-tiled', ['--tile', '40', '--overlap', '8', '--blend', '4', '--runtime', 'tfjs']);
    for (const r of [ort, tfjs, tiled, tiledTfjs]) expect(r.report.files[0]).toMatchObject({ outWidth: 166, outHeight: 122 });
    const whole = maxDiff(await pixels(ort.report.files[0].out), await pixels(tfjs.report.files[0].out));
    const inTiles = maxDiff(await pixels(tiled.report.files[0].out), await pixels(tiledTfjs.report.files[0].out));
    console.log(`ONNX Runtime vs tfjs: max |Δ| ${whole}/255 whole, ${inTiles}/255 in tiles`);
    expect(whole).toBeLessThanOrEqual(1);
    expect(inTiles).toBeLessThanOrEqual(1);
    // The in-memory export is the file export: the same PNG as `--model x.onnx`.
    const file = upscale('ort-file', []);
    const fromFile = srgan(home, ['upscale', photo, '--model', onnxFile, '--out', path.join(tmp.dir, 'onnx-file'), '--json']);
    expect(fromFile.status, fromFile.stderr).toBe(0);
    expect(maxDiff(await pixels(file.report.files[0].out), await pixels(path.join(tmp.dir, 'onnx-file', 'p0.png')))).toBe(0);
  });

  it('naming a tfjs backend runs tfjs; --runtime onnx with --backend, tfjs with an .onnx file and unknown runtimes are refused', () => {
    expect(upscale('cpu', ['--backend', 'cpu']).report).toMatchObject({ runtime: 'tfjs', backend: 'cpu' });
    expect(upscale('onnx', ['--runtime', 'onnx']).report).toMatchObject({ runtime: 'onnxruntime-node' });
    const out = path.join(tmp.dir, 'never');
    const both = srgan(home, ['upscale', photo, '--checkpoint', model, '--out', out, '--runtime', 'onnx', '--backend', 'cpu']);
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/SRGAN_ERR_CONFIG: --backend picks a tfjs backend, and --runtime onnx runs ONNX Runtime instead/);
    const onnxOnTfjs = srgan(home, ['upscale', photo, '--model', onnxFile, '--out', out, '--runtime', 'tfjs']);
    expect(onnxOnTfjs.status).toBe(1);
    expect(onnxOnTfjs.stderr).toContain(`SRGAN_ERR_CONFIG: ${onnxFile}: an ONNX model runs in ONNX Runtime only`);
    const bogus = srgan(home, ['upscale', photo, '--checkpoint', model, '--out', out, '--runtime', 'torch']);
    expect(bogus.status).toBe(1);
    expect(bogus.stderr).toContain('SRGAN_ERR_CONFIG: --runtime must be auto, onnx or tfjs, got "torch"');
    expect(fs.existsSync(out)).toBe(false);
  });

  it('without onnxruntime-node: tfjs by default, saying why; --runtime onnx names the install line', () => {
    // The built CLI and its packages, less onnxruntime-node.
    const copy = path.join(tmp.dir, 'no-ort');
    fs.mkdirSync(path.join(copy, 'node_modules'), { recursive: true });
    for (const f of ['package.json', 'bin', 'dist']) fs.cpSync(path.join(ROOT, f), path.join(copy, f), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'native'), path.join(copy, 'native'));
    for (const pkg of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
      if (pkg === 'onnxruntime-node' || pkg === '.bin') continue;
      fs.symlinkSync(path.join(ROOT, 'node_modules', pkg), path.join(copy, 'node_modules', pkg));
    }
    const bin = path.join(copy, 'bin', 'srgan.js');
    const r = upscale('fallback', [], bin);
    expect(r.report).toMatchObject({ runtime: 'tfjs' });
    expect(r.stderr).toMatch(/\(tfjs, backend [a-z-]+; onnxruntime-node is not installed/);
    const onnx = spawnSync(
      process.execPath,
      [bin, 'upscale', photo, '--checkpoint', model, '--out', path.join(tmp.dir, 'never'), '--runtime', 'onnx'],
      {
        env: { ...process.env, SRGAN_HOME: home },
        encoding: 'utf8',
      },
    );
    expect(onnx.status).toBe(1);
    expect(onnx.stderr).toMatch(
      /SRGAN_ERR_CONFIG: .*running it in ONNX Runtime needs onnxruntime-node, which is not installed; install it beside srgan with/,
    );
  });
});
