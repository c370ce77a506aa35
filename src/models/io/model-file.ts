// The files a model can be read from besides our own checkpoints: .safetensors state dicts and
// PyTorch .pth/.pt files (docs/export.md), by extension. No tfjs: the daemon's main thread reads them.

import { readSafetensors, readSafetensorsHeader, type SafetensorsFile } from './safetensors.js';
import { readPth } from './pth.js';
import type { StateDictHeader } from './state-dict-names.js';

/** A path that names a state dict file. */
export const STATE_DICT_FILE = /\.(safetensors|pth|pt)$/i;

/** The tensors (and metadata) of a .safetensors or .pth file. */
export function readStateDictFile(file: string): SafetensorsFile {
  return /\.safetensors$/i.test(file) ? readSafetensors(file) : readPth(file);
}

/** Names and shapes only: a .safetensors header alone; a .pth is read whole (its pickle holds the shapes). */
export function readStateDictHeader(file: string): StateDictHeader {
  return /\.safetensors$/i.test(file) ? readSafetensorsHeader(file) : readPth(file);
}
