// The trainer actor's thread: owns tfjs, the models and the optimizers, reads patch frames from the
// shared ring, and runs the scheduler's plan: one G step, then k D steps on the detached G output
// (docs/seed.md §6.1). Only control messages, metrics and previews cross postMessage.

import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { SharedRing } from '../protocol/ring.js';
import { decodeRingFrame, type PatchFrame } from '../protocol/codec.js';
import { Sequencer } from './sequencer.js';
import type { CheckpointWritten, DaemonState, FromTrainer, MetricsPoint, ToTrainer } from '../protocol/messages.js';
import type { TrainerWorkerData } from '../protocol/trainer-init.js';
import { Scheduler, type SchedulerConfig, type StepPlan } from '../models/train/scheduler.js';
import type { RunConfig } from '../config/presets.js';
import { selectBackend } from '../models/backend/ladder.js';
import { Gan, type FeatureLoss } from '../models/train/gan.js';
import { createEma } from '../models/train/ema.js';
import { deriveSeed, mulberry32, type Rng } from '../util/prng.js';
import { writeCheckpoint } from '../models/train/checkpoint.js';
import { readCheckpoint } from '../models/train/checkpoint-tensors.js';
import { saveGeneratorLayersModel } from '../models/io/export-layers.js';
import { downscale, drawJpegQuality, drawLrSynthesis, jpegDegrade } from '../data/image/degrade.js';
import { crop, loadRgb, previewStrip, upscaleBicubic } from '../data/image/patches.js';
import type { RgbImage } from '../data/image/rgb-image.js';
import { psnrY } from '../data/image/quality.js';

const port = parentPort;
if (!port) throw new Error('trainer/worker.js must run in a worker thread');
const { ring: ringSab, config, preview, runId, checkpointDir, resume, data, valFiles } = workerData as TrainerWorkerData;
/** Validation crops: the centre of each held-out image, at most this many HR pixels on a side. */
const VAL_SIDE = 256;
const post = (m: FromTrainer, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

const ring = SharedRing.attach(ringSab);
/** How long the trainer waits for a missing patch while later ones are waiting (see Sequencer). */
const STALL_MS = 20_000;
let wake: (() => void) | null = null;
const sleepUntilWoken = () => new Promise<void>((resolve) => (wake = resolve));

async function main(): Promise<void> {
  const backend = await selectBackend(config.backend);
  const perceptualRand = mulberry32(deriveSeed(config.seed, 5));
  const perceptual = await createFeatureLoss(config, perceptualRand);
  const gan = new Gan(config, {
    perceptual,
    replay: [perceptualRand],
    ema: (G) => (config.emaDecay === null ? null : createEma(G.variables, config.emaDecay)),
  });
  let scheduler = new Scheduler(schedulerConfig(config));
  const jpegRand = mulberry32(deriveSeed(config.seed, 4));
  let startSeq = 0; // the seq of the first patch to train on: a resumed run takes its checkpoint's
  let lastCheckpointStep = -1;
  let bestGain: number | null = null; // the best validation gain so far: a 'best' checkpoint is written on a new one
  // The validation of the step the trainer stands at, if it validated there: a checkpoint written at
  // that step later (`srgan checkpoint` while paused, a stop) replaces the one written with it, and must
  // keep its scores, or retention and --best would no longer see it as the best.
  let valHere: { step: number; val: Record<string, number> } | null = null;
  if (resume) {
    // Everything training changes comes back from the checkpoint; what the config fixes is rebuilt.
    const ckpt = readCheckpoint(resume);
    try {
      gan.importState(ckpt.tensors, ckpt.state.gan);
    } finally {
      tf.dispose(Object.values(ckpt.tensors));
    }
    scheduler = Scheduler.restore(schedulerConfig(config), ckpt.state.scheduler);
    jpegRand.state = ckpt.state.rng.jpeg;
    if (ckpt.state.rng.perceptual !== null) perceptualRand.state = ckpt.state.rng.perceptual;
    startSeq = ckpt.state.data.seq;
    lastCheckpointStep = ckpt.state.step;
    bestGain = ckpt.state.bestValGain ?? ckpt.state.valGain ?? null;
    const { valPsnr, valGain } = ckpt.state;
    if (typeof valPsnr === 'number' && typeof valGain === 'number')
      valHere = { step: ckpt.state.step, val: { val_psnr: valPsnr, val_gain: valGain } };
  }

  let checkpointRequested: 'manual' | 'error' | null = null;
  port!.on('message', (m: ToTrainer) => {
    if (m.type === 'pause') scheduler.requestPause();
    else if (m.type === 'resume') scheduler.requestResume();
    else if (m.type === 'stop') scheduler.requestStop();
    else if (m.type === 'checkpoint') checkpointRequested = m.kind;
    wake?.();
  });
  post({
    type: 'ready',
    backend: backend.name,
    backendReason: backend.reason,
    params: { generator: gan.G.paramCount, discriminator: gan.D.paramCount },
  });

  const B = config.batchSize;
  const P = config.patchSize;
  const L = P / config.scale;
  const hrBuf = new Float32Array(B * P * P * 3);
  const lrBuf = new Float32Array(B * L * L * 3);
  // With JPEG degradation the LR patches stay 8-bit until the batch is complete (one quality per batch).
  const lrBytes = config.jpeg ? new Uint8Array(B * L * L * 3) : null;
  let filled = 0; // frames of the current batch already copied in (kept across a pause)

  let state: DaemonState = 'starting';
  const setState = (s: DaemonState) => {
    if (s !== state) post({ type: 'state', state: (state = s), step: scheduler.step });
  };
  const pending: MetricsPoint[] = [];
  let lastFlush = performance.now();
  const statsWindow = { start: performance.now(), waitMs: 0, steps: 0, patches: 0 };

  // Patches are taken in sequence order whatever order the loader threads finish in (see sequencer.ts).
  const sequencer = new Sequencer(startSeq);

  // Validation (docs/config.md): PSNR-Y (border = scale, BasicSR's convention) of the EMA generator on
  // the held-out centre crops, with the bicubic enlargement of the same LR as the baseline, under the
  // standard protocol (MATLAB-style bicubic LR) and under one draw per image of the training mix.
  // Loaded once; a file that fails is left out.
  const valStd: ValPair[] = [];
  const valMix: ValPair[] = [];
  const mixRand = mulberry32(deriveSeed(config.seed, 12));
  const valPair = (hr: RgbImage, lr: RgbImage): ValPair => ({ hr, lr, bicubic: psnrY(upscaleBicubic(lr, config.scale), hr, config.scale) });
  for (const file of config.valEvery > 0 ? valFiles : []) {
    try {
      const img = await loadRgb(file);
      const w = Math.min(VAL_SIDE, img.width) - (Math.min(VAL_SIDE, img.width) % (config.scale * 8));
      const h = Math.min(VAL_SIDE, img.height) - (Math.min(VAL_SIDE, img.height) % (config.scale * 8));
      if (w < 32 || h < 32) continue;
      const hr = crop(img, (img.width - w) >> 1, (img.height - h) >> 1, w, h);
      const how = drawLrSynthesis(config.lrFilter, config.lrBlur, mixRand);
      valStd.push(valPair(hr, downscale(hr, config.scale, 'bicubic-aa')));
      valMix.push(valPair(hr, downscale(hr, config.scale, how.filter, how.blur)));
    } catch (err) {
      post({ type: 'warning', code: 'SRGAN_ERR_DATA', message: `validation image left out: ${(err as Error).message}` });
    }
  }
  /** The generator's output (EMA weights) for an 8-bit LR image, as an 8-bit image. */
  const generateRgb = (lr: RgbImage): RgbImage => {
    const out = tf.tidy(() => {
      const x = tf.tensor4d(
        Float32Array.from(lr.data, (v) => v / 255),
        [1, lr.height, lr.width, 3],
      );
      return tf.round(tf.mul(gan.generate(x), 255)).dataSync();
    });
    return { width: lr.width * config.scale, height: lr.height * config.scale, data: Uint8Array.from(out) };
  };
  const validate = (): Record<string, number> => {
    const mean = (pairs: ValPair[]) => {
      let model = 0;
      let bicubic = 0;
      for (const p of pairs) {
        model += psnrY(generateRgb(p.lr), p.hr, config.scale);
        bicubic += p.bicubic;
      }
      return { model: model / pairs.length, bicubic: bicubic / pairs.length };
    };
    const std = mean(valStd);
    const mix = mean(valMix);
    return {
      val_psnr: std.model,
      val_bicubic: std.bicubic,
      val_gain: std.model - std.bicubic,
      val_psnr_mix: mix.model,
      val_gain_mix: mix.model - mix.bicubic,
    };
  };

  // Called only between steps: nothing is half-updated, and the patches of an unfinished batch are
  // not counted as used (a resumed run reads them again, in the same order).
  let lastCheckpointAt = performance.now();
  // Recent metrics, written into each checkpoint: the ones since the previous checkpoint, and any from
  // the last minute (the database gets them within a second, but a kill -9 can still beat it).
  let sinceCheckpoint: MetricsPoint[] = [];
  const RECENT_MS = 60_000;
  const checkpoint = async (kind: CheckpointWritten['kind'], val: Record<string, number> | null = null): Promise<void> => {
    if (val === null && valHere?.step === scheduler.step) val = valHere.val;
    const valPsnr = val?.val_psnr ?? null;
    const valGain = val?.val_gain ?? null;
    const t0 = performance.now();
    const step = scheduler.step;
    try {
      const { tensors, scalars } = gan.exportState();
      const written = await writeCheckpoint(
        checkpointDir,
        {
          runId,
          step,
          time: Date.now() / 1000,
          kind,
          config,
          scheduler: scheduler.snapshot(),
          gan: scalars,
          rng: { jpeg: jpegRand.state, perceptual: perceptual ? perceptualRand.state : null },
          data: { seq: sequencer.next - filled, patchesPerImage: data.patchesPerImage, images: data.images },
          valPsnr,
          valGain,
          bestValGain: bestGain,
          metrics: sinceCheckpoint,
        },
        tensors,
        // The generator users take away: the EMA weights when there are any, as a plain LayersModel.
        (dir) => gan.withAverageWeights(() => saveGeneratorLayersModel(gan.G, config.generator, path.join(dir, 'generator'))),
      );
      lastCheckpointStep = step;
      const cutoff = Date.now() - RECENT_MS;
      sinceCheckpoint = sinceCheckpoint.filter((p) => p.wallTime >= cutoff);
      post({
        type: 'checkpoint',
        step,
        dir: written.dir,
        checksum: written.checksum,
        bytes: written.bytes,
        kind,
        valPsnr,
        valGain,
        ms: performance.now() - t0,
      });
    } catch (err) {
      post({ type: 'warning', code: 'SRGAN_ERR_CHECKPOINT', message: `checkpoint at step ${step} failed: ${(err as Error).message}` });
    } finally {
      lastCheckpointAt = performance.now();
    }
  };
  const addToBatch = (frame: PatchFrame): void => {
    if (frame.hr.width !== P || frame.hr.height !== P || frame.lr.width !== L || frame.lr.height !== L) {
      post({
        type: 'warning',
        code: 'SRGAN_ERR_BAD_FRAME',
        message: `skipped a bad frame: patch ${frame.hr.width}×${frame.hr.height} / ${frame.lr.width}×${frame.lr.height}, expected ${P} / ${L}`,
      });
      return;
    }
    toFloat(frame.hr.data, hrBuf, filled * P * P * 3);
    if (lrBytes) lrBytes.set(frame.lr.data, filled * L * L * 3);
    else toFloat(frame.lr.data, lrBuf, filled * L * L * 3);
    filled++;
  };

  // Copies frames into the batch until it is full. Returns false if training should not step now.
  const fillBatch = async (): Promise<boolean> => {
    let stalledSince = performance.now();
    while (filled < B) {
      if (scheduler.mode !== 'run') return false;
      const early = sequencer.take();
      if (early) {
        addToBatch(early);
        continue;
      }
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
        // Later patches are here but the next one has not come for a long time: it never will.
        if (performance.now() - stalledSince > STALL_MS && sequencer.stats().stashed > 0) {
          const n = sequencer.skipToStashed();
          post({
            type: 'warning',
            code: 'SRGAN_ERR_BAD_FRAME',
            message: `${n} patches never arrived in ${STALL_MS / 1000} s; training goes on without them`,
          });
        }
        continue;
      }
      stalledSince = performance.now();
      try {
        const frame = sequencer.offer(decodeRingFrame(bytes));
        if (frame) addToBatch(frame);
      } catch (err) {
        post({ type: 'warning', code: 'SRGAN_ERR_BAD_FRAME', message: `skipped a bad frame: ${(err as Error).message}` });
      } finally {
        ring.release();
      }
    }
    return true;
  };

  /** docs/seed.md §2.5: one JPEG quality per batch, applied to every LR patch of it. */
  const degradeBatch = async (): Promise<void> => {
    if (!lrBytes) return;
    const quality = drawJpegQuality(jpegRand);
    const n = L * L * 3;
    for (let i = 0; i < B; i++) {
      const out = await jpegDegrade({ width: L, height: L, data: lrBytes.subarray(i * n, (i + 1) * n) }, quality);
      toFloat(out.data, lrBuf, i * n);
    }
  };

  const trainStep = (plan: StepPlan): Record<string, number> =>
    tf.tidy(() => gan.step(tf.tensor4d(hrBuf, [B, P, P, 3]), tf.tensor4d(lrBuf, [B, L, L, 3]), plan));

  const makePreview = (step: number) => {
    if (!preview) return;
    const strip = previewStrip(preview, generateRgb(preview.lr), config.scale);
    post({ type: 'preview', step, width: strip.width, height: strip.height, rgb: strip.data }, [strip.data.buffer as ArrayBuffer]);
  };

  /** Rates over the window since the last report, and where the data sequence stands (the daemon counts epochs from it). */
  const postStats = (now: number): void => {
    const elapsed = Math.max(1, now - statsWindow.start);
    post({
      type: 'stats',
      step: scheduler.step,
      dSteps: scheduler.dSteps,
      stepsPerSec: (statsWindow.steps * 1000) / elapsed,
      patchesPerSec: (statsWindow.patches * 1000) / elapsed,
      dataWaitFraction: Math.min(1, statsWindow.waitMs / elapsed),
      ringFrames: ring.framesAvailable(),
      tensors: tf.memory().numTensors,
      dataSeq: sequencer.next - filled,
    });
    Object.assign(statsWindow, { start: now, waitMs: 0, steps: 0, patches: 0 });
  };

  let stepsHere = 0; // steps this trainer has taken (a restarted one starts again at 0)
  for (;;) {
    const boundary = scheduler.atBoundary();
    if (checkpointRequested) {
      const kind = checkpointRequested;
      checkpointRequested = null;
      await checkpoint(kind);
    }
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
    await degradeBatch();
    const plan = scheduler.plan();
    const values = trainStep(plan);
    filled = 0;
    scheduler.complete(plan);
    // Fault injection for the crash tests: the first trainer of a run dies after this step; with
    // ..._EVERY=N every trainer, restarted ones too, dies after its N-th step.
    if (resume === null && plan.step === Number(process.env.SRGAN_FAULT_TRAINER_FAIL_AT_STEP))
      throw new Error(`injected trainer fault at step ${plan.step}`);
    if (++stepsHere === Number(process.env.SRGAN_FAULT_TRAINER_FAIL_EVERY)) throw new Error(`injected trainer fault at step ${plan.step}`);
    if (values.g_adv !== undefined) scheduler.observe({ gAdv: values.g_adv });
    statsWindow.steps++;
    statsWindow.patches += B;
    let val: Record<string, number> | null = null;
    let newBest = false;
    if (valStd.length > 0 && plan.step % config.valEvery === 0) {
      val = validate();
      valHere = { step: plan.step, val };
      Object.assign(values, val);
      newBest = bestGain === null || val.val_gain > bestGain;
      if (newBest) bestGain = val.val_gain!;
    }
    if (plan.log || val !== null) {
      const point = { step: plan.step, wallTime: Date.now(), values };
      pending.push(point);
      sinceCheckpoint.push(point);
      // With rare (or no) checkpoints keep it bounded: points older than a minute are on disk already.
      if (sinceCheckpoint.length > 20_000) sinceCheckpoint = sinceCheckpoint.filter((p) => p.wallTime >= Date.now() - RECENT_MS);
    }
    if (plan.preview) makePreview(plan.step);
    const every = config.checkpointEvery;
    const minutes = config.checkpointMinutes;
    const periodic = (every > 0 && plan.step % every === 0) || (minutes > 0 && performance.now() - lastCheckpointAt >= minutes * 60_000);
    // A new best is kept on disk at once, so a run that later gets worse loses nothing (docs/checkpoints.md).
    if (periodic || newBest) await checkpoint(periodic ? 'periodic' : 'best', val);
    const now = performance.now();
    if (now - lastFlush >= 250 || plan.preview) {
      post({ type: 'metrics', points: pending.splice(0) });
      lastFlush = now;
    }
    if (now - statsWindow.start >= 1000) postStats(now);
    // Let control messages in between steps: a wasm step is synchronous.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (pending.length) post({ type: 'metrics', points: pending.splice(0) });
  // A last report: a run shorter than one stats window still has its epochs counted.
  postStats(performance.now());
  // Stopping keeps everything: a run resumed from here continues exactly.
  if (scheduler.step !== lastCheckpointStep) await checkpoint('stop');
  setState('stopped');
  post({ type: 'stopped', step: scheduler.step });
}

/** The scheduler's view of a run config. */
function schedulerConfig(c: RunConfig): SchedulerConfig {
  return {
    dStepsPerG: c.dStepsPerG,
    phases: c.phases,
    logEvery: c.logEvery,
    previewEvery: c.previewEvery,
    maxSteps: c.maxSteps,
    batchScale: c.lrReferenceBatch === null ? null : c.batchSize / c.lrReferenceBatch,
    resetOptimizersOnPhaseChange: c.resetOptimizers,
    dMode: c.dMode,
  };
}

/** The perceptual loss the config asks for (loaded from disk or the bundled network), or none. */
async function createFeatureLoss(c: RunConfig, rand: Rng): Promise<FeatureLoss | null> {
  if (c.perceptual.kind === 'off') return null;
  const { createPerceptualLoss } = await import('../models/losses/perceptual.js');
  return createPerceptualLoss({ ...c.perceptual, maxShift: c.maxShift }, rand);
}

/** A held-out crop, its LR and the PSNR-Y of the bicubic enlargement of that LR (the baseline). */
interface ValPair {
  hr: RgbImage;
  lr: RgbImage;
  bicubic: number;
}

function toFloat(src: Uint8Array, dst: Float32Array, offset: number): void {
  for (let i = 0; i < src.length; i++) dst[offset + i] = src[i] / 255;
}

/** What the wasm rungs throw when the 4 GiB heap cannot hold a step (a failed allocation written through). */
const WASM_MEMORY = /memory access out of bounds|Cannot enlarge memory|Aborted\(OOM\)|out of memory/i;

main().catch((err: unknown) => {
  const e = err as Error & { code?: string };
  if (!e.code && WASM_MEMORY.test(e.message ?? '') && tf.getBackend()?.startsWith('wasm')) {
    const P = config.patchSize;
    post({
      type: 'error',
      code: 'SRGAN_ERR_BACKEND',
      message:
        `the training step needs more memory than the wasm heap holds (4 GiB; wasm said: ${e.message}): ` +
        `a batch of ${config.batchSize} patches of ${P}×${P} taken in ${config.accumulate} part${config.accumulate > 1 ? 's' : ''} of ${config.batchSize / config.accumulate}. ` +
        `Take it in more parts ("accumulate", a divisor of batchSize), lower batchSize or patchSize, or train on a GPU backend (docs/backends.md, "Memory")`,
      stack: e.stack,
    });
    process.exitCode = 1;
    port.close();
    return;
  }
  post({ type: 'error', code: e.code ?? 'SRGAN_ERR_TRAINER', message: e.message ?? String(err), stack: e.stack });
  process.exitCode = 1;
  port.close();
});
