// `srgan upscale` and `srgan eval` on checkpoints the trainer really wrote: a tiny run trained for a few
// steps by the real daemon (`srgan start --max-steps`), then used through the CLI. Its outputs are checked
// against the checkpoint's generator/ loaded here with plain tf.loadLayersModel (the browser path, none of
// our loading code), and the eval's bicubic row against the independent reference
// (test/fixtures/eval_reference.py).

import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openDb, type EvalRow } from '../../src/store/db.js';
import { homePaths } from '../../src/store/home.js';
import { hasExited } from '../../src/util/lock-file.js';
import { fileModelIO } from '../../src/models/io/layers-io.js';
import { selectBackend } from '../../src/models/backend/ladder.js';
import { PSNR_TOL, referenceRows, SSIM_TOL, writeReferencePictures } from '../support/eval-reference.js';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const tmp = tempDir('srgan-use-trained-');
const home = path.join(tmp.dir, 'home');
const photos = path.join(tmp.dir, 'photos');
const hrDir = path.join(tmp.dir, 'hr');
let runId = '';
let pid = 0;

// Small enough that a step takes milliseconds on wasm: 8 steps, a checkpoint and a validation every 4.
const TINY = {
  backend: 'wasm',
  dataDir: photos,
  patchSize: 32,
  batchSize: 2,
  generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
  discriminator: { kind: 'patch', mid: 4 },
  loaderWorkers: 1,
  previewEvery: 0,
  checkpointEvery: 4,
  checkpointMinutes: 0,
  valEvery: 4,
  valImages: 2,
  seed: 5,
};

/** The state.json of each checkpoint of the run, by step. */
function states(): Map<number, { runId: string; step: number; valGain?: number | null; config: { generator: unknown } }> {
  const parent = path.join(home, 'checkpoints', runId);
  return new Map(
    fs
      .readdirSync(parent)
      .filter((d) => /^step-\d{8}$/.test(d))
      .map((d) => {
        const state = JSON.parse(fs.readFileSync(path.join(parent, d, 'state.json'), 'utf8'));
        return [state.step as number, state];
      }),
  );
}

const ckpt = (step: number): string => path.join(home, 'checkpoints', runId, `step-${String(step).padStart(8, '0')}`);

beforeAll(async () => {
  fs.mkdirSync(photos, { recursive: true });
  for (let i = 0; i < 6; i++) {
    const w = 80 + i * 4;
    const data = Buffer.alloc(w * 72 * 3);
    for (let p = 0; p < data.length; p++) data[p] = (Math.sin(p * 0.01 * (i + 1)) * 120 + 128 + ((p / 240) | 0) * (i % 3)) & 255;
    await sharp(data, { raw: { width: w, height: 72, channels: 3 } })
      .png()
      .toFile(path.join(photos, `p${i}.png`));
  }
  await writeReferencePictures(hrDir);
  const config = path.join(tmp.dir, 'tiny.json');
  fs.writeFileSync(config, JSON.stringify(TINY));
  const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', config, '--max-steps', '8']);
  runId = info.runId;
  pid = info.pid;
  await waitFor('the run to finish', () => hasExited(pid), 180_000, 100);
  // The in-process reference runs on cpu, as the CLI does below (bit-reproducible).
  await selectBackend('cpu');
}, 240_000);

afterAll(() => {
  if (pid > 0 && !hasExited(pid)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

/** The checkpoint's generator/ through tfjs-layers alone, on an image file read as 8-bit RGB: 8-bit output. */
async function viaLayers(step: number, file: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const model = await tfl.loadLayersModel(fileModelIO(path.join(ckpt(step), 'generator')));
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = tf.tidy(() => {
    const x = tf.div(tf.tensor4d(new Uint8Array(data), [1, info.height, info.width, 3], 'float32'), 255);
    return tf.round(tf.mul(tf.clipByValue(model.predict(x) as tf.Tensor, 0, 1), 255));
  });
  const bytes = Uint8Array.from(out.dataSync());
  const [, height, width] = out.shape as number[];
  out.dispose();
  model.dispose();
  return { width: width, height: height, data: bytes };
}

describe('a checkpoint the trainer wrote', () => {
  it('the run wrote verified checkpoints at steps 4 and 8, validated, each with its generator', () => {
    const s = states();
    expect([...s.keys()].sort((a, b) => a - b)).toEqual([4, 8]);
    for (const [step, state] of s) {
      expect(state.runId).toBe(runId);
      expect(state.config.generator).toMatchObject(TINY.generator);
      expect(typeof state.valGain, `step ${step}`).toBe('number');
      expect(fs.existsSync(path.join(ckpt(step), 'generator', 'model.json'))).toBe(true);
    }
  });

  it('srgan upscale takes the newest run and its latest checkpoint, and writes what its generator computes', async () => {
    const input = path.join(hrDir, 'a.png');
    const out = path.join(tmp.dir, 'up');
    const r = srgan(home, ['upscale', input, '--out', out, '--backend', 'cpu', '--json'], 120_000);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      source: string;
      run: { id: string };
      step: number;
      scale: number;
      files: { out: string; outWidth: number; outHeight: number }[];
    };
    expect([report.source, report.run.id, report.step, report.scale]).toEqual([ckpt(8), runId, 8, 2]);
    expect(report.files).toMatchObject([{ out: path.join(out, 'a.png'), outWidth: 102, outHeight: 74 }]);
    const got = await sharp(path.join(out, 'a.png')).raw().toBuffer({ resolveWithObject: true });
    const want = await viaLayers(8, input);
    expect([got.info.width, got.info.height, got.info.channels]).toEqual([want.width, want.height, 3]);
    // Tiled (overlap ≥ the receptive radius) against one untiled pass: at most a rounding tie apart.
    let worst = 0;
    got.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want.data[i]))));
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('srgan eval --best scores the checkpoint with the highest validation gain; the bicubic row is the reference; rows stored on the run', async () => {
    const s = states();
    const best = [...s.values()].reduce((a, b) => ((b.valGain ?? -Infinity) >= (a.valGain ?? -Infinity) ? b : a)).step;
    const gen = path.join(ckpt(best), 'generator');
    // The same weights, compared through tf.loadLayersModel (how --compare loads models), score the same.
    const r = srgan(home, ['eval', '--run', runId, '--best', '--data', hrDir, '--compare', gen, '--backend', 'cpu', '--json'], 120_000);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      source: string;
      step: number;
      results: { model: string; psnr: number; ssim: number }[];
      saved: number;
    };
    expect([report.source, report.step]).toEqual([ckpt(best), best]);
    expect(report.results.map((x) => x.model)).toEqual(['model', 'bicubic', gen]);
    const want = referenceRows(2);
    const mean = (f: (w: (typeof want)[number]) => number): number => want.reduce((a, w) => a + f(w), 0) / want.length;
    expect(Math.abs(report.results[1].psnr - mean((w) => w.bicubic.psnr))).toBeLessThanOrEqual(PSNR_TOL);
    expect(Math.abs(report.results[1].ssim - mean((w) => w.bicubic.ssim))).toBeLessThanOrEqual(SSIM_TOL);
    expect(Number.isFinite(report.results[0].psnr)).toBe(true);
    expect(report.results[2].psnr).toBeCloseTo(report.results[0].psnr, 3);
    expect(report.results[2].ssim).toBeCloseTo(report.results[0].ssim, 4);

    const db = openDb(homePaths(home).db, { readonly: true });
    const rows = db.prepare('SELECT * FROM evals WHERE run_id = ? ORDER BY id').all(runId) as EvalRow[];
    db.close();
    expect(rows.map((x) => [x.model, x.images, (JSON.parse(x.json!) as { step: number }).step])).toEqual([
      ['model', 3, best],
      ['bicubic', 3, best],
      [gen, 3, best],
    ]);
    expect(report.saved).toBe(3);
  });
});
