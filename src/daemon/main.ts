// Daemon process entry. Started detached by `srgan start`, with its output in a log file.
// Native addons are loaded here, on the main thread, before any worker starts.

import 'sharp';
import 'better-sqlite3';
import { Daemon } from './daemon.js';

function parseArgs(argv: string[]): { overrides: unknown; resume?: string } {
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined) throw new TypeError(`${flag} needs a value`);
    return v;
  };
  const text = value('--config-json');
  const resume = value('--resume');
  return { overrides: text === undefined ? {} : JSON.parse(text), ...(resume === undefined ? {} : { resume }) };
}

async function main(): Promise<void> {
  const { overrides, resume } = parseArgs(process.argv.slice(2));
  const daemon = new Daemon({ overrides, ...(resume === undefined ? {} : { resume }) });
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
  // `srgan start` waits on this channel; it must not keep the daemon alive once the CLI has gone.
  process.channel?.unref();
  await daemon.start();
  // Tell `srgan start` we are up over the channel, not only through daemon.json: a short run can finish
  // and remove daemon.json before the CLI looks, and the message still arrives.
  if (process.send) process.send({ ready: daemon.info }, () => process.disconnect?.());
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
