// `srgan worker`: trains queued runs one at a time (docs/scale.md). Runs in the foreground, as a service
// would; Ctrl-C or SIGTERM stops the run in progress with a checkpoint, hands its job back to the queue
// and exits.

import { redisUrl, REDIS_URL_ENV } from '../daemon/queue.js';
import { SrganError } from '../util/errors.js';
import { intFlag, type Command } from './flags.js';

export const workerCommand: Command = {
  summary: 'take queued runs from Redis one at a time and train them here (foreground; Ctrl-C stops)',
  usage: 'srgan worker [--redis URL] [--concurrency 1] [--stall-seconds N]',
  options: { redis: { type: 'string' }, concurrency: { type: 'string' }, 'stall-seconds': { type: 'string' } },
  help: {
    '--redis URL': `the Redis the queue lives in (default $${REDIS_URL_ENV})`,
    '--concurrency 1': 'runs trained at once: 1 (a home holds one daemon; start one worker per GPU, each with its own SRGAN_HOME)',
    '--stall-seconds N':
      'a worker that has not renewed its lock on its job for N seconds is taken for dead and the job goes to another worker, which continues the run from its newest checkpoint under the checkpoint root (default 30; every worker should use the same)',
  },
  async run(v) {
    const url = redisUrl(typeof v.redis === 'string' ? v.redis : undefined);
    if (typeof v.concurrency === 'string' && intFlag('--concurrency', v.concurrency, 1) !== 1) {
      throw new SrganError(
        'SRGAN_ERR_CONFIG',
        `--concurrency ${v.concurrency}: a worker trains one run at a time (its home holds one daemon); start one worker per GPU, each with its own SRGAN_HOME`,
      );
    }
    const stallSeconds = typeof v['stall-seconds'] === 'string' ? intFlag('--stall-seconds', v['stall-seconds'], 1) : undefined;
    // Native addons load on the main thread before any worker thread starts (as daemon/main.ts does).
    await import('sharp');
    await import('better-sqlite3');
    const { RunWorker } = await import('../daemon/worker.js');
    const worker = new RunWorker({ redisUrl: url, ...(stallSeconds ? { stallSeconds } : {}) });
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
