// `srgan upscale` of a photo on its two runtimes, side by side in one run (docs/style.md §10): tfjs on
// wasm-native (wasm + our native oneDNN kernels, `--runtime tfjs --backend wasm-native`) and ONNX Runtime
// (onnxruntime-node, CPU; the default where it is installed). Rounds alternate between the two;
// medians of wall time, their ratio and each side's peak memory are reported, and the two PNGs compared.
// Needs `npm run build` (and the native addon: `npm ci` builds it) first.
//
//   npm run bench -- upscale-onnx [--preset NAME | --kind compact|rrdbnet|espcn|final [--channels N] [--convs N]]
//                                 [--scale 2|4] [--megapixels 1] [--rounds 3]
//
// --preset takes a preset's generator as it is (espcn-x2-fast, seed-final-x2, esrgan-x4, compact-x4, …);
// the default is a small Compact ×2 (32 channels, 8 convs). The photo is OpenCV's sample building.jpg
// (Debian's opencv-doc) resized with Lanczos to --megapixels (default 1: 1203×831), or --photo FILE.
// Both sides are the real CLI on the same checkpoint folder, with the default tiling ('auto' tiles: tfjs
// sizes them from tf.profile, ONNX Runtime from the graph's live activations); `ms` is the CLI's own
// (read, inference, write; process start and model load excluded), peak memory its `peakRssMiB`.
// One untimed warm-up round of each first. The generator has random weights (speed does not depend on them).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { initBackend } from '../dist/models/backend/init.js';
import { buildGenerator } from '../dist/models/archs/build.js';
import { saveGeneratorLayersModel } from '../dist/models/io/export-layers.js';
import { PRESETS } from '../dist/config/presets.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.join(here, '../bin/srgan.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROUNDS = Number(opt('rounds', 3));
const PRESET = opt('preset', undefined);
const MEGAPIXELS = Number(opt('megapixels', 1));
const DEFAULT_PHOTO = '/usr/share/doc/opencv-doc/examples/data/building.jpg';
const photoIn = opt('photo', DEFAULT_PHOTO);
if (!fs.existsSync(photoIn)) {
  console.log(`no photo at ${photoIn}: pass --photo FILE (or install Debian's opencv-doc)`);
  process.exit(0);
}

let config;
let scale;
if (PRESET !== undefined) {
  const p = PRESETS[PRESET];
  if (p === undefined) throw new Error(`--preset: unknown preset ${PRESET}; one of ${Object.keys(PRESETS).join(', ')}`);
  config = p.generator;
  scale = Number(opt('scale', p.scale));
} else {
  const kind = opt('kind', 'compact');
  const channels = Number(opt('channels', 32));
  const convs = Number(opt('convs', 8));
  scale = Number(opt('scale', 2));
  config =
    kind === 'compact'
      ? { kind, channels, convs }
      : kind === 'rrdbnet'
        ? { kind, channels, growth: Math.max(1, channels / 2), blocks: convs }
        : kind === 'final'
          ? { kind, channels, blocks: convs, dilatedBlocks: true }
          : { kind: 'espcn', channels, layout: 'plain', skip: true, depth: convs };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-bench-onnx-'));
const home = path.join(dir, 'home');
const srgan = (cliArgs) => {
  const r = spawnSync(process.execPath, [BIN, ...cliArgs], { env: { ...process.env, SRGAN_HOME: home }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`srgan ${cliArgs.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const meta = await sharp(photoIn).metadata();
  const f = Math.sqrt((MEGAPIXELS * 1e6) / (meta.width * meta.height));
  const photo = path.join(dir, 'photo.png');
  await sharp(photoIn)
    .resize(Math.round(meta.width * f), Math.round(meta.height * f), { kernel: 'lanczos3' })
    .png()
    .toFile(photo);

  await initBackend('cpu');
  const gen = buildGenerator(config, scale, 1);
  const model = path.join(dir, 'model');
  await saveGeneratorLayersModel(gen, config, model);
  console.log(
    `${PRESET ?? config.kind} ×${scale} (${JSON.stringify(config)}, ${gen.paramCount.toLocaleString('en-US')} params), ` +
      `${ROUNDS} rounds, ${os.availableParallelism()} CPUs`,
  );
  gen.dispose();

  const side = (runtime) => {
    const out = path.join(dir, runtime);
    const extra = runtime === 'tfjs' ? ['--runtime', 'tfjs', '--backend', 'wasm-native'] : ['--runtime', 'onnx'];
    const report = srgan(['upscale', photo, '--checkpoint', model, '--out', out, '--json', ...extra]);
    const file = report.files[0];
    if (file.error) throw new Error(`srgan upscale (${runtime}): ${file.error}`);
    return {
      ms: file.ms,
      rss: report.peakRssMiB,
      png: path.join(out, 'photo.png'),
      size: `${file.width}×${file.height} → ${file.outWidth}×${file.outHeight}`,
    };
  };

  const tfjs = { ms: [], rss: [] };
  const ort = { ms: [], rss: [] };
  let size = '';
  let pngs = [];
  for (let r = -1; r < ROUNDS; r++) {
    const a = side('tfjs');
    const b = side('onnx');
    pngs = [a.png, b.png];
    size = a.size;
    if (r < 0) continue; // warm-up
    tfjs.ms.push(a.ms);
    tfjs.rss.push(a.rss);
    ort.ms.push(b.ms);
    ort.rss.push(b.rss);
    console.log(`round ${r + 1}: tfjs wasm-native ${a.ms} ms (${a.rss} MiB peak), ONNX Runtime ${b.ms} ms (${b.rss} MiB peak)`);
  }

  const [pa, pb] = await Promise.all(pngs.map((p) => sharp(p).raw().toBuffer()));
  let maxDiff = 0;
  for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i] - pb[i]));

  const t = median(tfjs.ms);
  const o = median(ort.ms);
  console.log(`\n${size}, medians of ${ROUNDS}:`);
  console.log(
    `  srgan upscale --runtime tfjs (wasm-native)  ${String(Math.round(t)).padStart(7)} ms   1.00×   peak ${median(tfjs.rss)} MiB`,
  );
  console.log(
    `  srgan upscale --runtime onnx                ${String(Math.round(o)).padStart(7)} ms   ${(t / o).toFixed(2)}×   peak ${median(ort.rss)} MiB`,
  );
  console.log(`  max |Δ| between the two PNGs: ${maxDiff} (of 255${pa.length !== pb.length ? '; sizes differ!' : ''})`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
