// `srgan upscale` of a 1-megapixel photo on tfjs (wasm + native oneDNN kernels) versus the same generator
// exported with `srgan export --format onnx` and run in ONNX Runtime (onnxruntime-node, CPU), side by side
// in one run: rounds alternate between the two, medians and their ratio are reported (docs/style.md §10).
// Needs `npm run build` (and the native addon: `npm ci` builds it) first.
//
//   npm run bench -- upscale-onnx [--photo FILE] [--kind compact|rrdbnet|espcn] [--scale 2|4]
//                                 [--channels N] [--convs N] [--rounds 3]
//
// The photo defaults to OpenCV's sample building.jpg (Debian's opencv-doc), enlarged with Lanczos to
// about 1 MP (1203×831); any photo is resized the same way. Both sides read and write through the same
// image code (dist/data/image/image-io.js) and clamp to [0, 1]:
//   tfjs  `srgan upscale PHOTO --checkpoint MODEL --backend wasm-native --json`: its `ms` (read, tiled
//         inference with the default auto tile and overlap, write); process start and model load excluded.
//   ORT   read, one session.run on the whole image (NCHW), clamp, write, in this process; session
//         creation excluded. Its inference alone is reported too.
// One untimed warm-up round of each first (ONNX Runtime's first run allocates its arenas).
// The generator has random weights (speed does not depend on them); the outputs agree to ~1e-4 after
// clamping and 8-bit rounding, checked as the max |Δ| of the two PNGs.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// A native addon: loaded here, on the main thread, before anything else starts.
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

import { initBackend } from '../dist/models/backend/init.js';
import { buildGenerator } from '../dist/models/archs/build.js';
import { saveGeneratorLayersModel } from '../dist/models/io/export-layers.js';
import { readForUpscale, writeUpscaled } from '../dist/data/image/image-io.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.join(here, '../bin/srgan.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROUNDS = Number(opt('rounds', 3));
const SCALE = Number(opt('scale', 2));
const KIND = opt('kind', 'compact');
const CHANNELS = Number(opt('channels', 32));
const CONVS = Number(opt('convs', 8));
const DEFAULT_PHOTO = '/usr/share/doc/opencv-doc/examples/data/building.jpg';
const photoIn = opt('photo', DEFAULT_PHOTO);
if (!fs.existsSync(photoIn)) {
  console.log(`no photo at ${photoIn}: pass --photo FILE (or install Debian's opencv-doc)`);
  process.exit(0);
}

const config =
  KIND === 'compact'
    ? { kind: 'compact', channels: CHANNELS, convs: CONVS }
    : KIND === 'rrdbnet'
      ? { kind: 'rrdbnet', channels: CHANNELS, growth: Math.max(1, CHANNELS / 2), blocks: CONVS }
      : { kind: 'espcn', channels: CHANNELS, layout: 'plain', skip: true, depth: CONVS };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-bench-onnx-'));
const home = path.join(dir, 'home');
const srgan = (cliArgs) => {
  const r = spawnSync(process.execPath, [BIN, ...cliArgs], { env: { ...process.env, SRGAN_HOME: home }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`srgan ${cliArgs.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  // About 1 MP, keeping the aspect ratio.
  const meta = await sharp(photoIn).metadata();
  const f = Math.sqrt(1e6 / (meta.width * meta.height));
  const photo = path.join(dir, 'photo.png');
  await sharp(photoIn)
    .resize(Math.round(meta.width * f), Math.round(meta.height * f), { kernel: 'lanczos3' })
    .png()
    .toFile(photo);

  await initBackend('cpu');
  const gen = buildGenerator(config, SCALE, 1);
  const model = path.join(dir, 'model');
  await saveGeneratorLayersModel(gen, config, model);
  const onnxFile = path.join(dir, 'model.onnx');
  srgan(['export', model, '--format', 'onnx', '--out', onnxFile]);
  const session = await ort.InferenceSession.create(onnxFile);
  console.log(
    `${KIND} ×${SCALE} (${JSON.stringify(config)}, ${gen.paramCount.toLocaleString('en-US')} params), ${ROUNDS} rounds, ` +
      `${os.availableParallelism()} CPUs, onnxruntime-node ${ort.env.versions.node}`,
  );
  gen.dispose();

  const ortUpscale = async (out) => {
    const t0 = performance.now();
    const img = await readForUpscale(photo);
    const { width: w, height: h, data } = img.rgb;
    const planar = new Float32Array(3 * w * h);
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) planar[c * w * h + i] = data[3 * i + c];
    const t1 = performance.now();
    const { output } = await session.run({ input: new ort.Tensor('float32', planar, [1, 3, h, w]) });
    const t2 = performance.now();
    const [, , oh, ow] = output.dims;
    const y = output.data;
    const hwc = new Float32Array(3 * oh * ow);
    for (let i = 0; i < oh * ow; i++) {
      for (let c = 0; c < 3; c++) {
        const v = y[c * oh * ow + i];
        hwc[3 * i + c] = v > 0 ? (v < 1 ? v : 1) : 0;
      }
    }
    await writeUpscaled(out, { rgb: { width: ow, height: oh, data: hwc }, alpha: null, grey: false, bitDepth: img.bitDepth });
    return { ms: performance.now() - t0, inferMs: t2 - t1, width: w, height: h };
  };

  const tfjsMs = [];
  const ortMs = [];
  const ortInferMs = [];
  let size = '';
  for (let r = -1; r < ROUNDS; r++) {
    const report = JSON.parse(
      srgan(['upscale', photo, '--checkpoint', model, '--out', path.join(dir, 'tfjs'), '--backend', 'wasm-native', '--json']),
    );
    const file = report.files[0];
    if (file.error) throw new Error(`srgan upscale: ${file.error}`);
    const o = await ortUpscale(path.join(dir, 'ort.png'));
    if (r < 0) continue; // warm-up
    tfjsMs.push(file.ms);
    ortMs.push(o.ms);
    ortInferMs.push(o.inferMs);
    size = `${o.width}×${o.height} → ${file.outWidth}×${file.outHeight}`;
    console.log(
      `round ${r + 1}: tfjs wasm-native ${Math.round(file.ms)} ms, ONNX Runtime ${Math.round(o.ms)} ms (inference ${Math.round(o.inferMs)} ms)`,
    );
  }

  const a = await sharp(path.join(dir, 'tfjs', 'photo.png'))
    .raw()
    .toBuffer();
  const b = await sharp(path.join(dir, 'ort.png')).raw().toBuffer();
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));

  const t = median(tfjsMs);
  const o = median(ortMs);
  console.log(`\n${size}, medians of ${ROUNDS}:`);
  console.log(`  srgan upscale, tfjs wasm-native     ${String(Math.round(t)).padStart(7)} ms   1.00×`);
  console.log(`  ONNX Runtime (read, run, write)     ${String(Math.round(o)).padStart(7)} ms   ${(t / o).toFixed(2)}× as fast`);
  console.log(`  ONNX Runtime inference alone        ${String(Math.round(median(ortInferMs))).padStart(7)} ms`);
  console.log(`  max |Δ| between the two PNGs: ${maxDiff} (of 255${a.length !== b.length ? '; sizes differ!' : ''})`);
  await session.release();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
