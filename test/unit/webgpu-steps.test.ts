// What a real card needs of the training loop, counted on the webgpu rung (SwiftShader here, with
// SRGAN_WEBGPU_SOFTWARE=1): one device read per logEvery steps, each batch uploaded once, a flat live
// tensor count over 500 steps, and compiled pipelines reused after the first steps (docs/backends.md,
// "webgpu"). The loop is the trainer's: Gan.stepLazy, and UnreadSteps read every logEvery steps.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, SOFTWARE_ADAPTER_ENV, takeGpuErrors } from '../../src/models/backend/ladder.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { Gan } from '../../src/models/train/gan.js';
import { createEma } from '../../src/models/train/ema.js';
import { UnreadSteps } from '../../src/trainer/step-reads.js';
import { mulberry32 } from '../../src/util/prng.js';

let gpu = false;
let why = '';

beforeAll(async () => {
  process.env[SOFTWARE_ADAPTER_ENV] = '1';
  try {
    await selectBackend('webgpu');
    gpu = true;
  } catch (err) {
    if (process.env.SRGAN_REQUIRE_WEBGPU === '1') throw err;
    why = (err as Error).message;
  }
}, 60_000);

/** Counts what crosses between host and device: reads, and uploads with their bytes. */
function countTraffic(): { reads: number; uploads: number; uploadBytes: number; large: string[] } {
  const backend = tf.backend() as unknown as {
    read(dataId: object): Promise<unknown>;
    write(values: ArrayLike<number> | null | undefined, shape: number[], dtype: string): object;
  };
  const counts = { reads: 0, uploads: 0, uploadBytes: 0, large: [] as string[] };
  const read = backend.read.bind(backend);
  const write = backend.write.bind(backend);
  backend.read = (dataId) => {
    counts.reads++;
    return read(dataId);
  };
  backend.write = (values, shape, dtype) => {
    if (values != null) {
      counts.uploads++;
      counts.uploadBytes += values.length * 4;
      if (values.length > 64) counts.large.push(shape.join('×'));
    }
    return write(values, shape, dtype);
  };
  return counts;
}

describe('the training loop on webgpu', () => {
  it('reads once per logEvery steps, uploads each batch once, keeps its tensors flat and its pipelines compiled', async (ctx) => {
    if (!gpu) {
      console.log(`skipped: ${why}`);
      return ctx.skip();
    }
    const STEPS = Number(process.env.SRGAN_WEBGPU_STEPS ?? 30);
    const LOG_EVERY = 10;
    const cfg = resolveConfig({
      patchSize: 16,
      batchSize: 2,
      generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 },
      discriminator: { kind: 'patch', mid: 4 },
      maxShift: 2,
      advWeight: 1e-3,
      logEvery: LOG_EVERY,
    });
    const gan = new Gan(cfg, { ema: (G) => createEma(G.variables, 0.999) });
    const unread = new UnreadSteps();
    const r = mulberry32(3);
    const P = cfg.patchSize;
    const L = P / cfg.scale;
    const hrData = Float32Array.from({ length: 2 * P * P * 3 }, () => r());
    const lrData = Float32Array.from({ length: 2 * L * L * 3 }, () => r());
    const batchBytes = (hrData.length + lrData.length) * 4;
    const pipelines = () => Object.keys((tf.backend() as unknown as { pipelineCache: object }).pipelineCache).length;

    const traffic = countTraffic();
    const ms: number[] = [];
    const tensorsAt: number[] = [];
    let pipelinesAfterFirst = 0;
    let logged = 0;
    let blockStart = performance.now();
    for (let step = 1; step <= STEPS; step++) {
      // As the trainer's Batch: one tensor per HR and LR batch, made from host memory.
      const hr = tf.tensor4d(hrData, [2, P, P, 3]);
      const lr = tf.tensor4d(lrData, [2, L, L, 3]);
      unread.push(step, step % LOG_EVERY === 0, gan.stepLazy(hr, lr, { lrG: 1e-4, lrD: 1e-4, dSteps: 1, step }));
      tf.dispose([hr, lr]);
      if (step % LOG_EVERY === 0) {
        const read = await unread.read();
        expect(read.map((x) => x.step)).toEqual(Array.from({ length: LOG_EVERY }, (_, i) => step - LOG_EVERY + 1 + i));
        for (const x of read) expect(Number.isFinite(x.values.g_loss) && Number.isFinite(x.values.d_loss)).toBe(true);
        logged += read.length;
        ms.push(performance.now() - blockStart);
        blockStart = performance.now();
      }
      if (step === LOG_EVERY) pipelinesAfterFirst = pipelines(); // the first block: steps and a read
      if (step === 20 || step === STEPS) tensorsAt.push(tf.memory().numTensors);
    }
    const first = ms[0];
    expect(takeGpuErrors()).toEqual([]);
    expect(logged).toBe(STEPS);
    expect(traffic.reads, 'device reads').toBe(STEPS / LOG_EVERY);
    // Uploads of more than 64 values: the HR and LR batches, once each a step, and nothing else (upstream's
    // Mean gradient uploaded a tensor of ones the size of its input; gradients.ts replaces it). The rest
    // are scalars (learning rates, Adam's constants).
    expect(traffic.large, 'large uploads').toEqual(Array.from({ length: STEPS }, () => ['2×16×16×3', '2×8×8×3']).flat());
    expect(traffic.uploadBytes / STEPS - batchBytes, 'bytes uploaded a step beyond the batch').toBeLessThan(4096);
    expect(tensorsAt[1], `live tensors at step ${STEPS} vs step 20`).toBe(tensorsAt[0]);
    expect(pipelines(), `pipelines compiled after the first ${LOG_EVERY} steps`).toBe(pipelinesAfterFirst);
    const steady = [...ms.slice(1)].sort((a, b) => a - b)[Math.floor((ms.length - 1) / 2)];
    console.log(
      `webgpu, ${STEPS} steps: ${traffic.reads} reads, ${(traffic.uploadBytes / STEPS).toFixed(0)} B uploaded a step ` +
        `(batch ${batchBytes} B), ${tensorsAt.join(' → ')} live tensors, ${pipelinesAfterFirst} pipelines after step ${LOG_EVERY} and ${pipelines()} at the end; ` +
        `first ${LOG_EVERY} steps ${first.toFixed(0)} ms (compiling), then a median ${steady.toFixed(0)} ms per ${LOG_EVERY}`,
    );
    unread.dispose();
    gan.dispose();
  }, 600_000);

  it('a step that goes non-finite is put back on the device, without a read (docs/reliability.md)', async (ctx) => {
    if (!gpu) {
      console.log(`skipped: ${why}`);
      return ctx.skip();
    }
    const cfg = resolveConfig({
      patchSize: 16,
      batchSize: 2,
      generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true, depth: 0 },
      discriminator: { kind: 'dilated', mid: 4 },
      maxShift: 2,
      advWeight: 1e-3,
    });
    const make = () => new Gan(cfg, { ema: (G) => createEma(G.variables, 0.9) });
    const [a, b] = [make(), make()];
    const r = mulberry32(9);
    const hr = tf.tensor4d(
      Float32Array.from({ length: 2 * 16 * 16 * 3 }, () => r()),
      [2, 16, 16, 3],
    );
    const lr = tf.avgPool(hr, 2, 2, 'valid') as tf.Tensor4D;
    const bad = tf.tensor4d(Float32Array.from(await hr.data()).fill(NaN, 0, 7), [2, 16, 16, 3]);
    const spec = { lrG: 1e-3, lrD: 1e-3, dSteps: 1 };
    const unread = new UnreadSteps();
    unread.push(1, true, a.stepLazy(hr, lr, spec));
    unread.push(1, true, b.stepLazy(hr, lr, spec));
    await unread.read();
    const traffic = countTraffic();
    const pending = a.stepLazy(bad, lr, spec);
    expect(traffic.reads, 'reads in the step').toBe(0);
    unread.push(2, true, pending);
    const [v] = await unread.read();
    expect(v.values.step_skipped).toBe(1);
    const read = async (gan: Gan) => {
      const { tensors } = await gan.exportState();
      return Object.fromEntries(await Promise.all(Object.entries(tensors).map(async ([k, t]) => [k, Array.from(await t.data())] as const)));
    };
    expect(await read(a)).toEqual(await read(b));
    expect(takeGpuErrors()).toEqual([]);
    tf.dispose([hr, lr, bad]);
    a.dispose();
    b.dispose();
  }, 600_000);
});
