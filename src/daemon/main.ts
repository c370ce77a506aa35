// Daemon process entry. Started detached by `srgan start`, with its output in a log file.
// Native addons are loaded here, on the main thread, before any worker starts.

import 'sharp';
import 'better-sqlite3';
import { Daemon } from './daemon.js';

function parseArgs(argv: string[]): { overrides: unknown } {
  const i = argv.indexOf('--config-json');
  if (i < 0) return { overrides: {} };
  const text = argv[i + 1];
  if (text === undefined) throw new TypeError('--config-json needs a JSON value');
  return { overrides: JSON.parse(text) };
}

async function main(): Promise<void> {
  const { overrides } = parseArgs(process.argv.slice(2));
  const daemon = new Daemon({ overrides });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    console.log(`${new Date().toISOString()} ${sig}: stopping${signals > 1 ? ' (again)' : ''}`);
    if (signals >= 3) process.exit(130);
    void daemon.requestStop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => {}); // the terminal that started us may go away
  await daemon.start();
  process.exitCode = await daemon.finished;
  // Anything still holding the loop after an orderly shutdown is a bug; do not hang the user's machine.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}

main().catch((err: unknown) => {
  const e = err as Error & { code?: string };
  console.error(`${new Date().toISOString()} srgan daemon failed to start: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`);
  if (!e.code && e.stack) console.error(e.stack);
  process.exit(1);
});
