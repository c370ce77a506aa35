// The config fields a run gets from the command line: a --config JSON file, then the flags that name
// fields (--data, --preset, --init, --backend, --precision, --checkpoint-root, --port, --seed, --max-steps). Shared by `srgan start` and
// `srgan queue add`.

import fs from 'node:fs';
import { SrganError } from '../util/errors.js';
import { intFlag, type Values } from './flags.js';

export function runOverrides(v: Values): Record<string, unknown> {
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
  if (typeof v.init === 'string') overrides.init = v.init;
  if (typeof v.preset === 'string') overrides.preset = v.preset;
  if (typeof v.backend === 'string') overrides.backend = v.backend;
  if (typeof v.precision === 'string') overrides.precision = v.precision;
  if (typeof v['checkpoint-root'] === 'string') overrides.checkpointRoot = v['checkpoint-root'];
  for (const [flag, field] of [
    ['port', 'port'],
    ['seed', 'seed'],
    ['max-steps', 'maxSteps'],
  ] as const) {
    if (typeof v[flag] === 'string') overrides[field] = intFlag(`--${flag}`, v[flag]);
  }
  return overrides;
}
