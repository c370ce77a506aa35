// The commands that start, watch and steer the daemon: start, status, pause, checkpoint, resume, monitor, stop.

import { homePaths, readDaemonInfo } from '../store/home.js';
import { hasExited } from '../util/lock-file.js';
import { sendCommand } from './client.js';
import { startDaemon } from './start.js';
import { SrganError } from '../util/errors.js';
import { BACKEND_NAMES } from '../config/backend-names.js';
import type { DaemonStatus } from '../protocol/messages.js';
import { describeGain, duration, formatNumber, signedDb, stepRate } from './format.js';
import { json, type Command } from './flags.js';
import { runOverrides } from './run-overrides.js';
import { monitorCommand, pinFromCli, pinRequest } from './monitor.js';

export const daemonCommands = {
  start: {
    summary: 'start the training daemon in the background and print the monitor URL',
    usage:
      'srgan start [--data DIR] [--config FILE] [--preset NAME] [--port N] [--seed N] [--max-steps N] [--backend NAME] [--precision fp32|bf16] [--init FILE] [--checkpoint-root DIR] [--resume RUN]',
    options: {
      resume: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      preset: { type: 'string' },
      port: { type: 'string' },
      seed: { type: 'string' },
      'max-steps': { type: 'string' },
      backend: { type: 'string' },
      init: { type: 'string' },
      'checkpoint-root': { type: 'string' },
      precision: { type: 'string' },
      json,
    },
    help: {
      '--data DIR':
        'train on a data set made by srgan prepare, or on the photos under DIR (default: a demo set made in $SRGAN_HOME/demo-data)',
      '--config FILE': 'JSON file of config fields merged over the preset (see docs/config.md)',
      '--preset NAME': 'training preset (default espcn-x2-fast)',
      '--port N': 'monitor/control port on 127.0.0.1 (default: a free port)',
      '--seed N': 'seed for weights, data order and crops',
      '--max-steps N': 'stop by itself after N generator steps',
      '--backend NAME': `compute backend: auto (default: the best that loads), ${BACKEND_NAMES.join(', ')}`,
      '--init FILE':
        "fine-tune: start the generator from FILE's weights, a .safetensors or .pth state dict with ESRGAN's or Real-ESRGAN Compact's tensor names, or one `srgan export` wrote; the generator (kind, size, scale) is the one the file holds (docs/export.md)",
      '--precision P':
        'fp32 (default) or bf16: convolutions in bfloat16 on the wasm-native rung (those with 16 channels or fewer on a side stay fp32), with fp32 weights, optimiser and checkpoints; needs a CPU with AVX512-BF16 or AMX (docs/native.md)',
      '--checkpoint-root DIR': 'write checkpoints to DIR/RUN/ instead of $SRGAN_HOME/checkpoints/RUN/ (config checkpointRoot)',
      '--resume RUN':
        'continue run RUN (id, id prefix or name) from its newest valid checkpoint: same run, steps and curves continue; only --port, --max-steps, --backend, --precision and checkpoint/logging fields may change',
      '--json': 'print the daemon info as one JSON object',
    },
    async run(v) {
      const overrides = runOverrides(v);
      if (typeof v.resume === 'string') {
        for (const flag of ['data', 'preset', 'seed', 'init', 'checkpoint-root'] as const) {
          if (v[flag] !== undefined)
            throw new SrganError(
              'SRGAN_ERR_CONFIG',
              `--${flag} cannot be given with --resume: a resumed run keeps its data, preset, seed and checkpoint root`,
            );
        }
      }
      const info = await startDaemon({
        overrides,
        ...(typeof v.resume === 'string' ? { resume: v.resume } : {}),
        onProgress: (line) => !v.json && console.error(line),
      });
      if (v.json) console.log(JSON.stringify(info));
      else {
        console.log(`srgan daemon running (pid ${info.pid}, run ${info.runId})`);
        console.log(`monitor: ${info.url}`);
      }
      return 0;
    },
  },
  status: {
    summary: 'show what the daemon is doing',
    usage: 'srgan status [--json]',
    options: { json },
    help: { '--json': 'print one JSON object' },
    async run(v) {
      const paths = homePaths();
      if (!readDaemonInfo(paths)) {
        if (v.json)
          console.log(JSON.stringify({ state: 'stopped', pid: null, url: null, runId: null, step: null, backend: null, validation: null }));
        else console.log(`stopped: no daemon is running in ${paths.root}`);
        return 0;
      }
      printStatus(await currentStatus(paths), Boolean(v.json));
      return 0;
    },
  },
  pause: control('pause', 'pause training at the next step boundary (model and data stay in memory)'),
  checkpoint: {
    summary: 'write a checkpoint now (at the next step boundary) and print where it is; or pin one so retention keeps it',
    usage: 'srgan checkpoint [--json] | srgan checkpoint --keep STEP|--unkeep STEP [--run RUN] [--json]',
    options: { json, keep: { type: 'string' }, unkeep: { type: 'string' }, run: { type: 'string' } },
    help: {
      '--keep STEP': "pin the run's checkpoint at STEP: retention never removes it (no daemon needed)",
      '--unkeep STEP': 'unpin it again',
      '--run RUN': "the run (id, id prefix or name); default the daemon's, else the newest",
      '--json': 'print {step, dir, checksum, bytes, kind, ms} (or {runId, step, pinned, path}) as JSON',
    },
    async run(v) {
      const pin = pinRequest(v);
      if (pin) return pinFromCli(homePaths(), pin.step, pin.pinned, pin.run, Boolean(v.json));
      const reply = await sendCommand(homePaths(), 'checkpoint', 600_000);
      if (reply.type !== 'checkpoint') throw new SrganError('SRGAN_ERR_BAD_MESSAGE', `unexpected reply ${reply.type}`);
      const c = reply.checkpoint;
      if (v.json) console.log(JSON.stringify(c));
      else console.log(`checkpoint at step ${c.step}: ${c.dir} (${(c.bytes / 2 ** 20).toFixed(1)} MiB)`);
      return 0;
    },
  },
  resume: control('resume', 'resume paused training from the same step'),
  monitor: monitorCommand,
  stop: {
    summary: 'stop the daemon cleanly (at a step boundary) and wait until it has exited',
    usage: 'srgan stop [--json]',
    options: { json },
    help: { '--json': 'print {state, pid, runId} as JSON' },
    async run(v) {
      const paths = homePaths();
      const info = readDaemonInfo(paths);
      if (!info) throw new SrganError('SRGAN_ERR_NOT_RUNNING', `no daemon is running in ${paths.root}`);
      await sendCommand(paths, 'stop');
      const deadline = Date.now() + 120_000;
      // Gone means the process has exited (a zombie has), not only that it has said goodbye.
      while (!hasExited(info.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (!hasExited(info.pid)) throw new SrganError('SRGAN_ERR_TIMEOUT', `the daemon (pid ${info.pid}) is still running after 120 s`);
      if (v.json) console.log(JSON.stringify({ state: 'stopped', pid: info.pid, runId: info.runId }));
      else console.log(`stopped (run ${info.runId})`);
      return 0;
    },
  },
} satisfies Record<string, Command>;

function control(type: 'pause' | 'resume', summary: string): Command {
  return {
    summary,
    usage: `srgan ${type} [--json] [--no-wait]`,
    options: { json, 'no-wait': { type: 'boolean' } },
    help: { '--json': 'print the daemon status afterwards as JSON', '--no-wait': 'return once the daemon has the request' },
    async run(v) {
      const paths = homePaths();
      await sendCommand(paths, type);
      // The request takes effect at the next step boundary: wait to see it, so scripts can rely on it.
      const want = type === 'pause' ? 'paused' : 'training';
      const deadline = Date.now() + 120_000;
      let s = await currentStatus(paths);
      while (!v['no-wait'] && s.state !== want && s.state !== 'stopping' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        s = await currentStatus(paths);
      }
      if (!v['no-wait'] && s.state !== want) throw new SrganError('SRGAN_ERR_TIMEOUT', `asked to ${type}, but the daemon is ${s.state}`);
      if (v.json) console.log(JSON.stringify(s));
      else console.log(v['no-wait'] ? `${type}: requested` : `${s.state} at step ${s.step}`);
      return 0;
    },
  };
}

async function currentStatus(paths: ReturnType<typeof homePaths>): Promise<DaemonStatus> {
  const reply = await sendCommand(paths, 'status');
  if (reply.type !== 'status') throw new SrganError('SRGAN_ERR_BAD_MESSAGE', `unexpected reply ${reply.type}`);
  return reply.status;
}

function printStatus(s: DaemonStatus, asJson: boolean): void {
  if (asJson) {
    console.log(JSON.stringify(s));
    return;
  }
  const losses = Object.entries(s.losses)
    .filter(([k]) => !k.startsWith('lr_') && k !== 'd_steps')
    .map(([k, v]) => `${k}=${formatNumber(v)}`)
    .join(' ');
  console.log(
    `state:    ${s.state}${s.pauseReason ? ` (by the daemon: ${s.pauseReason}; it goes on by itself once that has passed)` : ''}`,
  );
  console.log(`run:      ${s.runId} (${s.preset})`);
  console.log(`step:     ${s.step} G, ${s.dSteps} D  (${stepRate(s.stepsPerSec)}), epoch ${s.epoch}`);
  const maxSteps = s.config.maxSteps;
  if (typeof maxSteps === 'number' && s.stepsPerSec > 0 && maxSteps > s.step) {
    console.log(
      `to go:    ${maxSteps - s.step} G steps to maxSteps ${maxSteps}, ~${duration((maxSteps - s.step) / s.stepsPerSec)} at this rate`,
    );
  }
  console.log(`losses:   ${losses || '-'}`);
  console.log(`backend:  ${s.backend} (${s.tensors} live tensors): ${s.backendReason}`);
  // The instruction set oneDNN chose is in the native rung's reason (its version line).
  const isa = /\b(avx512_core_amx|avx512_core_bf16|avx512_core_vnni|avx512_core|avx2_vnni|avx2|avx|sse41)\b/.exec(s.backendReason)?.[1];
  const precision = s.config.precision === 'bf16' ? 'bf16' : 'fp32';
  console.log(`precision: ${precision}${isa ? ` (oneDNN on ${isa})` : ''}`);
  console.log(
    `data:     ${s.patchesPerSec.toFixed(1)} patches/s, waiting ${(s.dataWaitFraction * 100).toFixed(1)}% of the time, ${s.ringFrames} patches queued`,
  );
  console.log(`checkpoint: ${s.lastCheckpoint ? `step ${s.lastCheckpoint.step}, ${s.lastCheckpoint.dir}` : 'none yet'}`);
  const v = s.validation;
  if (v) {
    console.log(`validation: ${describeGain(v.gain, v.psnr, v.bicubic)} at step ${v.step}`);
    console.log(`best gain:  ${signedDb(v.best.gain)} at step ${v.best.step}`);
  } else {
    const every = s.config.valEvery;
    console.log(`validation: ${typeof every === 'number' && every > 0 ? `none yet (every ${every} steps)` : 'off (valEvery 0)'}`);
  }
  console.log(`monitor:  ${s.url}`);
  console.log(`pid:      ${s.pid}`);
}
