// The trainer actor's thread: owns tfjs, the models and the optimizers, reads patch frames from the
// shared ring, and runs the scheduler's plan: one G step, then k D steps on the detached G output
// (SEED_SPEC §6.1). Only control messages, metrics and previews cross postMessage.

import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { SharedRing } from '../protocol/ring.js';
import { decodeFrame } from '../protocol/codec.js';
import type { DaemonState, FromTrainer, MetricsPoint, ToTrainer } from '../protocol/messages.js';
import { Scheduler, type StepPlan } from './scheduler.js';
import type { RunConfig } from '../models/presets.js';
import { selectBackend } from '../models/ladder.js';
import { createEspcn } from '../models/espcn.js';
import { createPatchDiscriminator } from '../models/discriminator.js';
import { discriminatorLoss, generatorAdvLoss, mse, shiftCrop } from '../models/losses.js';
import { deriveSeed, mulberry32 } from '../data/prng.js';
import { hstack, upscaleBicubic, upscaleNearest, type RgbImage } from '../data/patches.js';

export interface TrainerWorkerData {
  ring: SharedArrayBuffer;
  config: RunConfig;
  /** A fixed HR/LR pair (larger than a training patch) for the preview strip. */
  preview: { hr: RgbImage; lr: RgbImage } | null;
}

const port = parentPort;
if (!port) throw new Error('trainer-worker must run in a worker thread');
const { ring: ringSab, config, preview } = workerData as TrainerWorkerData;
const post = (m: FromTrainer, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

const ring = SharedRing.attach(ringSab);
let wake: (() => void) | null = null;
const sleepUntilWoken = () => new Promise<void>((resolve) => (wake = resolve));

async function main(): Promise<void> {
  const backend = await selectBackend(config.backend);
  const G = createEspcn({ channels: config.generator.channels, scale: config.scale, seed: deriveSeed(config.seed, 1) });
  const D = createPatchDiscriminator({ mid: config.discriminator.mid, seed: deriveSeed(config.seed, 2) });
  const gVars: tf.Variable[] = Object.values(G.variables);
  const dVars: tf.Variable[] = Object.values(D.variables);
  const scheduler = new Scheduler({
    dStepsPerG: config.dStepsPerG,
    phases: config.phases,
    logEvery: config.logEvery,
    previewEvery: config.previewEvery,
    maxSteps: config.maxSteps,
  });
  const first = scheduler.phaseAt(1).phase;
  const optG = tf.train.adam(first.lrG, 0.9, 0.999, 1e-8);
  const optD = tf.train.adam(first.lrD, 0.9, 0.999, 1e-8);
  const shiftRand = mulberry32(deriveSeed(config.seed, 3));

  port!.on('message', (m: ToTrainer) => {
    if (m.type === 'pause') scheduler.requestPause();
    else if (m.type === 'resume') scheduler.requestResume();
    else if (m.type === 'stop') scheduler.requestStop();
    wake?.();
  });
  post({ type: 'ready', backend: backend.name, backendReason: backend.reason, params: { generator: G.paramCount, discriminator: D.paramCount } });

  const B = config.batchSize;
  const P = config.patchSize;
  const L = P / config.scale;
  const hrBuf = new Float32Array(B * P * P * 3);
  const lrBuf = new Float32Array(B * L * L * 3);
  let filled = 0; // frames of the current batch already copied in (kept across a pause)

  let state: DaemonState = 'starting';
  const setState = (s: DaemonState) => {
    if (s !== state) post({ type: 'state', state: (state = s), step: scheduler.step });
  };
  const pending: MetricsPoint[] = [];
  let lastFlush = performance.now();
  const statsWindow = { start: performance.now(), waitMs: 0, steps: 0, patches: 0 };

  // Copies frames into the batch until it is full. Returns false if training should not step now.
  const fillBatch = async (): Promise<boolean> => {
    while (filled < B) {
      if (scheduler.mode !== 'run') return false;
      const t0 = performance.now();
      let bytes: Uint8Array | null;
      try {
        bytes = await ring.readAsync(250);
      } catch (err) {
        if ((err as { code?: string }).code === 'SRGAN_ERR_RING_CLOSED') return false; // shutting down
        throw err;
      } finally {
        statsWindow.waitMs += performance.now() - t0;
      }
      if (bytes === null) {
        if (ring.closed) return false;
        continue;
      }
      try {
        const frame = decodeFrame(bytes);
        if (frame.hr.width !== P || frame.hr.height !== P || frame.lr.width !== L || frame.lr.height !== L) {
          throw new Error(`patch ${frame.hr.width}×${frame.hr.height} / ${frame.lr.width}×${frame.lr.height}, expected ${P} / ${L}`);
        }
        toFloat(frame.hr.data, hrBuf, filled * P * P * 3);
        toFloat(frame.lr.data, lrBuf, filled * L * L * 3);
        filled++;
      } catch (err) {
        post({ type: 'error', code: 'SRGAN_ERR_BAD_FRAME', message: `skipped a bad frame: ${(err as Error).message}` });
      } finally {
        ring.release();
      }
    }
    return true;
  };

  const trainStep = (plan: StepPlan): Record<string, number> => {
    (optG as unknown as { learningRate: number }).learningRate = plan.lrG;
    (optD as unknown as { learningRate: number }).learningRate = plan.lrD;
    return tf.tidy(() => {
      const hr = tf.tensor4d(hrBuf, [B, P, P, 3]);
      const lr = tf.tensor4d(lrBuf, [B, L, L, 3]);
      let y!: tf.Tensor4D;
      let pix!: tf.Scalar;
      let adv!: tf.Scalar;
      const { value, grads } = tf.variableGrads(() => {
        y = tf.keep(G.apply(lr));
        pix = tf.keep(mse(y, hr));
        const [cy, cl] = shiftCrop([y, hr], config.maxShift, shiftRand) as [tf.Tensor4D, tf.Tensor4D];
        adv = tf.keep(tf.mul(generatorAdvLoss(D.apply(cy, { training: true }), D.apply(cl, { training: true })), config.advWeight));
        return tf.add(pix, adv) as tf.Scalar;
      }, gVars);
      if (plan.lrG > 0) optG.applyGradients(grads as tf.NamedTensorMap as never);
      D.commitStats(); // BatchNorm running stats move in the G step too (SEED_SPEC §6.1)
      // y's graph belongs to the finished G tape: in the D steps below it is a constant (detached).
      const yFixed = y;
      let dSum = tf.scalar(0);
      for (let k = 0; k < plan.dSteps; k++) {
        const cost = optD.minimize(() => {
          const [cy, cl] = shiftCrop([yFixed, hr], config.maxShift, shiftRand) as [tf.Tensor4D, tf.Tensor4D];
          return discriminatorLoss(D.apply(cy, { training: true }), D.apply(cl, { training: true })) as tf.Scalar;
        }, true, dVars);
        D.commitStats();
        if (cost) dSum = tf.add(dSum, cost);
      }
      const pixV = pix.dataSync()[0] as number;
      const out: Record<string, number> = {
        g_loss: value.dataSync()[0] as number,
        g_pix: pixV,
        g_adv: adv.dataSync()[0] as number,
        psnr_train: 10 * Math.log10(1 / Math.max(pixV, 1e-12)),
        lr_g: plan.lrG,
        lr_d: plan.lrD,
      };
      if (plan.dSteps > 0) out.d_loss = (dSum.dataSync()[0] as number) / plan.dSteps;
      tf.dispose([y, pix, adv]); // kept past variableGrads' scope above
      return out;
    });
  };

  const makePreview = (step: number) => {
    if (!preview) return;
    const out = tf.tidy(() => {
      const lr = tf.tensor4d(Float32Array.from(preview.lr.data, (v) => v / 255), [1, preview.lr.height, preview.lr.width, 3]);
      return tf.round(tf.mul(tf.clipByValue(G.apply(lr), 0, 1), 255)).dataSync();
    });
    const model: RgbImage = { width: preview.hr.width, height: preview.hr.height, data: Uint8Array.from(out) };
    const strip = hstack([upscaleNearest(preview.lr, config.scale), upscaleBicubic(preview.lr, config.scale), model, preview.hr], 4, 32);
    post({ type: 'preview', step, width: strip.width, height: strip.height, rgb: strip.data }, [strip.data.buffer as ArrayBuffer]);
  };

  for (;;) {
    const boundary = scheduler.atBoundary();
    if (boundary === 'stop') break;
    if (boundary === 'paused') {
      // Everything up to the paused step is reported before the pause is: readers see a still curve.
      if (pending.length) post({ type: 'metrics', points: pending.splice(0) });
      setState('paused');
      await sleepUntilWoken();
      continue;
    }
    if (!(await fillBatch())) {
      if (ring.closed && filled < B) break;
      continue;
    }
    setState('training');
    const plan = scheduler.plan();
    const values = trainStep(plan);
    filled = 0;
    scheduler.complete(plan);
    statsWindow.steps++;
    statsWindow.patches += B;
    if (plan.log) pending.push({ step: plan.step, wallTime: Date.now(), values });
    if (plan.preview) makePreview(plan.step);
    const now = performance.now();
    if (now - lastFlush >= 250 || plan.preview) {
      post({ type: 'metrics', points: pending.splice(0) });
      lastFlush = now;
    }
    const elapsed = now - statsWindow.start;
    if (elapsed >= 1000) {
      post({
        type: 'stats',
        step: scheduler.step,
        dSteps: scheduler.dSteps,
        stepsPerSec: (statsWindow.steps * 1000) / elapsed,
        patchesPerSec: (statsWindow.patches * 1000) / elapsed,
        dataWaitFraction: Math.min(1, statsWindow.waitMs / elapsed),
        ringFrames: ring.framesAvailable(),
        tensors: tf.memory().numTensors,
      });
      Object.assign(statsWindow, { start: now, waitMs: 0, steps: 0, patches: 0 });
    }
    // Let control messages in between steps: a wasm step is synchronous.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (pending.length) post({ type: 'metrics', points: pending.splice(0) });
  setState('stopped');
  post({ type: 'stopped', step: scheduler.step });
}

function toFloat(src: Uint8Array, dst: Float32Array, offset: number): void {
  for (let i = 0; i < src.length; i++) dst[offset + i] = (src[i] as number) / 255;
}

main().catch((err: unknown) => {
  const e = err as Error & { code?: string };
  post({ type: 'error', code: e.code ?? 'SRGAN_ERR_TRAINER', message: e.message ?? String(err), stack: e.stack });
  process.exitCode = 1;
  port.close();
});
