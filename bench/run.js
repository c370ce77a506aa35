#!/usr/bin/env node
// `npm run bench -- NAME [options]`: runs bench/NAME.mjs against the built dist/ (build first).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const names = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.mjs'))
  .map((f) => f.slice(0, -4))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- NAME [options]\nbenchmarks: ${names.join(', ')}`);
  process.exit(name ? 2 : 0);
}
if (!fs.existsSync(path.join(here, '../dist/cli/main.js'))) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const r = spawnSync(process.execPath, [path.join(here, `${name}.mjs`), ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
