// The seed's final recipe end to end through the real daemon, shrunk to run in seconds: final
// generator and dilated D, JPEG-degraded inputs, the bundled perceptual network at full and half
// resolution, lr phases scaled by batch/8 with optimizer resets, 10 D steps, a self-ending run.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { hasExited } from '../../src/util/lock-file.js';

describe('seed-final-x2, shrunk', () => {
  const tmp = tempDir('srgan-preset-');
  const home = path.join(tmp.dir, 'home');
  afterAll(() => tmp.cleanup());

  it("runs the article's step with every term, follows the phases, and stops itself at maxSteps", async () => {
    const data = path.join(tmp.dir, 'photos');
    fs.mkdirSync(data);
    for (let i = 0; i < 3; i++) {
      const w = 160;
      const px = Buffer.alloc(w * w * 3);
      for (let p = 0; p < px.length; p++) px[p] = (p * (i + 5) + ((p / 480) | 0) * 13) & 255;
      await sharp(px, { raw: { width: w, height: w, channels: 3 } })
        .png()
        .toFile(path.join(data, `p${i}.png`));
    }
    const config = path.join(tmp.dir, 'run.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        preset: 'seed-final-x2',
        generator: { blocks: 1, channels: 8 },
        discriminator: { mid: 4 },
        patchSize: 64,
        batchSize: 2,
        phases: [
          { steps: 3, lrG: 1e-4, lrD: 1e-4 },
          { steps: null, lrG: 3e-5, lrD: 1e-5 },
        ],
        maxSteps: 6,
        previewEvery: 3,
      }),
    );
    const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', config, '--data', data]);
    await waitFor('the run to end by itself', () => hasExited(info.pid), 240_000, 500);
    const run = srganJson<{ runs: { status: string; last_step: number; config: Record<string, unknown> }[] }>(home, ['runs']).runs[0];
    expect(run).toMatchObject({ status: 'stopped', last_step: 6 });
    expect(run.config).toMatchObject({ preset: 'seed-final-x2', jpeg: true, dStepsPerG: 10, lrReferenceBatch: 8 });

    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    const at = (key: string) =>
      db.prepare('SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step').all(info.runId, key) as {
        step: number;
        value: number;
      }[];
    for (const key of ['g_pix', 'g_perc', 'g_perc_half', 'g_adv', 'd_loss']) {
      const rows = at(key);
      expect(
        rows.map((r) => r.step),
        key,
      ).toEqual([1, 2, 3, 4, 5, 6]);
      expect(
        rows.every((r) => Number.isFinite(r.value) && r.value >= 0),
        key,
      ).toBe(true);
    }
    expect(at('d_steps').map((r) => r.value)).toEqual([10, 10, 10, 10, 10, 10]);
    // lr × batch/8: 1e-4 × 2/8, then the second phase.
    expect(at('lr_g').map((r) => r.value)).toEqual([2.5e-5, 2.5e-5, 2.5e-5, 7.5e-6, 7.5e-6, 7.5e-6]);
    expect(at('lr_d').map((r) => r.value)[3]).toBeCloseTo(2.5e-6, 12);
    expect(db.prepare('SELECT count(*) FROM previews WHERE run_id = ?').pluck().get(info.runId)).toBeGreaterThan(0);
    db.close();
    expect(srgan(home, ['status']).stdout).toMatch(/^stopped/);
  }, 300_000);
});
