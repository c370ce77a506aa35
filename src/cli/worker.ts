// `srgan worker`: trains queued runs one at a time (docs/scale.md). Runs in the foreground, as a service
// would; Ctrl-C or SIGTERM stops the run in progress with a checkpoint and exits.

import { redisUrl, REDIS_URL_ENV } from '../daemon/queue.js';
import type { Command } from './flags.js';

export const workerCommand: Command = {
  summary: 'take queued runs from Redis one at a time and train them here (foreground; Ctrl-C stops)',
  usage: 'srgan worker [--redis URL]',
  options: { redis: { type: 'string' } },
  help: {
    '--redis URL': `the Redis the queue lives in (default $${REDIS_URL_ENV})`,
  },
  async run(v) {
    const url = redisUrl(typeof v.redis === 'string' ? v.redis : undefined);
    // Native addons load on the main thread before any worker thread starts (as daemon/main.ts does).
    await import('sharp');
    await import('better-sqlite3');
    const { RunWorker } = await import('../daemon/worker.js');
    const worker = new RunWorker({ redisUrl: url });
    await worker.start();
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        console.log(`${new Date().toISOString()} ${sig}: stopping the worker`);
        void worker.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    // Anything still holding the loop after an orderly stop is a bug: do not hang the machine's service manager.
    setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
    return 0;
  },
};
