// `srgan start`: validates the config here (so mistakes are reported at once), then starts the daemon
// as a detached process with its output in a log file, and waits until it serves the monitor.

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../config/resolve.js';
import { withInitWeights } from '../daemon/init-weights.js';
import { homePaths, lockOwner, readDaemonInfo, type DaemonInfo } from '../store/home.js';
import { SrganError } from '../util/errors.js';

const DAEMON_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../daemon/main.js');

export interface StartOptions {
  overrides: Record<string, unknown>;
  /** Continue this run instead of starting a new one. */
  resume?: string;
  /** How long to wait for the daemon to serve its monitor. Default 300 s (the demo set is made first). */
  timeoutMs?: number;
  onProgress?: (line: string) => void;
}

/** Starts the daemon in the background and returns its info once it is up. */
export async function startDaemon(opts: StartOptions): Promise<DaemonInfo & { logFile: string }> {
  const paths = homePaths();
  const owner = lockOwner(paths);
  if (owner !== null)
    throw new SrganError(
      'SRGAN_ERR_ALREADY_RUNNING',
      `a daemon is already running in ${paths.root} (pid ${owner}); stop it with: srgan stop`,
    );
  if (opts.resume === undefined) {
    // Checked here so mistakes are reported at once (a resumed run's config is checked by the daemon).
    opts.overrides = withInitWeights(opts.overrides);
    const config = resolveConfig(opts.overrides);
    if (config.dataDir) opts.overrides.dataDir = path.resolve(config.dataDir);
    if (config.checkpointRoot) opts.overrides.checkpointRoot = path.resolve(config.checkpointRoot);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const logFile = path.join(paths.logs, `daemon-${stamp}.log`);
  const out = fs.openSync(logFile, 'a', 0o600);
  const args = [
    DAEMON_MAIN,
    '--config-json',
    JSON.stringify(opts.overrides),
    ...(opts.resume === undefined ? [] : ['--resume', opts.resume]),
  ];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, SRGAN_HOME: paths.root, SRGAN_LOG_FILE: logFile },
  });
  fs.closeSync(out);
  let exited = null as number | null; // set by the 'exit' listener: not narrowed to null below
  let ready: DaemonInfo | null = null;
  child.once('exit', (code, signal) => (exited = code ?? (signal ? 128 : 1)));
  // The daemon says it is up over this channel, then lets go of it (see daemon/main.ts).
  child.on('message', (m: { ready?: DaemonInfo }) => {
    if (m?.ready) ready = m.ready;
  });
  child.unref();
  child.channel?.unref();
  opts.onProgress?.(`starting the daemon (pid ${child.pid}); log: ${logFile}`);

  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  let lastLine = '';
  while (Date.now() < deadline) {
    const info = ready ?? readDaemonInfo(paths);
    if (info && info.pid === child.pid) return { ...info, logFile };
    // Exited and the channel closed: every message it sent has arrived, so it never got up.
    if (exited !== null && !child.connected) {
      throw new SrganError('SRGAN_ERR_DAEMON_START', `the daemon exited with code ${exited} before it was ready:\n${tail(logFile, 20)}`);
    }
    // Progress is the daemon's own last log line (timestamped); what native libraries write to the
    // daemon's stderr (Dawn's Vulkan warnings when no GPU driver loads) stays in the log, not the terminal.
    const line = lastOwnLine(tail(logFile, 20));
    if (line && line !== lastLine) opts.onProgress?.(line);
    lastLine = line;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new SrganError(
    'SRGAN_ERR_DAEMON_START',
    `the daemon (pid ${child.pid}) did not come up within ${(opts.timeoutMs ?? 300_000) / 1000} s; see ${logFile}`,
  );
}

const OWN_LINE = /^\d{4}-\d\d-\d\dT[\d:.]+Z (.*)$/;

/** The last of `text`'s lines that the daemon's logger wrote, without its timestamp ('' if none). */
export function lastOwnLine(text: string): string {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = OWN_LINE.exec(lines[i]);
    if (m) return m[1];
  }
  return '';
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
