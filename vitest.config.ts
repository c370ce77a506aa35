import { defineConfig } from 'vitest/config';

// Native addons (sharp, better-sqlite3) and real worker threads: every test file runs in its own
// forked process, never in a worker-thread pool.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
