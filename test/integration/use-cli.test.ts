// `srgan upscale` and `srgan eval` through the real CLI (`node bin/srgan.js`, the built dist/) against a
// temp SRGAN_HOME holding a run row and checkpoint folders written the way the trainer writes them
// (writeCheckpoint + saveGeneratorLayersModel), with random espcn-x2-fast generators: nothing is
// trained. Outputs are checked against the same generators run in this process on the cpu backend.

import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openDb, recordCheckpoint, type EvalRow } from '../../src/store/db.js';
import { homePaths } from '../../src/store/home.js';
import { EVAL_LR_SYNTHESES } from '../../src/config/lr-synthesis.js';
import { readForUpscale, upscaleAlpha } from '../../src/data/image/image-io.js';
import { mulberry32 } from '../../src/util/prng.js';
import { hasCode } from '../../src/util/errors.js';
import { writeCheckpoint } from '../../src/models/train/checkpoint.js';
import { evaluate } from '../../src/models/infer/evaluate.js';
import { saveGeneratorLayersModel } from '../../src/models/io/export-layers.js';
import { fileModelIO } from '../../src/models/io/layers-io.js';
import { selectBackend } from '../../src/models/backend/ladder.js';
import { checkpointForRun, loadGenerator } from '../../src/models/infer/load-generator.js';
import type { Generator } from '../../src/models/archs/network.js';
import { PRESETS, type RunConfig } from '../../src/config/presets.js';
import { buildGenerator } from '../../src/models/archs/build.js';
import { saveBicubicLayersModel } from '../support/bicubic-model.js';
import { PSNR_TOL, referenceRows, SSIM_TOL, writeReferencePictures } from '../support/eval-reference.js';
import { srgan } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const RUN = '20260101-120000-use1';
const cfg = PRESETS['espcn-x2-fast'] as RunConfig;
const tmp = tempDir('srgan-use-cli-');
const home = path.join(tmp.dir, 'home');
const ckptParent = path.join(home, 'checkpoints', RUN);
const inDir = path.join(tmp.dir, 'in');
const hrDir = path.join(tmp.dir, 'hr');
const otherX2 = path.join(tmp.dir, 'other-x2');
const otherX4 = path.join(tmp.dir, 'other-x4');
/** A plain tfjs model that is not an srgan generator: nearest-neighbour ×2, the stand-in for a published upscaler. */
const nearestX2 = path.join(tmp.dir, 'nearest-x2');
/** A tfjs LayersModel that computes the centre-aligned Keys bicubic ×2 (test/support/bicubic-model.ts). */
const bicubicX2 = path.join(tmp.dir, 'bicubic-x2');
/** HR images with noise in every channel, like photos (few exact-half ties between float32 and float64 bicubic). */
const noisyDir = path.join(tmp.dir, 'hr-noisy');
const ckpt = (step: number) => path.join(ckptParent, `step-${String(step).padStart(8, '0')}`);
/** A second run, older, whose checkpoints have validation gains over bicubic. */
const GAIN_RUN = '20251231-120000-gain';
const gainParent = path.join(home, 'checkpoints', GAIN_RUN);
const gainCkpt = (step: number) => path.join(gainParent, `step-${String(step).padStart(8, '0')}`);

/** Seeds of the generators in the checkpoints: step 10 is the best by val PSNR, 20 the newest intact one, 30 is damaged. */
const gens = new Map<number, Generator>();

async function writeRunCheckpoint(step: number, seed: number, valPsnr: number | null, run = RUN, valGain?: number | null): Promise<void> {
  const gen = buildGenerator(cfg.generator, cfg.scale, seed);
  if (run === RUN) gens.set(step, gen);
  // Only what loading a generator reads; the rest of a real state is the trainer's business. valGain
  // is absent, as in checkpoints from before it existed, unless given.
  const state = {
    runId: run,
    step,
    time: 1_767_268_800 + step,
    kind: 'periodic',
    config: cfg,
    scheduler: {},
    gan: {},
    rng: { jpeg: 0, perceptual: null },
    data: { seq: 0, patchesPerImage: 1, images: 1 },
    valPsnr,
    ...(valGain === undefined ? {} : { valGain }),
    metrics: [],
  };
  await writeCheckpoint(
    run === RUN ? ckptParent : path.join(home, 'checkpoints', run),
    state as unknown as Parameters<typeof writeCheckpoint>[1],
    {},
    (dir) => saveGeneratorLayersModel(gen, cfg.generator, path.join(dir, 'generator')),
  );
  if (run !== RUN) gen.dispose();
}

/** A smooth colourful test picture, w×h×channels, seeded. */
function picture(w: number, h: number, channels: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const out = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = 128 + 80 * Math.sin(x / (2 + seed)) * Math.cos(y / 4);
      const px = [v + 30 * rand(), 255 - v, (x * 7 + y * 5) % 256, Math.round((255 * x) / (w - 1))];
      out.set(
        px.slice(0, channels).map((c) => Math.max(0, Math.min(255, Math.round(c)))),
        (y * w + x) * channels,
      );
    }
  }
  return out;
}

async function writePng(file: string, w: number, h: number, channels: 1 | 3 | 4, seed: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(picture(w, h, channels, seed), { raw: { width: w, height: h, channels } });
  // Without 'b-w' sharp stores one raw channel as an RGB PNG.
  await (channels === 1 ? img.toColourspace('b-w') : img).png().toFile(file);
}

/** Decoded raw samples of an image file as stored (no rotation), with its stored channel count. */
async function raw(file: string): Promise<{ width: number; height: number; channels: number; data: Uint8Array }> {
  const stored = (await sharp(file).metadata()).channels;
  // sharp's raw output expands grey to RGB unless asked to keep it.
  const pipeline = stored === 1 || stored === 2 ? sharp(file).toColourspace('b-w') : sharp(file);
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data) };
}

/** gen.apply on a whole image read like `srgan upscale` reads it, clamped and rounded to 8 bits: RGB, HWC. */
async function expectedRgb(gen: Generator, file: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const img = await readForUpscale(file);
  const { width, height } = img.rgb;
  const out = tf.tidy(() => tf.clipByValue(gen.apply(tf.tensor4d(img.rgb.data, [1, height, width, 3])), 0, 1).dataSync());
  return { width: width * gen.scale, height: height * gen.scale, data: Uint8Array.from(out, (v) => Math.round(v * 255)) };
}

/** Every file under `dir` (relative path → content, hex). */
function bytesIn(dir: string): Map<string, string> {
  const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => fs.statSync(path.join(dir, f)).isFile());
  return new Map(files.sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('hex')]));
}

/** Largest difference between channel `c` of an interleaved image and a plane/packed array. */
function maxDiff(a: Uint8Array, aChannels: number, b: ArrayLike<number>, bChannels: number, channels: number[]): number {
  let worst = 0;
  const n = a.length / aChannels;
  for (let i = 0; i < n; i++) for (const c of channels) worst = Math.max(worst, Math.abs(a[i * aChannels + c] - b[i * bChannels + c]));
  return worst;
}

beforeAll(async () => {
  await selectBackend('cpu');
  await writeRunCheckpoint(10, 11, 31);
  await writeRunCheckpoint(20, 22, null);
  await writeRunCheckpoint(30, 33, null);
  // Damage step 30's generator weights: one flipped byte.
  const gdir = path.join(ckpt(30), 'generator');
  const shard = path.join(
    gdir,
    fs.readdirSync(gdir).find((f) => f.endsWith('.bin'))!,
  );
  const bytes = fs.readFileSync(shard);
  bytes[100] = bytes[100] ^ 0xff;
  fs.writeFileSync(shard, bytes);

  const db = openDb(homePaths(home).db);
  db.prepare(
    `INSERT INTO runs (id, name, status, created_at, preset, backend, backend_reason, config, host, pid, data_dir)
     VALUES (?, 'use-test', 'stopped', 1767268800, 'espcn-x2-fast', 'cpu', NULL, ?, 'test', 1, '/photos')`,
  ).run(RUN, JSON.stringify(cfg));
  // The database knows PSNRs state.json does not: step 20's, and a higher one for the damaged step 30.
  recordCheckpoint(db, { run_id: RUN, step: 20, time: 1, path: ckpt(20), checksum: 'x', kind: 'periodic', psnr: 25 });
  recordCheckpoint(db, { run_id: RUN, step: 30, time: 2, path: ckpt(30), checksum: 'x', kind: 'periodic', psnr: 40 });

  // The gain run (created before RUN, so never "the newest run"): step 10 has the highest PSNR but a
  // small gain; step 20's gain (the highest) is only in the database; step 30's state.json gain wins
  // over a higher one the database claims; step 40 is the newest and was not validated.
  db.prepare(
    `INSERT INTO runs (id, name, status, created_at, preset, backend, backend_reason, config, host, pid, data_dir)
     VALUES (?, 'gain-test', 'stopped', 1767182400, 'espcn-x2-fast', 'cpu', NULL, ?, 'test', 1, '/photos')`,
  ).run(GAIN_RUN, JSON.stringify(cfg));
  await writeRunCheckpoint(10, 51, 35, GAIN_RUN, 0.25);
  await writeRunCheckpoint(20, 52, 30, GAIN_RUN, null);
  await writeRunCheckpoint(30, 53, 33, GAIN_RUN, 0.75);
  await writeRunCheckpoint(40, 54, null, GAIN_RUN, null);
  recordCheckpoint(db, { run_id: GAIN_RUN, step: 10, time: 1, path: gainCkpt(10), checksum: 'x', kind: 'best', psnr: 35, gain: 0.25 });
  recordCheckpoint(db, { run_id: GAIN_RUN, step: 20, time: 2, path: gainCkpt(20), checksum: 'x', kind: 'best', psnr: 30, gain: 1.5 });
  recordCheckpoint(db, { run_id: GAIN_RUN, step: 30, time: 3, path: gainCkpt(30), checksum: 'x', kind: 'periodic', psnr: 33, gain: 9 });
  recordCheckpoint(db, { run_id: GAIN_RUN, step: 40, time: 4, path: gainCkpt(40), checksum: 'x', kind: 'stop' });
  db.close();

  const other = buildGenerator(cfg.generator, 2, 44);
  await saveGeneratorLayersModel(other, cfg.generator, otherX2);
  other.dispose();
  const x4 = buildGenerator(cfg.generator, 4, 45);
  await saveGeneratorLayersModel(x4, cfg.generator, otherX4);
  x4.dispose();
  const nearest = tfl.sequential({ layers: [tfl.layers.upSampling2d({ size: [2, 2], inputShape: [null, null, 3] })] });
  await nearest.save(fileModelIO(nearestX2));
  nearest.dispose();
  await saveBicubicLayersModel(2, bicubicX2);

  // Upscale inputs: RGBA, grey in a subfolder, a JPEG stored 26×18 that EXIF orientation 6 turns to 18×26, and junk.
  await writePng(path.join(inDir, 'rgba.png'), 40, 28, 4, 1);
  await writePng(path.join(inDir, 'sub', 'grey.png'), 30, 22, 1, 2);
  expect((await sharp(path.join(inDir, 'sub', 'grey.png')).metadata()).channels).toBe(1);
  await sharp(picture(26, 18, 3, 3), { raw: { width: 26, height: 18, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(path.join(inDir, 'photo.jpg'));
  fs.writeFileSync(path.join(inDir, 'broken.png'), Buffer.from('this is not a PNG at all, just text'));
  fs.writeFileSync(path.join(inDir, 'notes.txt'), 'not an image: ignored by the folder walk');

  // Evaluation HR images: the pictures of the independent reference (test/fixtures/eval_reference.py),
  // two with odd sides (cropped to a multiple of the scale).
  await writeReferencePictures(hrDir);
  for (const [name, w, h, seed] of [
    ['n1.png', 56, 48, 7],
    ['n2.png', 45, 41, 8],
  ] as const) {
    const rand = mulberry32(seed);
    const px = Uint8Array.from({ length: w * h * 3 }, (_, i) =>
      Math.round(128 + 70 * Math.sin(((i / 3) % w) / (3 + (i % 3)) + Math.floor(i / 3 / w) / 5) + 40 * (rand() - 0.5)),
    );
    fs.mkdirSync(noisyDir, { recursive: true });
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toFile(path.join(noisyDir, name));
  }
});

afterAll(() => {
  for (const g of gens.values()) g.dispose();
  tmp.cleanup();
});

const run = (args: string[]) => srgan(home, args, 60_000);

describe('choosing and loading a generator', () => {
  it('latest skips the damaged checkpoint; best uses state.json and the database PSNRs', async () => {
    const warnings: string[] = [];
    const paths = homePaths(home);
    const latest = checkpointForRun(paths, 'use-test', 'latest', { onWarning: (l) => warnings.push(l) });
    expect(latest.step).toBe(20);
    expect(warnings.join('\n')).toMatch(
      /skipped damaged checkpoint: checkpoint .*step-00000030: generator\/group1-shard1of1-[0-9a-f]{12}\.bin is damaged/,
    );
    // No gains in this run (checkpoints from before they were measured): best by PSNR, as before.
    const best = checkpointForRun(paths, RUN.slice(0, 12), 'best');
    expect([best.step, best.psnr, best.gain, best.picked, best.bestBy]).toEqual([10, 31, null, 'best', 'psnr']);
    // With gains: the highest gain (state.json, else the database), not the highest PSNR.
    const byGain = checkpointForRun(paths, 'gain-test', 'best');
    expect([byGain.dir, byGain.step, byGain.gain, byGain.psnr, byGain.picked, byGain.bestBy]).toEqual([
      gainCkpt(20),
      20,
      1.5,
      30,
      'best',
      'gain',
    ]);
    expect(checkpointForRun(paths, 'gain-test', 'latest').step).toBe(40);

    const fromParent = await loadGenerator(ckptParent);
    expect([fromParent.step, fromParent.source, fromParent.scale, fromParent.runId]).toEqual([20, ckpt(20), 2, RUN]);
    fromParent.gen.dispose();
    await expect(loadGenerator(nearestX2)).rejects.toSatisfy(
      (e: unknown) => hasCode(e, 'SRGAN_ERR_CHECKPOINT') && /is a tfjs model but not an srgan generator/.test((e as Error).message),
    );
    await expect(loadGenerator(tmp.dir)).rejects.toSatisfy(
      (e: unknown) => hasCode(e, 'SRGAN_ERR_CHECKPOINT') && /not a model folder/.test((e as Error).message),
    );
  });
});

describe('srgan upscale', () => {
  it('upscales a folder: sizes ×2, alpha kept, grey stays grey, EXIF orientation applied, a corrupt file skipped with exit 1', async () => {
    const out = path.join(tmp.dir, 'out');
    const r = run(['upscale', inDir, '--out', out, '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(1);
    // The default source is said, with the damaged checkpoint passed over.
    expect(r.stderr).toMatch(/skipped damaged checkpoint: .*step-00000030/);
    expect(r.stderr).toMatch(new RegExp(`using the newest run with a checkpoint, ${RUN} \\(use-test\\), latest checkpoint at step 20`));
    expect(r.stderr).toMatch(/broken\.png: skipped: SRGAN_ERR_DATA: cannot decode image/);
    expect(r.stderr).toMatch(/1 file failed/);
    expect(r.stdout).toMatch(/rgba\.png {2}40×28 → 80×56 {2}\d+ ms/);
    expect(r.stdout).toMatch(/3 of 4 files upscaled ×2/);
    expect(fs.existsSync(path.join(out, 'broken.png'))).toBe(false);
    expect(fs.existsSync(path.join(out, 'notes.txt'))).toBe(false);

    const gen = gens.get(20)!;
    const rgba = await raw(path.join(out, 'rgba.png'));
    expect([rgba.width, rgba.height, rgba.channels]).toEqual([80, 56, 4]);
    const want = await expectedRgb(gen, path.join(inDir, 'rgba.png'));
    expect(maxDiff(rgba.data, 4, want.data, 3, [0, 1, 2])).toBeLessThanOrEqual(1);
    const src = await readForUpscale(path.join(inDir, 'rgba.png'));
    const alpha = upscaleAlpha(src.alpha!, 40, 28, 2);
    expect(
      maxDiff(
        rgba.data.filter((_, i) => i % 4 === 3),
        1,
        Uint8Array.from(alpha, (a) => Math.round(a * 255)),
        1,
        [0],
      ),
    ).toBeLessThanOrEqual(1);

    const grey = await raw(path.join(out, 'sub', 'grey.png'));
    expect([grey.width, grey.height, grey.channels]).toEqual([60, 44, 1]);
    expect((await sharp(path.join(out, 'sub', 'grey.png')).metadata()).space).toBe('b-w');

    const photo = await sharp(path.join(out, 'photo.jpg')).metadata();
    expect([photo.format, photo.width, photo.height, photo.orientation ?? 1]).toEqual(['jpeg', 36, 52, 1]);
  });

  it('--tile 20 --format png --json: tiled output equals untiled, one JSON object with each file', async () => {
    const out = path.join(tmp.dir, 'out-tiled');
    const r = run(['upscale', inDir, '--out', out, '--run', RUN, '--tile', '20', '--format', 'png', '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as {
      source: string;
      run: { id: string };
      step: number;
      scale: number;
      tiling: { tile: number; overlap: number; blend: number };
      files: (
        | { in: string; out: string; width: number; height: number; outWidth: number; outHeight: number; ms: number }
        | { in: string; error: string }
      )[];
    };
    expect([report.source, report.run.id, report.step, report.scale]).toEqual([ckpt(20), RUN, 20, 2]);
    // espcn-x2-fast's receptive radius is 8: covered, so no cross-fade is needed.
    expect(report.tiling).toEqual({ tile: 20, overlap: 8, blend: 0 });
    const byName = new Map(report.files.map((f) => [path.relative(inDir, f.in), f]));
    expect([...byName.keys()].sort()).toEqual(['broken.png', 'photo.jpg', 'rgba.png', path.join('sub', 'grey.png')]);
    expect(byName.get('broken.png')).toMatchObject({ error: expect.stringMatching(/cannot decode image/) });
    expect(byName.get('photo.jpg')).toMatchObject({ out: path.join(out, 'photo.png'), width: 18, height: 26, outWidth: 36, outHeight: 52 });

    const gen = gens.get(20)!;
    for (const [name, channels] of [
      ['rgba.png', 4],
      [path.join('sub', 'grey.png'), 1],
    ] as const) {
      const tiled = await raw(path.join(out, name));
      const untiled = await raw(path.join(tmp.dir, 'out', name));
      expect(tiled.channels).toBe(channels);
      expect(maxDiff(tiled.data, channels, untiled.data, channels, [...Array(channels).keys()])).toBeLessThanOrEqual(1);
    }
    const photo = await raw(path.join(out, 'photo.png'));
    const want = await expectedRgb(gen, path.join(inDir, 'photo.jpg'));
    expect([photo.width, photo.height]).toEqual([want.width, want.height]);
    expect(maxDiff(photo.data, photo.channels, want.data, 3, [0, 1, 2])).toBeLessThanOrEqual(1);
  });

  it('a damaged checkpoint is a clear SRGAN_ERR_CHECKPOINT naming the file', () => {
    const r = run([
      'upscale',
      path.join(inDir, 'rgba.png'),
      '--out',
      path.join(tmp.dir, 'out-bad'),
      '--checkpoint',
      ckpt(30),
      '--backend',
      'cpu',
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^srgan: SRGAN_ERR_CHECKPOINT: checkpoint .*step-00000030: generator\/group1-shard1of1-[0-9a-f]{12}\.bin is damaged/m,
    );
    expect(fs.existsSync(path.join(tmp.dir, 'out-bad', 'rgba.png'))).toBe(false);
  });

  it('--best takes the checkpoint with the highest validation gain over bicubic, not the highest PSNR', () => {
    const out = path.join(tmp.dir, 'out-best-gain');
    const r = run(['upscale', path.join(inDir, 'rgba.png'), '--out', out, '--run', GAIN_RUN, '--best', '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { source: string; run: { id: string }; step: number };
    expect([report.source, report.run.id, report.step]).toEqual([gainCkpt(20), GAIN_RUN, 20]);
    expect(r.stderr).toContain(
      `using the run ${GAIN_RUN} (gain-test), best checkpoint (val gain +1.50 dB over bicubic, PSNR 30.00 dB) at step 20: ${gainCkpt(20)}`,
    );
    expect(fs.existsSync(path.join(out, 'rgba.png'))).toBe(true);
  });

  it('--help', () => {
    const r = run(['upscale', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: srgan upscale IN\.\.\. --out DIR/);
    expect(r.stdout).toMatch(/--best\s+take the checkpoint with the highest validation gain over bicubic/);
    for (const flag of [
      '--run RUN',
      '--checkpoint PATH',
      '--best',
      '--tile N|auto',
      '--overlap N',
      '--format F',
      '--backend NAME',
      '--json',
    ])
      expect(r.stdout).toContain(flag);
  });
});

describe('srgan upscale refuses to lose data, before any work', () => {
  // --checkpoint names no model: a refusal must come first (SRGAN_ERR_CONFIG), never the missing model.
  const noModel = ['--checkpoint', path.join(tmp.dir, 'no-such-model'), '--backend', 'cpu'];

  it('an output that would overwrite its input: the same folder, and the same folder through a symlink', async () => {
    const dir = path.join(tmp.dir, 'overwrite');
    await writePng(path.join(dir, 'x.png'), 20, 16, 3, 7);
    await writePng(path.join(dir, 'y.png'), 20, 16, 3, 8);
    fs.symlinkSync(dir, path.join(tmp.dir, 'overwrite-link'));
    const before = bytesIn(dir);
    for (const args of [
      [path.join(dir, 'x.png'), '--out', dir],
      [path.join(dir, 'x.png'), path.join(dir, 'y.png'), '--out', dir, '--format', 'png'],
      // The same folder by another name: writing would follow the link into the input.
      [path.join(dir, 'x.png'), '--out', path.join(tmp.dir, 'overwrite-link')],
      [path.join(tmp.dir, 'overwrite-link', 'x.png'), '--out', dir],
    ]) {
      const r = run(['upscale', ...args, ...noModel]);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(
        /^srgan: SRGAN_ERR_CONFIG: \S*x\.png would be overwritten by its own output; choose another --out folder$/m,
      );
    }
    // A link to the input under --out is the input too.
    const out = path.join(tmp.dir, 'overwrite-out');
    fs.mkdirSync(out);
    fs.symlinkSync(path.join(dir, 'y.png'), path.join(out, 'y.png'));
    const r = run(['upscale', path.join(dir, 'y.png'), '--out', out, ...noModel]);
    expect(r.stderr).toMatch(/^srgan: SRGAN_ERR_CONFIG: \S*y\.png would be overwritten by its own output/m);
    expect(bytesIn(dir)).toEqual(before);
  });

  it('two inputs that would write the same output: same base name from two folders, or two extensions under --format', async () => {
    const a = path.join(tmp.dir, 'clash-a');
    const b = path.join(tmp.dir, 'clash-b');
    await writePng(path.join(a, 'p.png'), 20, 16, 3, 9);
    await writePng(path.join(b, 'p.png'), 20, 16, 3, 10);
    await sharp(picture(20, 16, 3, 11), { raw: { width: 20, height: 16, channels: 3 } })
      .jpeg()
      .toFile(path.join(a, 'p.jpg'));
    const out = path.join(tmp.dir, 'clash-out');
    for (const [args, first, second] of [
      [[path.join(a, 'p.png'), path.join(b, 'p.png')], path.join(a, 'p.png'), path.join(b, 'p.png')],
      [[a, '--format', 'png'], path.join(a, 'p.jpg'), path.join(a, 'p.png')],
    ] as const) {
      const r = run(['upscale', ...args, '--out', out, ...noModel]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `srgan: SRGAN_ERR_CONFIG: ${first} and ${second} would both be written to ${path.join(out, 'p.png')}; upscale them into separate --out folders`,
      );
      expect(fs.existsSync(out)).toBe(false);
    }
    // Without --format each keeps its extension: no clash, so the missing model is what stops it.
    const ok = run(['upscale', a, '--out', out, ...noModel]);
    expect(ok.stderr).toMatch(/^srgan: SRGAN_ERR_CHECKPOINT: /m);
  });
});

describe('srgan eval', () => {
  it('--best --compare: model, bicubic and compared rows; bicubic and nearest as the independent reference scores them; rows stored on the run', async () => {
    const ckptGen = path.join(ckpt(10), 'generator');
    const r = run([
      'eval',
      '--run',
      RUN,
      '--best',
      '--data',
      hrDir,
      '--compare',
      otherX2,
      '--compare',
      ckptGen,
      '--compare',
      nearestX2,
      '--backend',
      'cpu',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      source: string;
      step: number;
      scale: number;
      border: number;
      images: number;
      results: { model: string; lr: string; psnr: number; ssim: number; gain: number; images: number }[];
      filters: {
        lr: string;
        lrSynthesis: unknown;
        model: { psnr: number };
        bicubic: { psnr: number };
        gain: number;
        compare: { model: string; psnr: number; gain: number }[];
      }[];
      saved: number;
    };
    expect([report.source, report.step, report.scale, report.border, report.images, report.saved]).toEqual([ckpt(10), 10, 2, 2, 3, 5]);
    expect(report.results.map((x) => x.model)).toEqual(['model', 'bicubic', otherX2, ckptGen, nearestX2]);
    // The default is the standard protocol alone: one entry in filters, the same numbers as results.
    expect(report.results.every((x) => x.lr === 'bicubic-aa')).toBe(true);
    expect(report.filters.map((f) => [f.lr, f.lrSynthesis, f.compare.map((c) => c.model)])).toEqual([
      ['bicubic-aa', { filter: 'bicubic-aa', blur: 0 }, [otherX2, ckptGen, nearestX2]],
    ]);
    const f0 = report.filters[0];
    expect([f0.model.psnr, f0.bicubic.psnr, f0.compare[2].psnr]).toEqual([
      report.results[0].psnr,
      report.results[1].psnr,
      report.results[4].psnr,
    ]);
    expect(f0.gain).toBeCloseTo(report.results[0].psnr - report.results[1].psnr, 12);
    expect(report.results[0].gain).toBe(f0.gain);
    expect(report.results[1].gain).toBe(0);
    expect(f0.compare[2].gain).toBeCloseTo(report.results[4].psnr - report.results[1].psnr, 12);

    // Bicubic and the nearest-neighbour compare model score what NumPy computed outside this code
    // (test/fixtures/eval_reference.py: MATLAB imresize LR, bicubic up, PSNR-Y / SSIM-Y, 2 px border).
    const want = referenceRows(2);
    const mean = (f: (w: (typeof want)[number]) => number): number => want.reduce((a, w) => a + f(w), 0) / want.length;
    expect(Math.abs(report.results[1].psnr - mean((w) => w.bicubic.psnr))).toBeLessThanOrEqual(PSNR_TOL);
    expect(Math.abs(report.results[1].ssim - mean((w) => w.bicubic.ssim))).toBeLessThanOrEqual(SSIM_TOL);
    expect(Math.abs(report.results[4].psnr - mean((w) => w.nearest.psnr))).toBeLessThanOrEqual(PSNR_TOL);
    expect(Math.abs(report.results[4].ssim - mean((w) => w.nearest.ssim))).toBeLessThanOrEqual(SSIM_TOL);
    // The model row is our generator; the same weights through tf.loadLayersModel score the same.
    const files = ['a.png', 'b.png', 'c.png'].map((f) => path.join(hrDir, f));
    const here = await evaluate(gens.get(10)!, files, { scale: 2, tile: 'auto', overlap: 4, blend: 0 });
    expect(report.results[0].psnr).toBeCloseTo(here.model!.psnr, 6);
    expect(report.results[0].ssim).toBeCloseTo(here.model!.ssim, 6);
    expect(report.results[3].psnr).toBeCloseTo(report.results[0].psnr, 4);
    expect(report.results[2].psnr).not.toBeCloseTo(report.results[0].psnr, 4);

    const db = openDb(homePaths(home).db, { readonly: true });
    const rows = db.prepare('SELECT * FROM evals WHERE run_id = ? ORDER BY id').all(RUN) as EvalRow[];
    db.close();
    expect(rows.map((x) => [x.model, x.images, x.data_dir])).toEqual([
      ['model', 3, hrDir],
      ['bicubic', 3, hrDir],
      [otherX2, 3, hrDir],
      [ckptGen, 3, hrDir],
      [nearestX2, 3, hrDir],
    ]);
    expect(rows[1].psnr).toBe(report.results[1].psnr);
    expect(JSON.parse(rows[0].json!)).toMatchObject({
      source: ckpt(10),
      step: 10,
      border: 2,
      lr: 'bicubic-aa',
      lrSynthesis: { filter: 'bicubic-aa', blur: 0 },
      files: [{ file: files[0] }, { file: files[1] }, { file: files[2] }],
    });
  });

  it('prints one table; --no-save stores nothing; a compared model of another scale is refused', () => {
    const r = run(['eval', '--run', RUN, '--data', hrDir, '--limit', '1', '--no-save', '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^LR FILTER\s+MODEL PSNR-Y\s+SSIM-Y\s+BICUBIC PSNR-Y\s+SSIM-Y\s+GAIN$/);
    expect(lines[1]).toMatch(/^bicubic-aa\s+\d+\.\d\d\s+0\.\d{4}\s+\d+\.\d\d\s+0\.\d{4}\s+[+-]\d+\.\d\d$/);
    expect(r.stdout).toMatch(/×2, Y channel \(BT\.601\), 2 px border cropped, means over 1 image/);
    expect(r.stdout).toContain(`model: ${ckpt(20)} (step 20)`);
    const db = openDb(homePaths(home).db, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM evals').pluck().get()).toBe(5);
    db.close();

    const bad = run(['eval', '--run', RUN, '--data', hrDir, '--compare', otherX4, '--no-save', '--backend', 'cpu']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/srgan: SRGAN_ERR_CONFIG: --compare .*other-x4: upscales ×4, but the model being evaluated upscales ×2/);
  });

  it('--lr-filter all --compare a bicubic copy: one row per LR synthesis, the copy gains 0.00 dB under each; rows stored per synthesis', () => {
    const r = run(['eval', '--run', RUN, '--data', noisyDir, '--compare', bicubicX2, '--lr-filter', 'all', '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      results: { model: string; lr: string; psnr: number; gain: number }[];
      files: { file: string; compare: unknown[] }[];
      filters: {
        lr: string;
        lrSynthesis: { filter: string; blur: number };
        model: { psnr: number };
        bicubic: { psnr: number };
        gain: number;
        compare: { model: string; psnr: number; ssim: number; gain: number }[];
        files: unknown[];
      }[];
      saved: number;
    };
    expect(report.filters.map((f) => f.lr)).toEqual([...EVAL_LR_SYNTHESES]);
    expect(report.filters[4].lrSynthesis).toEqual({ filter: 'bicubic-aa', blur: 0.8 });
    for (const f of report.filters) {
      // The copy of bicubic is bicubic: no gain (float32 vs float64 rounding at exact halves aside).
      expect(Math.abs(f.compare[0].gain), f.lr).toBeLessThanOrEqual(0.01);
      expect(f.compare[0].model).toBe(bicubicX2);
      expect(f.files).toHaveLength(2);
    }
    // Other LR syntheses give other bicubic baselines.
    expect(new Set(report.filters.map((f) => f.bicubic.psnr.toFixed(6))).size).toBe(5);
    // Standard-protocol rows keep the plain labels; the others say their LR synthesis.
    expect(report.results.map((x) => x.model)).toEqual(
      EVAL_LR_SYNTHESES.flatMap((lr) => ['model', 'bicubic', bicubicX2].map((m) => (lr === 'bicubic-aa' ? m : `${m}@${lr}`))),
    );
    expect(report.saved).toBe(15);
    expect(report.files).toHaveLength(2);

    const db = openDb(homePaths(home).db, { readonly: true });
    const rows = db.prepare('SELECT * FROM evals WHERE run_id = ? AND data_dir = ? ORDER BY id').all(RUN, noisyDir) as EvalRow[];
    db.close();
    expect(rows.map((x) => x.model)).toEqual(report.results.map((x) => x.model));
    const area = rows.find((x) => x.model === 'model@area')!;
    const areaJson = JSON.parse(area.json!) as { lr: string; lrSynthesis: unknown; gain: number; files: unknown[] };
    expect([areaJson.lr, areaJson.lrSynthesis, areaJson.files.length]).toEqual(['area', { filter: 'area', blur: 0 }, 2]);
    expect(areaJson.gain).toBeCloseTo(report.filters[2].gain, 9);
    expect(JSON.parse(rows.find((x) => x.model === `${bicubicX2}@blur0.8+bicubic-aa`)!.json!)).toMatchObject({
      lr: 'blur0.8+bicubic-aa',
      lrSynthesis: { filter: 'bicubic-aa', blur: 0.8 },
    });
    expect(JSON.parse(rows[0].json!)).toMatchObject({ model: 'model', lr: 'bicubic-aa' });
  });

  it('the table: one row per --lr-filter (each once), compared models as #1, #2 columns', () => {
    const r = run([
      'eval',
      '--run',
      RUN,
      '--data',
      noisyDir,
      '--compare',
      bicubicX2,
      '--lr-filter',
      'area',
      '--lr-filter',
      'blur0.80+bicubic-aa',
      '--lr-filter',
      'area',
      '--no-save',
      '--backend',
      'cpu',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^LR FILTER\s+MODEL PSNR-Y\s+SSIM-Y\s+BICUBIC PSNR-Y\s+SSIM-Y\s+GAIN\s+#1 PSNR-Y\s+SSIM-Y\s+GAIN$/);
    const num = String.raw`\d+\.\d\d\s+0\.\d{4}`;
    expect(lines[1]).toMatch(new RegExp(`^area\\s+${num}\\s+${num}\\s+[+-]\\d+\\.\\d\\d\\s+${num}\\s+[+-]0\\.0[01]$`));
    expect(lines[2]).toMatch(new RegExp(`^blur0\\.8\\+bicubic-aa\\s+${num}\\s+${num}\\s+[+-]\\d+\\.\\d\\d\\s+${num}\\s+[+-]0\\.0[01]$`));
    expect(lines[3]).toMatch(/^×2, Y channel/);
    expect(r.stdout).toContain(`#1: ${bicubicX2}`);
  });

  it('a bad --lr-filter is SRGAN_ERR_CONFIG naming the value and the accepted forms, before any model is loaded', () => {
    for (const bad of ['bicubic', 'blur9+area', 'blur0.5+box-gamma', 'ALL']) {
      // --checkpoint names no model at all: reaching the model would be SRGAN_ERR_CHECKPOINT.
      const r = run([
        'eval',
        '--checkpoint',
        path.join(tmp.dir, 'no-such-model'),
        '--data',
        noisyDir,
        '--lr-filter',
        'area',
        '--lr-filter',
        bad,
      ]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `srgan: SRGAN_ERR_CONFIG: --lr-filter: expected one of bicubic-aa, bilinear-aa, area, lanczos3, box-gamma`,
      );
      expect(r.stderr).toContain(`got ${JSON.stringify(bad)}; or all, for bicubic-aa, bilinear-aa, area, lanczos3, blur0.8+bicubic-aa`);
      expect(r.stderr).toContain('blurSIGMA+FILTER');
    }
  });

  it('an undecodable image stops the command with SRGAN_ERR_DATA naming the file; nothing is stored or changed', async () => {
    const data = path.join(tmp.dir, 'hr-with-junk');
    await writeReferencePictures(data);
    fs.writeFileSync(path.join(data, 'b2-junk.png'), 'not a PNG: an evaluation is over a fixed set');
    const files = bytesIn(data);
    const db = openDb(homePaths(home).db, { readonly: true });
    const stored = db.prepare('SELECT * FROM evals ORDER BY id').all();
    db.close();
    const r = run(['eval', '--run', RUN, '--data', data, '--backend', 'cpu']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^srgan: SRGAN_ERR_DATA: cannot decode image ${path.join(data, 'b2-junk.png').replace(/[.+]/g, '\\$&')}: `, 'm'),
    );
    // No table for the images before it, no rows, the stored evaluations and the data as they were.
    expect(r.stdout).toBe('');
    const after = openDb(homePaths(home).db, { readonly: true });
    expect(after.prepare('SELECT * FROM evals ORDER BY id').all()).toEqual(stored);
    after.close();
    expect(bytesIn(data)).toEqual(files);
  });

  it('--best scores the checkpoint with the highest validation gain', () => {
    const r = run(['eval', '--run', 'gain-test', '--best', '--data', hrDir, '--limit', '1', '--no-save', '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { source: string; step: number };
    expect([report.source, report.step]).toEqual([gainCkpt(20), 20]);
  });

  it('--help', () => {
    const r = run(['eval', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--best\s+take the checkpoint with the highest validation gain over bicubic/);
    expect(r.stdout).toMatch(/^usage: srgan eval --data DIR/);
    for (const flag of [
      '--run RUN',
      '--checkpoint PATH',
      '--best',
      '--compare MODEL',
      '--lr-filter NAME',
      '--border N',
      '--limit N',
      '--json',
      '--no-save',
    ])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).toMatch(
      /--lr-filter NAME .*bicubic-aa, bilinear-aa, area, lanczos3, box-gamma, or blurSIGMA\+FILTER .* or all \(bicubic-aa, bilinear-aa, area, lanczos3, blur0\.8\+bicubic-aa\)/,
    );
  });
});
