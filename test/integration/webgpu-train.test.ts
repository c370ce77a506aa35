// The daemon trains on the webgpu rung (Dawn + tfjs-backend-webgpu), here on SwiftShader's software
// Vulkan adapter (SRGAN_WEBGPU_SOFTWARE=1, docs/backends.md "webgpu"): espcn-x2-fast, shrunk to small
// patches, gives the wasm rung's losses step for step within a stated tolerance, and a checkpoint
// written on one rung resumes on the other. `.ci/run` sets SRGAN_REQUIRE_WEBGPU=1: there it must run.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { writePhotos } from '../support/photos.js';
import { hasExited } from '../../src/util/lock-file.js';
import { DAEMON_SERIES_KEYS } from '../../src/daemon/trainer-output.js';
import { selectBackend } from '../../src/models/backend/ladder.js';
import { loadNativeKernels } from '../../src/models/backend/native/kernels.js';

const REQUIRE = process.env.SRGAN_REQUIRE_WEBGPU === '1';
// Relative difference allowed between a webgpu and a CPU-rung value of the same step: both are float32,
// summing in other orders (the test prints the worst). Validation PSNRs are measured on 8-bit output,
// where a pixel that rounds the other way moves them by ~1e-3 dB: for them, VAL_DB dB.
const TOLERANCE = 5e-4; // measured: 5.1e-5
const VAL_DB = 0.01;
const tmp = tempDir('srgan-webgpu-');
const photos = path.join(tmp.dir, 'photos');
const pids: number[] = [];
let adapter: string | null = null;
const cpuRung = loadNativeKernels().ok ? 'wasm-native' : 'wasm';

beforeAll(async () => {
  process.env.SRGAN_WEBGPU_SOFTWARE = '1'; // the daemons inherit it
  try {
    adapter = (await selectBackend('webgpu')).reason;
  } catch (err) {
    if (REQUIRE) throw err;
    console.log(`webgpu daemon test skipped: ${(err as Error).message}`);
  }
  await writePhotos(photos, 6, 96, 80);
}, 60_000);

afterEach(() => {
  for (const pid of pids.splice(0)) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
});
afterAll(() => {
  delete process.env.SRGAN_WEBGPU_SOFTWARE;
  tmp.cleanup();
});

function config(backend: string): string {
  const file = path.join(tmp.dir, `${backend}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      preset: 'espcn-x2-fast',
      backend,
      dataDir: photos,
      patchSize: 32,
      batchSize: 4,
      loaderWorkers: 1,
      patchesPerImage: 2,
      previewEvery: 0,
      checkpointEvery: 3,
      checkpointMinutes: 0,
      valEvery: 6,
      valImages: 1,
      seed: 11,
    }),
  );
  return file;
}

async function run(home: string, args: string[]): Promise<string> {
  const info = srganJson<{ pid: number; runId: string }>(home, ['start', ...args]);
  pids.push(info.pid);
  await waitFor(`daemon ${info.pid} to exit`, () => hasExited(info.pid), 240_000, 200);
  return info.runId;
}

function rows(home: string, runId: string): { key: string; step: number; value: number }[] {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return (
      db.prepare('SELECT key, step, value FROM metrics WHERE run_id = ? ORDER BY key, step').all(runId) as {
        key: string;
        step: number;
        value: number;
      }[]
    ).filter((r) => !(DAEMON_SERIES_KEYS as readonly string[]).includes(r.key));
  } finally {
    db.close();
  }
}

function runRow(home: string, runId: string): { status: string; backend: string; backend_reason: string; last_step: number } {
  const db = new Database(path.join(home, 'runs.db'), { readonly: true });
  try {
    return db.prepare('SELECT status, backend, backend_reason, last_step FROM runs WHERE id = ?').get(runId) as never;
  } finally {
    db.close();
  }
}

/** The same (key, step) rows, values within TOLERANCE of each other (relative, floor 1e-6; val_* within VAL_DB); the worst relative one, for the log. */
function expectClose(label: string, got: ReturnType<typeof rows>, want: ReturnType<typeof rows>): number {
  expect(got.map((r) => `${r.key}@${r.step}`)).toEqual(want.map((r) => `${r.key}@${r.step}`));
  let worst = 0;
  got.forEach((r, i) => {
    const w = want[i].value;
    if (r.key.startsWith('val_')) {
      expect(Math.abs(r.value - w), `${label}: ${r.key} at step ${r.step}: ${r.value} vs ${w} dB`).toBeLessThanOrEqual(VAL_DB);
      return;
    }
    const rel = Math.abs(r.value - w) / Math.max(Math.abs(w), 1e-6);
    worst = Math.max(worst, rel);
    expect(rel, `${label}: ${r.key} at step ${r.step}: ${r.value} vs ${w}`).toBeLessThanOrEqual(TOLERANCE);
  });
  console.log(`${label}: worst relative difference ${worst.toExponential(2)} over ${got.length} values`);
  return worst;
}

describe('training on the webgpu rung', () => {
  it('espcn-x2-fast trains on webgpu with the losses of the CPU rung, and checkpoints cross between the two', async (ctx) => {
    if (adapter === null) return ctx.skip();
    const gpu = config('webgpu');
    const cpu = config(cpuRung);
    const refGpu = path.join(tmp.dir, 'ref-gpu');
    const refCpu = path.join(tmp.dir, 'ref-cpu');
    const gpuRun = await run(refGpu, ['--config', gpu, '--max-steps', '6']);
    const cpuRun = await run(refCpu, ['--config', cpu, '--max-steps', '6']);
    expect(runRow(refGpu, gpuRun)).toMatchObject({ status: 'stopped', backend: 'webgpu', last_step: 6 });
    expect(runRow(refGpu, gpuRun).backend_reason).toMatch(/webgpu on Dawn, .*software adapter/);
    const want = rows(refCpu, cpuRun);
    expect(new Set(want.filter((r) => r.key === 'g_loss').map((r) => r.step)).size).toBe(6);
    expect(want.some((r) => r.key === 'val_gain')).toBe(true);
    expectClose('webgpu vs cpu', rows(refGpu, gpuRun), want);

    // Trained to step 3 on one rung, resumed to 6 on the other.
    for (const [first, second, ref, refRun] of [
      ['webgpu', cpuRung, refCpu, cpuRun],
      [cpuRung, 'webgpu', refGpu, gpuRun],
    ] as const) {
      const home = path.join(tmp.dir, `${first}-then-${second}`);
      const runId = await run(home, ['--config', first === 'webgpu' ? gpu : cpu, '--max-steps', '3']);
      await run(home, ['--resume', runId, '--backend', second, '--max-steps', '6']);
      expect(runRow(home, runId)).toMatchObject({ status: 'stopped', backend: second, last_step: 6 });
      expectClose(`${first} to step 3, then ${second}`, rows(home, runId), rows(ref, refRun));
    }
  }, 600_000);
});
