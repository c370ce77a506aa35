import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'srgan-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The built tree (npm test builds before running vitest): worker entries must be JavaScript. */
export const DIST = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist');
