// Selects the tfjs backend for training and installs what tfjs-core alone lacks: gradient functions
// (every backend) and fast conv-gradient kernels (wasm). The trainer owns the tfjs runtime: it is the
// only caller, once per process (one owner per resource, docs/style.md §8); tests call it too.
//
// Gradients: tfjs-core registers none by itself (every tf.grad fails with "gradient function not
// found"). Upstream's live in tfjs-core's dist/register_all_gradients.js, which Node cannot load
// (extension-less ESM imports); tfjs-layers' Node bundle registers all of them into the shared
// registry when it is loaded, so we import it for that side effect (we need the package anyway, for
// LayersModel save/load). Over those we register our own broadcast gradients (gradients.ts).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
// Side effect: registers upstream's gradient functions (see the header). Keep its version equal to
// tfjs-core's: it declares tfjs-core as an exact peer, so npm keeps a single, shared copy.
import '@tensorflow/tfjs-layers';

import { SrganError } from '../../util/errors.js';
import { registerBroadcastGradients } from './gradients.js';
import { registerWasmKernels, WASM_KERNELS } from './conv-gradient-kernels.js';

export type BackendName = 'wasm' | 'cpu';

export interface BackendInfo {
  /** The active tfjs backend, as `tf.getBackend()` reports it. */
  name: string;
  /** One line on what was set up and why; for logs and the monitor. */
  reason: string;
}

const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'] as const;

/**
 * Where the wasm binaries will be loaded from. The Node build of the backend loads them from the
 * directory of its own script (Emscripten's `__dirname`), which is the package's `dist/` unless the
 * glue was bundled elsewhere; in that case point tfjs at the installed package with setWasmPaths.
 * Must run before the wasm backend is first initialised (setWasmPaths throws afterwards).
 */
function locateWasmBinaries(): string {
  const require = createRequire(import.meta.url);
  const hasBinaries = (dir: string): boolean => WASM_FILES.every((f) => existsSync(join(dir, f)));
  let scriptDir: string | undefined;
  try {
    scriptDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  } catch {
    scriptDir = undefined;
  }
  if (scriptDir !== undefined && hasBinaries(scriptDir)) return `binaries next to the backend script (${scriptDir})`;

  let distDir: string;
  try {
    distDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_BACKEND', 'cannot resolve @tensorflow/tfjs-backend-wasm', { cause });
  }
  if (!hasBinaries(distDir)) {
    throw new SrganError('SRGAN_ERR_BACKEND', `wasm binaries ${WASM_FILES.join(', ')} not found in ${distDir}`);
  }
  if (tf.findBackend('wasm') == null) setWasmPaths(distDir + '/');
  return `binaries set with setWasmPaths (${distDir})`;
}

/**
 * Makes `name` the active tfjs backend. Checks that upstream's gradients are registered, installs our
 * Add / Sub / Multiply gradients over them (both backends) and, for wasm, our Conv2DBackpropFilter /
 * Conv2DBackpropInput kernels. Idempotent.
 * Throws SrganError SRGAN_ERR_BACKEND when the backend cannot be initialised.
 */
export async function initBackend(name: BackendName): Promise<BackendInfo> {
  if (name !== 'wasm' && name !== 'cpu') {
    throw new TypeError(`initBackend: name must be 'wasm' or 'cpu', got ${JSON.stringify(name)}`);
  }
  if (tf.getGradient(tf.Conv2D) == null) {
    // The registry lives on globalThis (one per thread), so this only happens without the import above.
    throw new SrganError('SRGAN_ERR_BACKEND', "tfjs gradients are not registered (backend.ts must import '@tensorflow/tfjs-layers')");
  }
  registerBroadcastGradients();
  let where = '';
  if (name === 'wasm') {
    where = locateWasmBinaries();
    registerWasmKernels();
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_BACKEND', `tfjs backend '${name}' failed to initialise`, { cause });
  }
  if (!ok || tf.getBackend() !== name) {
    throw new SrganError('SRGAN_ERR_BACKEND', `tfjs backend '${name}' failed to initialise (setBackend returned false)`);
  }
  if (name === 'cpu') {
    return { name, reason: 'cpu: pure-JS reference backend (about 500x slower than wasm; for tests and checks)' };
  }
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threads = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  const kernels = WASM_KERNELS.map((k) => k.kernelName).join(', ');
  return {
    name,
    reason:
      `wasm: XNNPACK${simd ? ' SIMD' : ' (no SIMD)'}, ${threads ? 'multi-threaded' : 'single-threaded'}; ` +
      `JS conv-gradient kernels (${kernels}); ${where}`,
  };
}
