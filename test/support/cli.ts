import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/srgan.js');

/** Runs the real `srgan` CLI (built dist/) with SRGAN_HOME set. */
export function srgan(home: string, args: string[], timeoutMs = 300_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, SRGAN_HOME: home },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
}

/** Runs the CLI and parses its stdout as JSON; throws with stderr on failure. */
export function srganJson<T = Record<string, unknown>>(home: string, args: string[]): T {
  const r = srgan(home, [...args, '--json']);
  if (r.status !== 0) throw new Error(`srgan ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

/** `srgan queue ARGS --redis URL --json` run from `home`, parsed; throws with stderr on failure. */
export function queueJson<T>(home: string, redisUrl: string, args: string[]): T {
  const r = srgan(home, ['queue', ...args, '--redis', redisUrl, '--json']);
  if (r.status !== 0) throw new Error(`srgan queue ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 60_000, everyMs = 200): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err as Error;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
