// The trainer actor's thread: owns tfjs, the models and the optimizers, reads patch frames from the
// shared ring, and runs the scheduler's plan: one G step, then k D steps on the detached G output
// (docs/seed.md §6.1). Only control messages, metrics and previews cross postMessage. The batch
// (batch.ts), validation (validation.ts) and checkpoints (checkpointing.ts) are its parts; this file
// wires them into the step loop.

import { readStateDictFile } from '../models/io/model-file.js';
import { loadStateDict } from '../models/io/state-dict.js';
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { SharedRing } from '../protocol/ring.js';
import { Sequencer } from './sequencer.js';
import { Batch } from './batch.js';
import { Checkpoints } from './checkpointing.js';
import { generateRgb, Validation } from './validation.js';
import type { DaemonState, FromTrainer, MetricsPoint, ToTrainer } from '../protocol/messages.js';
import type { TrainerWorkerData } from '../protocol/trainer-init.js';
import { Scheduler, type SchedulerConfig } from '../models/train/scheduler.js';
import type { RunConfig } from '../config/presets.js';
import { applyPrecision, selectBackend, takeGpuErrors } from '../models/backend/ladder.js';
import { Gan, type FeatureLoss } from '../models/train/gan.js';
import { createEma } from '../models/train/ema.js';
import { deriveSeed, mulberry32, type Rng } from '../util/prng.js';
import { readCheckpoint } from '../models/train/checkpoint-tensors.js';
import type { CheckpointState } from '../models/train/checkpoint.js';
import { previewStrip } from '../data/image/patches.js';
import { UnreadSteps } from './step-reads.js';
import { SrganError } from '../util/errors.js';

const port = parentPort;
if (!port) throw new Error('trainer/worker.js must run in a worker thread');
const {
  ring: ringSab,
  config,
  preview,
  runId,
  checkpointDir,
  resume,
  data,
  valFiles,
  lrScale,
  rollbacks,
} = workerData as TrainerWorkerData;
const post = (m: FromTrainer, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

const ring = SharedRing.attach(ringSab);
let wake: (() => void) | null = null;
const sleepUntilWoken = () => new Promise<void>((resolve) => (wake = resolve));

async function main(): Promise<void> {
  const backend = await selectBackend(config.backend);
  const precision = applyPrecision(backend, config.precision);
  const perceptualRand = mulberry32(deriveSeed(config.seed, 5));
  const perceptual = await createFeatureLoss(config, perceptualRand);
  const gan = new Gan(config, {
    perceptual,
    replay: [perceptualRand],
    ema: (G) => (config.emaDecay === null ? null : createEma(G.variables, config.emaDecay)),
  });
  if (!resume && config.init !== null) {
    // Fine-tuning: G starts from the file's weights (the daemon made config.generator match them).
    const file = config.init;
    gan.initGenerator((G) => loadStateDict(G, config.generator, readStateDictFile(file).tensors, file));
  }
  let scheduler = new Scheduler(schedulerConfig(config));
  const jpegRand = mulberry32(deriveSeed(config.seed, 4));
  let startSeq = 0; // the seq of the first patch to train on: a resumed run takes its checkpoint's
  let resumed: CheckpointState | null = null;
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
    resumed = ckpt.state;
  }
  // Patches are taken in sequence order whatever order the loader threads finish in (see sequencer.ts).
  const batch = new Batch(config, ring, new Sequencer(startSeq), post);
  const checkpoints = new Checkpoints(
    { config, runId, dir: checkpointDir, data, post },
    {
      gan,
      scheduler: () => scheduler,
      jpegRand,
      perceptualRand: perceptual ? perceptualRand : null,
      dataSeq: () => batch.nextSeq,
      nonFinite: { lrScale, rollbacks },
    },
  );
  if (resumed) checkpoints.resumeFrom(resumed);

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
    backendReason: precision ? `${backend.reason}; ${precision}` : backend.reason,
    params: { generator: gan.G.paramCount, discriminator: gan.D.paramCount },
  });

  const B = batch.size;
  let state: DaemonState = 'starting';
  const setState = (s: DaemonState) => {
    if (s !== state) post({ type: 'state', state: (state = s), step: scheduler.step });
  };
  const pending: MetricsPoint[] = [];
  let lastFlush = performance.now();
  const statsWindow = { start: performance.now(), waitMs: 0, steps: 0, patches: 0 };
  const validation = await Validation.load(config, valFiles, (message) => post({ type: 'warning', code: 'SRGAN_ERR_DATA', message }));

  const makePreview = async (step: number) => {
    if (!preview) return;
    const strip = previewStrip(preview, await generateRgb(gan, preview.lr), config.scale);
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
      dataSeq: batch.nextSeq,
    });
    Object.assign(statsWindow, { start: now, waitMs: 0, steps: 0, patches: 0 });
  };

  // Steps whose losses are still on the device (step-reads.ts). Reading them feeds the scheduler's
  // observations in step order and queues their metrics; `val` joins the values of its step.
  const unread = new UnreadSteps();
  const adaptive = config.dMode === 'adaptive';
  let badInARow = 0; // steps not applied because they went non-finite, in a row (docs/reliability.md)
  const settle = async (val: { step: number; values: Record<string, number> } | null = null): Promise<void> => {
    const read = await unread.read();
    const gpuErrors = takeGpuErrors();
    if (gpuErrors.length > 0) {
      throw Object.assign(new Error(`the GPU rejected the training step's work: ${gpuErrors.join('; ')}`), { code: 'SRGAN_ERR_BACKEND' });
    }
    for (const r of read) {
      if (r.values.step_skipped !== undefined) {
        delete r.values.step_skipped;
        post({ type: 'nonfinite', step: r.step, inARow: ++badInARow, values: r.values });
        if (badInARow >= config.nonFinite.maxBadSteps) {
          throw new SrganError(
            'SRGAN_ERR_NONFINITE',
            `${badInARow} steps in a row up to step ${r.step} had non-finite losses or gradients (nonFinite.maxBadSteps ${config.nonFinite.maxBadSteps})`,
          );
        }
      } else {
        badInARow = 0;
      }
      if (r.values.g_adv !== undefined && Number.isFinite(r.values.g_adv)) scheduler.observe({ gAdv: r.values.g_adv });
      const extra = val !== null && val.step === r.step ? val.values : null;
      if (extra) Object.assign(r.values, extra);
      if (r.log || extra) {
        const point = { step: r.step, wallTime: r.wallTime, values: r.values };
        pending.push(point);
        checkpoints.logged(point);
      }
    }
  };

  let stepsHere = 0; // steps this trainer has taken (a restarted one starts again at 0)
  for (;;) {
    const boundary = scheduler.atBoundary();
    // What follows (a checkpoint, a stop, a pause) needs every step's values read and observed.
    if (checkpointRequested || boundary === 'stop' || boundary === 'paused') await settle();
    if (checkpointRequested) {
      const kind = checkpointRequested;
      checkpointRequested = null;
      await checkpoints.write(kind);
    }
    if (boundary === 'stop') break;
    if (boundary === 'paused') {
      // Everything up to the paused step is reported before the pause is: readers see a still curve.
      if (pending.length) post({ type: 'metrics', points: pending.splice(0) });
      setState('paused');
      await sleepUntilWoken();
      continue;
    }
    if (
      !(await batch.fill(
        () => scheduler.mode === 'run',
        (ms) => (statsWindow.waitMs += ms),
      ))
    ) {
      if (ring.closed && batch.filled < B) break;
      continue;
    }
    setState('training');
    await batch.degrade(jpegRand);
    const plan = scheduler.plan();
    const [clean, lr] = batch.tensors();
    const hr = nanInjected(plan.step) ? (tf.mul(clean, NaN) as tf.Tensor4D) : clean;
    if (hr !== clean) clean.dispose();
    try {
      // After non-finite rollbacks every rate is scaled down; the logged lr_g and lr_d show it.
      const spec = lrScale === 1 ? plan : { ...plan, lrG: plan.lrG * lrScale, lrD: plan.lrD * lrScale };
      unread.push(plan.step, plan.log, gan.stepLazy(hr, lr, spec));
    } finally {
      tf.dispose([hr, lr]);
    }
    batch.filled = 0;
    scheduler.complete(plan);
    // Fault injection for the crash tests: the first trainer of a run dies after this step; with
    // ..._EVERY=N every trainer, restarted ones too, dies after its N-th step.
    if (resume === null && plan.step === Number(process.env.SRGAN_FAULT_TRAINER_FAIL_AT_STEP))
      throw new Error(`injected trainer fault at step ${plan.step}`);
    if (++stepsHere === Number(process.env.SRGAN_FAULT_TRAINER_FAIL_EVERY)) throw new Error(`injected trainer fault at step ${plan.step}`);
    statsWindow.steps++;
    statsWindow.patches += B;
    const valDue = validation.size > 0 && plan.step % config.valEvery === 0;
    const periodic = checkpoints.periodicDue(plan.step);
    if (plan.log || valDue || periodic || adaptive) {
      const val = valDue ? await validation.measure(gan) : null;
      await settle(val === null ? null : { step: plan.step, values: val });
      const newBest = val !== null && checkpoints.validated(plan.step, val);
      // A new best is kept on disk at once, so a run that later gets worse loses nothing (docs/checkpoints.md).
      if (periodic || newBest) await checkpoints.write(periodic ? 'periodic' : 'best', val);
    }
    if (plan.preview) await makePreview(plan.step);
    const now = performance.now();
    if (now - lastFlush >= 250 || plan.preview) {
      post({ type: 'metrics', points: pending.splice(0) });
      lastFlush = now;
    }
    if (now - statsWindow.start >= 1000) postStats(now);
    // Let control messages in between steps: a wasm step is synchronous.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await settle();
  if (pending.length) post({ type: 'metrics', points: pending.splice(0) });
  // A last report: a run shorter than one stats window still has its epochs counted.
  postStats(performance.now());
  // Stopping keeps everything: a run resumed from here continues exactly.
  if (scheduler.step !== checkpoints.lastStep) await checkpoints.write('stop');
  setState('stopped');
  post({ type: 'stopped', step: scheduler.step });
}

/**
 * Fault injection for the non-finite tests: the batch of SRGAN_FAULT_NAN_STEPS steps (default 1) from
 * step SRGAN_FAULT_NAN_AT_STEP is made NaN until the run has rolled back once (a trainer after a
 * rollback trains those steps cleanly), or always with SRGAN_FAULT_NAN_EVERY_TRAINER=1 (then each
 * rollback meets it again).
 */
function nanInjected(step: number): boolean {
  const at = Number(process.env.SRGAN_FAULT_NAN_AT_STEP);
  if (!Number.isInteger(at) || at <= 0) return false;
  if (rollbacks > 0 && process.env.SRGAN_FAULT_NAN_EVERY_TRAINER !== '1') return false;
  return step >= at && step < at + Number(process.env.SRGAN_FAULT_NAN_STEPS ?? 1);
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
