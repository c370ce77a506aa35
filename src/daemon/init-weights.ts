// `srgan start --init FILE` (config `init`): fine-tuning from published or exported weights. The file
// decides the generator: its kind, width, depth and scale come from its tensors (or, for our own
// exports, its metadata), so the run builds the network the weights belong to. Read here, on the main
// thread, from the file's header alone (no tfjs); the trainer loads the values (trainer/worker.ts).

import path from 'node:path';

import { readStateDictHeader, STATE_DICT_FILE } from '../models/io/model-file.js';
import { describeStateDict } from '../models/io/state-dict-names.js';
import { SrganError } from '../util/errors.js';

/**
 * `overrides` with `init` made absolute and `generator` and `scale` set to what the file describes.
 * Unchanged when there is no `init`. SRGAN_ERR_CONFIG when `scale` is given and differs from the
 * file's; SRGAN_ERR_CHECKPOINT (naming the file) when it cannot be read or is not a generator.
 */
export function withInitWeights(overrides: Record<string, unknown>): Record<string, unknown> {
  const init = overrides.init;
  if (init === undefined || init === null) return overrides;
  if (typeof init !== 'string' || init === '') {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `config field "init" must be the path of a .safetensors or .pth file, got ${JSON.stringify(init)}`,
    );
  }
  const file = path.resolve(init);
  if (!STATE_DICT_FILE.test(file)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `--init takes a .safetensors or .pth state dict (docs/export.md), got ${file}`);
  }
  const { config, scale } = describeStateDict(readStateDictHeader(file), file);
  if (overrides.scale !== undefined && overrides.scale !== scale) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `scale ${JSON.stringify(overrides.scale)} was asked for, but ${file} holds a ×${scale} generator`,
    );
  }
  return { ...overrides, init: file, generator: config, scale };
}
