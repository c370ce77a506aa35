// The `srgan` command line. Each command has --help; errors print their code and message and exit 1.

import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { homePaths, readDaemonInfo } from '../store/home.js';
import { isAlive } from '../util/lock-file.js';
import { compareCommand, metricsCommand, runsCommand, showCommand } from './runs.js';
import { sendCommand } from './client.js';
import { startDaemon } from './start.js';
import { prepareCommand } from './prepare.js';
import { SrganError } from '../util/errors.js';
import { BACKEND_NAMES } from '../config/backend-names.js';
import { DOWNSCALE_FILTERS } from '../config/lr-synthesis.js';
import { EVAL_LR_SYNTHESES } from '../data/image/degrade.js';
import type { DaemonStatus } from '../protocol/messages.js';
import { describeGain, duration, signedDb, stepRate } from './format.js';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  /** How many positional arguments the command takes, [min, max]; none when absent. */
  positionals?: readonly [number, number];
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<number>;
}

const json = { type: 'boolean' } as const;

const COMMANDS: Record<string, Command> = {
  prepare: prepareCommand,
  start: {
    summary: 'start the training daemon in the background and print the monitor URL',
    usage: 'srgan start [--data DIR] [--config FILE] [--preset NAME] [--port N] [--seed N] [--max-steps N] [--backend NAME] [--resume RUN]',
    options: {
      resume: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      preset: { type: 'string' },
      port: { type: 'string' },
      seed: { type: 'string' },
      'max-steps': { type: 'string' },
      backend: { type: 'string' },
      json,
    },
    help: {
      '--data DIR': 'train on a data set made by srgan prepare, or on the photos under DIR (default: a demo set made in $SRGAN_HOME/demo-data)',
      '--config FILE': 'JSON file of config fields merged over the preset (see docs/config.md)',
      '--preset NAME': 'training preset (default espcn-x2-fast)',
      '--port N': 'monitor/control port on 127.0.0.1 (default: a free port)',
      '--seed N': 'seed for weights, data order and crops',
      '--max-steps N': 'stop by itself after N generator steps',
      '--backend NAME': `compute backend: auto (default: the best that loads), ${BACKEND_NAMES.join(', ')}`,
      '--resume RUN': 'continue run RUN (id, id prefix or name) from its newest valid checkpoint: same run, steps and curves continue; only --port, --max-steps, --backend and checkpoint/logging fields may change',
      '--json': 'print the daemon info as one JSON object',
    },
    async run(v) {
      const overrides: Record<string, unknown> = {};
      if (typeof v.config === 'string') {
        let text: string;
        try {
          text = fs.readFileSync(v.config, 'utf8');
        } catch (err) {
          throw new SrganError('SRGAN_ERR_CONFIG', `cannot read config file ${v.config}: ${(err as Error).message}`);
        }
        try {
          Object.assign(overrides, JSON.parse(text));
        } catch (err) {
          throw new SrganError('SRGAN_ERR_CONFIG', `config file ${v.config} is not valid JSON: ${(err as Error).message}`);
        }
      }
      if (typeof v.data === 'string') overrides.dataDir = v.data;
      if (typeof v.preset === 'string') overrides.preset = v.preset;
      if (typeof v.backend === 'string') overrides.backend = v.backend;
      for (const [flag, field] of [['port', 'port'], ['seed', 'seed'], ['max-steps', 'maxSteps']] as const) {
        if (typeof v[flag] === 'string') overrides[field] = toInt(`--${flag}`, v[flag] as string);
      }
      if (typeof v.resume === 'string') {
        for (const flag of ['data', 'preset', 'seed'] as const) {
          if (v[flag] !== undefined) throw new SrganError('SRGAN_ERR_CONFIG', `--${flag} cannot be given with --resume: a resumed run keeps its data, preset and seed`);
        }
      }
      const info = await startDaemon({ overrides, ...(typeof v.resume === 'string' ? { resume: v.resume } : {}), onProgress: (line) => !v.json && console.error(line) });
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
        if (v.json) console.log(JSON.stringify({ state: 'stopped', pid: null, url: null, runId: null, step: null, backend: null, validation: null }));
        else console.log(`stopped: no daemon is running in ${paths.root}`);
        return 0;
      }
      printStatus(await currentStatus(paths), Boolean(v.json));
      return 0;
    },
  },
  pause: control('pause', 'pause training at the next step boundary (model and data stay in memory)'),
  checkpoint: {
    summary: 'write a checkpoint now (at the next step boundary) and print where it is',
    usage: 'srgan checkpoint [--json]',
    options: { json },
    help: { '--json': 'print {step, dir, checksum, bytes, kind, ms} as JSON' },
    async run(v) {
      const reply = await sendCommand(homePaths(), 'checkpoint', 600_000);
      if (reply.type !== 'checkpoint') throw new SrganError('SRGAN_ERR_BAD_MESSAGE', `unexpected reply ${reply.type}`);
      const c = reply.checkpoint;
      if (v.json) console.log(JSON.stringify(c));
      else console.log(`checkpoint at step ${c.step}: ${c.dir} (${(c.bytes / 2 ** 20).toFixed(1)} MiB)`);
      return 0;
    },
  },
  resume: control('resume', 'resume paused training from the same step'),
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
      // Gone means the process has exited, not only that it has said goodbye.
      while (isAlive(info.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (isAlive(info.pid)) throw new SrganError('SRGAN_ERR_TIMEOUT', `the daemon (pid ${info.pid}) is still running after 120 s`);
      if (v.json) console.log(JSON.stringify({ state: 'stopped', pid: info.pid, runId: info.runId }));
      else console.log(`stopped (run ${info.runId})`);
      return 0;
    },
  },
  models: {
    summary: 'list the training presets with their networks, parameter counts and FLOPs per step',
    usage: 'srgan models [--json]',
    options: { json },
    help: { '--json': 'print one JSON object {presets: [...]}' },
    async run(v) {
      const { summarizePresets } = await import('./models.js');
      const presets = await summarizePresets();
      if (v.json) {
        console.log(JSON.stringify({ presets }));
        return 0;
      }
      printTable(
        ['PRESET', 'SCALE', 'GENERATOR', 'G PARAMS', 'DISCRIMINATOR', 'D PARAMS', 'BATCH×PATCH', 'D STEPS', 'GFLOP/STEP'],
        presets.map((p) => [
          p.preset,
          `×${p.scale}`,
          p.generator.kind,
          p.generator.params.toLocaleString('en-US'),
          p.discriminator.kind,
          p.discriminator.params.toLocaleString('en-US'),
          `${p.batchSize}×${p.patchSize}²`,
          String(p.dStepsPerG),
          String(p.gflopsPerStep),
        ]),
      );
      return 0;
    },
  },
  runs: {
    summary: 'list training runs stored in $SRGAN_HOME/runs.db',
    usage: 'srgan runs [--json] [--status STATUS[,STATUS...]]',
    options: { json, status: { type: 'string' } },
    help: {
      '--json': 'print one JSON object {db, runs}',
      '--status S[,S]': 'only runs with one of these statuses (starting, training, paused, stopped, failed)',
    },
    run: (v) => runsCommand(v),
  },
  show: {
    summary: 'show one run: its row, config, latest metrics, checkpoints, event counts and last error',
    usage: 'srgan show RUN [--json]',
    options: { json },
    positionals: [1, 1],
    help: { RUN: 'the run id, a unique prefix of it, or the run name', '--json': 'print one JSON object' },
    run: (v, args) => showCommand(v, args),
  },
  metrics: {
    summary: "print a run's metric curves as a table, CSV or JSON",
    usage: 'srgan metrics RUN [--key KEY ...] [--csv | --json] [--every N]',
    options: { key: { type: 'string', multiple: true }, csv: { type: 'boolean' }, json, every: { type: 'string' } },
    positionals: [1, 1],
    help: {
      RUN: 'the run id, a unique prefix of it, or the run name',
      '--key KEY': 'only this metric (repeatable; default: every key the run logged)',
      '--csv': 'print CSV with the header step,key,value,wall_time',
      '--json': 'print one JSON object {run, keys, every, points}',
      '--every N': 'keep every Nth point of each curve (and always the last)',
    },
    run: (v, args) => metricsCommand(v, args),
  },
  compare: {
    summary: 'compare runs side by side: final and best metrics, steps, status and config differences',
    usage: 'srgan compare RUN RUN... [--key KEY ...] [--json]',
    options: { key: { type: 'string', multiple: true }, json },
    positionals: [2, Number.POSITIVE_INFINITY],
    help: {
      RUN: 'a run id, a unique prefix of it, or a run name (two or more)',
      '--key KEY': 'only this metric (repeatable; default: every key the runs logged)',
      '--json': 'print one JSON object {runs, metrics, config}',
    },
    run: (v, args) => compareCommand(v, args),
  },
  upscale: {
    summary: "upscale images (files or folders) with a run's generator or an exported model",
    usage: 'srgan upscale IN... --out DIR [--run RUN | --checkpoint PATH] [--best] [--tile N|auto] [--overlap N] [--blend N] [--format png|jpeg|webp] [--backend NAME] [--json]',
    options: {
      out: { type: 'string' },
      run: { type: 'string' },
      checkpoint: { type: 'string' },
      best: { type: 'boolean' },
      tile: { type: 'string' },
      overlap: { type: 'string' },
      blend: { type: 'string' },
      format: { type: 'string' },
      backend: { type: 'string' },
      json,
    },
    positionals: [0, Number.POSITIVE_INFINITY],
    help: {
      IN: 'image files, or folders walked recursively for png, jpg, jpeg, webp, tif, tiff, gif, avif (any case)',
      '--out DIR': 'where the results go, keeping paths relative to each IN folder (required)',
      '--run RUN': "use this run's latest checkpoint (default: the newest run that has one)",
      '--checkpoint PATH': "a checkpoint folder, its generator/ folder, an exported model.json folder, or a run's checkpoints folder",
      '--best': 'take the checkpoint with the highest validation gain over bicubic instead of the latest (highest validation PSNR for runs from before gains were measured)',
      '--tile N|auto': 'LR tile side (default auto: the largest that fits 1 GiB of activations, at most 512)',
      '--overlap N': 'LR context pixels at inner tile edges (default: the receptive radius, at most 32)',
      '--blend N': 'LR width of the cross-fade between tiles (default 0 when the overlap covers the receptive radius, else 8)',
      '--format F': 'png, jpeg or webp (default: the input format; PNG for tiff, gif and avif)',
      '--backend NAME': `compute backend: auto (default), ${BACKEND_NAMES.join(', ')}`,
      '--json': 'print one JSON object {source, run, step, scale, files: [{in, out, width, height, outWidth, outHeight, ms} | {in, error}]}',
    },
    async run(v, args) {
      const { upscaleCommand } = await import('./use.js');
      return upscaleCommand(v, args);
    },
  },
  eval: {
    summary: 'score a generator with PSNR-Y / SSIM-Y against bicubic and other models; stored on the run',
    usage: 'srgan eval --data DIR [--run RUN | --checkpoint PATH] [--best] [--compare MODEL ...] [--lr-filter NAME ...] [--border N] [--limit N] [--backend NAME] [--json] [--no-save]',
    options: {
      data: { type: 'string' },
      run: { type: 'string' },
      checkpoint: { type: 'string' },
      best: { type: 'boolean' },
      compare: { type: 'string', multiple: true },
      'lr-filter': { type: 'string', multiple: true },
      border: { type: 'string' },
      limit: { type: 'string' },
      backend: { type: 'string' },
      'no-save': { type: 'boolean' },
      json,
    },
    help: {
      '--data DIR': 'high-resolution images (walked recursively); each is cropped to a multiple of the scale and its LR made as --lr-filter says',
      '--run RUN': "evaluate this run's latest checkpoint (default: the newest run that has one)",
      '--checkpoint PATH': 'evaluate this checkpoint or exported generator folder instead',
      '--best': 'take the checkpoint with the highest validation gain over bicubic instead of the latest (highest validation PSNR for runs from before gains were measured)',
      '--compare MODEL': 'also score this tfjs LayersModel (model.json or its folder; input [n,h,w,3] in [0,1], ×2 or ×4 as the run); repeatable',
      '--lr-filter NAME': `how the LR inputs are made (repeatable; one table row each): ${DOWNSCALE_FILTERS.join(', ')}, or blurSIGMA+FILTER (a Gaussian blur first, e.g. blur0.8+bicubic-aa), or all (${EVAL_LR_SYNTHESES.join(', ')}); default bicubic-aa, the papers' protocol`,
      '--border N': 'pixels cropped from each side before measuring (default: the scale)',
      '--limit N': 'only the first N images (sorted by path)',
      '--backend NAME': `compute backend: auto (default), ${BACKEND_NAMES.join(', ')}`,
      '--json': 'print one JSON object {source, run, step, scale, border, images, results, files, filters: [{lr, model, bicubic, gain, compare}]}',
      '--no-save': 'do not store the results in the evals table of runs.db',
    },
    async run(v) {
      const { evalCommand } = await import('./use.js');
      return evalCommand(v);
    },
  },
};

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
  console.log(`state:    ${s.state}`);
  console.log(`run:      ${s.runId} (${s.preset})`);
  console.log(`step:     ${s.step} G, ${s.dSteps} D  (${stepRate(s.stepsPerSec)}), epoch ${s.epoch}`);
  const maxSteps = s.config.maxSteps;
  if (typeof maxSteps === 'number' && s.stepsPerSec > 0 && maxSteps > s.step) {
    console.log(`to go:    ${maxSteps - s.step} G steps to maxSteps ${maxSteps}, ~${duration((maxSteps - s.step) / s.stepsPerSec)} at this rate`);
  }
  console.log(`losses:   ${losses || '-'}`);
  console.log(`backend:  ${s.backend} (${s.tensors} live tensors): ${s.backendReason}`);
  console.log(`data:     ${s.patchesPerSec.toFixed(1)} patches/s, waiting ${(s.dataWaitFraction * 100).toFixed(1)}% of the time, ${s.ringFrames} patches queued`);
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

function formatNumber(v: number): string {
  return Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(4) : v.toExponential(3);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

function toInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new SrganError('SRGAN_ERR_CONFIG', `${flag} must be an integer, got "${text}"`);
  return n;
}

function usage(): string {
  const lines = ['usage: srgan <command> [options]', '', 'commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}  ${c.summary}`);
  lines.push('', 'State lives in $SRGAN_HOME (default ~/.srgan). `srgan <command> --help` for its options.');
  return lines.join('\n');
}

function commandHelp(name: string, c: Command): string {
  const lines = [`usage: ${c.usage}`, '', c.summary, ''];
  const width = Math.max(16, ...Object.keys(c.help).map((f) => f.length));
  for (const [flag, text] of Object.entries(c.help)) lines.push(`  ${flag.padEnd(width)} ${text}`);
  lines.push(`  ${'--help'.padEnd(width)} show this help`);
  return lines.join('\n') + (name === 'start' ? '\n' : '');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`srgan: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: Boolean(command.positionals), strict: true });
    const [min, max] = command.positionals ?? [0, 0];
    const args = parsed.positionals;
    if (!parsed.values.help && args.length < min) throw new Error(`expected ${min === 1 ? 'a RUN argument' : `at least ${min} RUN arguments`}, got ${args.length}`);
    if (!parsed.values.help && args.length > max) throw new Error(`unexpected argument${args.length - max > 1 ? 's' : ''} ${args.slice(max).join(' ')}`);
  } catch (err) {
    console.error(`srgan ${name}: ${(err as Error).message}\n\n${commandHelp(name, command)}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(commandHelp(name, command));
    return 0;
  }
  return command.run(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as Error & { code?: string };
    console.error(`srgan: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`);
    process.exitCode = 1;
  },
);
