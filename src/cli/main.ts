// The `srgan` command line. Each command has --help; errors print their code and message and exit 1.

import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { homePaths, isAlive, readDaemonInfo } from '../daemon/home.js';
import { openDb, listRuns, type RunRow } from '../daemon/db.js';
import { sendCommand } from './client.js';
import { startDaemon } from './start.js';
import { SrganError } from '../errors.js';
import { BACKEND_NAMES } from '../models/backend-names.js';
import type { DaemonStatus } from '../protocol/messages.js';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  run(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

const json = { type: 'boolean' } as const;

const COMMANDS: Record<string, Command> = {
  start: {
    summary: 'start the training daemon in the background and print the monitor URL',
    usage: 'srgan start [--data DIR] [--config FILE] [--preset NAME] [--port N] [--seed N] [--max-steps N] [--backend NAME]',
    options: {
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
      '--data DIR': 'train on the images under DIR (default: a demo set made in $SRGAN_HOME/demo-data)',
      '--config FILE': 'JSON file of config fields merged over the preset (see docs/config.md)',
      '--preset NAME': 'training preset (default espcn-x2-fast)',
      '--port N': 'monitor/control port on 127.0.0.1 (default: a free port)',
      '--seed N': 'seed for weights, data order and crops',
      '--max-steps N': 'stop by itself after N generator steps',
      '--backend NAME': `compute backend: auto (default: the best that loads), ${BACKEND_NAMES.join(', ')}`,
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
      const info = await startDaemon({ overrides, onProgress: (line) => !v.json && console.error(line) });
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
        if (v.json) console.log(JSON.stringify({ state: 'stopped', pid: null, url: null, runId: null, step: null, backend: null }));
        else console.log(`stopped: no daemon is running in ${paths.root}`);
        return 0;
      }
      printStatus(await currentStatus(paths), Boolean(v.json));
      return 0;
    },
  },
  pause: control('pause', 'pause training at the next step boundary (model and data stay in memory)'),
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
    usage: 'srgan runs [--json] [--status STATUS]',
    options: { json, status: { type: 'string' } },
    help: { '--json': 'print one JSON object {db, runs}', '--status S': 'only runs with this status (training, paused, stopped, failed)' },
    async run(v) {
      const paths = homePaths();
      let runs: RunRow[] = [];
      if (fs.existsSync(paths.db)) {
        const db = openDb(paths.db, { readonly: true });
        try {
          runs = listRuns(db, typeof v.status === 'string' ? { status: v.status } : {});
        } finally {
          db.close();
        }
      }
      if (v.json) {
        console.log(JSON.stringify({ db: paths.db, runs: runs.map((r) => ({ ...r, config: JSON.parse(r.config) as unknown })) }));
        return 0;
      }
      console.log(`database: ${paths.db}`);
      if (runs.length === 0) {
        console.log('no runs yet');
        return 0;
      }
      const rows = runs.map((r) => [
        r.id,
        r.status,
        r.preset,
        r.backend ?? '-',
        String(r.last_step),
        new Date(r.created_at * 1000).toISOString().slice(0, 19).replace('T', ' '),
        summarizeConfig(r.config),
      ]);
      printTable(['RUN', 'STATUS', 'PRESET', 'BACKEND', 'STEP', 'CREATED', 'CONFIG'], rows);
      return 0;
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
  console.log(`step:     ${s.step} G, ${s.dSteps} D  (${s.stepsPerSec.toFixed(2)} G steps/s)`);
  console.log(`losses:   ${losses || '-'}`);
  console.log(`backend:  ${s.backend} (${s.tensors} live tensors): ${s.backendReason}`);
  console.log(`data:     ${s.patchesPerSec.toFixed(1)} patches/s, waiting ${(s.dataWaitFraction * 100).toFixed(1)}% of the time, ${s.ringFrames} patches queued`);
  console.log(`monitor:  ${s.url}`);
  console.log(`pid:      ${s.pid}`);
}

function summarizeConfig(text: string): string {
  try {
    const c = JSON.parse(text) as Record<string, unknown>;
    return `batch=${c.batchSize} patch=${c.patchSize} dSteps=${c.dStepsPerG} seed=${c.seed}${c.dataDir ? ` data=${c.dataDir}` : ''}`;
  } catch {
    return '?';
  }
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
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', 'State lives in $SRGAN_HOME (default ~/.srgan). `srgan <command> --help` for its options.');
  return lines.join('\n');
}

function commandHelp(name: string, c: Command): string {
  const lines = [`usage: ${c.usage}`, '', c.summary, ''];
  for (const [flag, text] of Object.entries(c.help)) lines.push(`  ${flag.padEnd(16)} ${text}`);
  lines.push(`  ${'--help'.padEnd(16)} show this help`);
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
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
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
