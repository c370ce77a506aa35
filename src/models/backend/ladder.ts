// The compute backend ladder (docs/backends.md): the trainer takes the best rung that loads, and says
// why the better ones were skipped. `--backend NAME` forces one rung and fails clearly when it cannot load.
//
//   1. tfjs-node-gpu, 2. tfjs-node   libtensorflow, when the user has it installed (never required)
//   3. webgpu                        Dawn (the `webgpu` package) when it finds a GPU adapter; a software
//                                    adapter (SwiftShader) only when forced and SRGAN_WEBGPU_SOFTWARE=1
//   4. wasm-native                   wasm + our oneDNN addon (built at install when libdnnl-dev exists)
//   5. wasm                          wasm + our conv-gradient kernels in JS: works wherever npm works
//   cpu                              the pure-JS reference; only when asked for (about 500× slower)
//
// Runs in the trainer thread, which owns tfjs: tfjs-node can be loaded by only one thread of a process,
// so nothing else may load it (the main thread only ever resolves its path).

import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { SrganError } from '../../util/errors.js';
import { initBackend } from './init.js';
import { registerBroadcastGradients } from './gradients.js';
import { registerWebgpuKernels } from './webgpu-kernels.js';
import { configureNative, loadNativeKernels, registerNativeKernels } from './native/kernels.js';

import { BACKEND_NAMES, type BackendName, type BackendRequest } from '../../config/backend-names.js';

export { BACKEND_NAMES, type BackendName, type BackendRequest };

/** The GPU adapter a webgpu rung runs on, as Dawn describes it. */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation of the GPU API (SwiftShader, llvmpipe): correct, but far slower than a card. */
  software: boolean;
}

/** The switch that lets a forced `--backend webgpu` take a software adapter (docs/backends.md, "webgpu"). */
export const SOFTWARE_ADAPTER_ENV = 'SRGAN_WEBGPU_SOFTWARE';
/** Debian's chromium package ships SwiftShader's Vulkan driver here; used when the switch is on and VK_ICD_FILENAMES is unset. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export interface BackendSelection {
  /** The rung in use. */
  name: BackendName;
  /** The adapter, on the webgpu rung. */
  adapter?: AdapterInfo;
  /** What tfjs calls it (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfBackend: string;
  /** One line: what runs, and why the better rungs were skipped. */
  reason: string;
  skipped: { name: BackendName; why: string }[];
}

const AUTO_ORDER: readonly BackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm-native', 'wasm'];
const ADAPTER_TIMEOUT_MS = 15_000;
const require = createRequire(import.meta.url);

/** Loads one rung and makes it tfjs' backend; throws SrganError(SRGAN_ERR_BACKEND) with the reason. */
async function load(name: BackendName, forced: boolean): Promise<{ tfBackend: string; detail: string; adapter?: AdapterInfo }> {
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      return loadTfjsNode(`@tensorflow/${name}`);
    case 'webgpu': {
      // Dawn writes the Vulkan loader's complaints to stderr, the user's terminal in a foreground
      // command, when it finds no driver: where none is installed, auto does not load Dawn at all.
      if (!forced && vulkanDriverManifests().length === 0) {
        throw new SrganError('SRGAN_ERR_BACKEND', 'no Vulkan driver is installed (no ICD manifest where the Vulkan loader looks)');
      }
      return loadWebgpu(forced && softwareAllowed());
    }
    case 'wasm-native': {
      const native = loadNativeKernels();
      if (!native.ok) throw new SrganError('SRGAN_ERR_BACKEND', native.reason);
      const wasm = await initBackend('wasm');
      registerNativeKernels();
      return { tfBackend: 'wasm', detail: `${native.version} for convolutions; ${wasm.reason}` };
    }
    case 'wasm':
    case 'cpu': {
      const info = await initBackend(name);
      return { tfBackend: name, detail: info.reason };
    }
  }
}

async function loadTfjsNode(pkg: string): Promise<{ tfBackend: string; detail: string }> {
  try {
    require.resolve(pkg);
  } catch {
    throw new SrganError('SRGAN_ERR_BACKEND', `${pkg} is not installed`);
  }
  try {
    await import(pkg);
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_BACKEND', `${pkg} is installed but does not load: ${firstLine(cause)}`, { cause });
  }
  if (!(await tf.setBackend('tensorflow'))) throw new SrganError('SRGAN_ERR_BACKEND', `${pkg} loaded but its backend did not initialise`);
  registerBroadcastGradients();
  return { tfBackend: 'tensorflow', detail: `${pkg} (libtensorflow)` };
}

/**
 * The Vulkan driver manifests (ICD JSON files) the Vulkan loader would find: the files or folders in
 * VK_DRIVER_FILES / VK_ICD_FILENAMES / VK_ADD_DRIVER_FILES, else its search folders on Linux
 * ($XDG_CONFIG_HOME, $XDG_CONFIG_DIRS, /etc, $XDG_DATA_HOME, $XDG_DATA_DIRS, each + vulkan/icd.d).
 */
export function vulkanDriverManifests(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = (v: string | undefined) => (v ?? '').split(':').filter(Boolean);
  const jsonIn = (p: string): string[] => {
    if (p.endsWith('.json')) return existsSync(p) ? [p] : [];
    try {
      return readdirSync(p)
        .filter((f) => f.endsWith('.json'))
        .map((f) => join(p, f));
    } catch {
      return [];
    }
  };
  const explicit = [...list(env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES), ...list(env.VK_ADD_DRIVER_FILES)];
  if (explicit.length > 0) return explicit.flatMap(jsonIn);
  const home = env.HOME ?? homedir();
  const dirs = [
    env.XDG_CONFIG_HOME ?? join(home, '.config'),
    ...list(env.XDG_CONFIG_DIRS ?? '/etc/xdg'),
    '/usr/local/etc',
    '/etc',
    env.XDG_DATA_HOME ?? join(home, '.local/share'),
    ...list(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share'),
  ];
  return [...new Set(dirs)].flatMap((d) => jsonIn(join(d, 'vulkan', 'icd.d')));
}

/** Whether the software-adapter switch is on (SRGAN_WEBGPU_SOFTWARE=1, true or yes). */
export function softwareAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env[SOFTWARE_ADAPTER_ENV] ?? '');
}

async function loadWebgpu(allowSoftware: boolean): Promise<{ tfBackend: string; detail: string; adapter: AdapterInfo }> {
  // The Vulkan loader reads VK_ICD_FILENAMES when Dawn creates its instance, so setting it here is in time.
  if (allowSoftware && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  let webgpu: { create(flags: string[]): GpuLike; globals: Record<string, unknown> };
  try {
    const pkg = 'webgpu'; // optional dependency: resolved at run time only
    webgpu = (await import(pkg)) as typeof webgpu;
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_BACKEND', `the webgpu package (Dawn) does not load: ${firstLine(cause)}`, { cause });
  }
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]);
  const adapter = await Promise.race([
    gpu.requestAdapter({ powerPreference: 'high-performance' }),
    new Promise<null>((resolve) => setTimeout(resolve, ADAPTER_TIMEOUT_MS, null).unref()),
  ]);
  if (!adapter) {
    throw new SrganError(
      'SRGAN_ERR_BACKEND',
      'no GPU adapter: Dawn found no usable Vulkan driver (an NVIDIA or AMD Vulkan ICD and the Vulkan loader, libvulkan.so.1, are needed)',
    );
  }
  const info = describeAdapter(adapter);
  const what = `${info.vendor} ${info.architecture} (${info.description}${info.software ? '; software adapter' : ''})`;
  if (info.software && !allowSoftware) {
    throw new SrganError(
      'SRGAN_ERR_BACKEND',
      `the only GPU adapter is a software one, ${what}: far slower than the CPU rungs, so it is used only with ` +
        `--backend webgpu and ${SOFTWARE_ADAPTER_ENV}=1 (for tests)`,
    );
  }
  // tfjs-backend-webgpu looks for navigator.gpu, which Node 20 lacks.
  const nav = ((globalThis as unknown as { navigator?: Record<string, unknown> }).navigator ??= {});
  Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('setBackend("webgpu") returned false');
    await tf.ready();
  } catch (cause) {
    throw new SrganError('SRGAN_ERR_BACKEND', `the GPU adapter was found but tfjs-backend-webgpu did not start: ${firstLine(cause)}`, {
      cause,
    });
  }
  registerBroadcastGradients();
  registerWebgpuKernels();
  watchGpuErrors();
  return { tfBackend: 'webgpu', detail: `webgpu on Dawn, ${what}`, adapter: info };
}

const gpuErrors: string[] = [];

/**
 * Dawn reports a shader that does not compile or a command it rejects as an "uncaptured error" event,
 * not as an exception: the work is skipped and tfjs reads stale memory. We collect them, and the
 * trainer fails with the first (takeGpuErrors) rather than train on garbage.
 */
function watchGpuErrors(): void {
  const device = (tf.backend() as unknown as { device?: { onuncapturederror?: unknown } }).device;
  if (!device) return;
  device.onuncapturederror = (event: { error?: { message?: string } }) => {
    if (gpuErrors.length < 16) gpuErrors.push(firstLine(event.error?.message ?? 'unknown GPU error'));
  };
}

/** The GPU errors reported since the last call (webgpu rung; empty elsewhere). */
export function takeGpuErrors(): string[] {
  return gpuErrors.splice(0);
}

/** Dawn's adapter info; `software` from isFallbackAdapter, or a known CPU driver's name when Dawn does not say. */
function describeAdapter(adapter: unknown): AdapterInfo {
  const a = adapter as { info?: Record<string, unknown>; isFallbackAdapter?: boolean };
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const info = a.info ?? {};
  const vendor = text(info.vendor) || 'unknown vendor';
  const architecture = text(info.architecture) || 'unknown architecture';
  const description = text(info.description) || text(info.device) || 'no description';
  const software =
    info.isFallbackAdapter === true ||
    a.isFallbackAdapter === true ||
    /swiftshader|llvmpipe|lavapipe|softpipe|warp/i.test(`${vendor} ${architecture} ${description}`);
  return { vendor, architecture, description, software };
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<unknown>;
}

/**
 * Makes the requested backend (or, for 'auto', the best one that loads) tfjs' backend in this thread.
 * Throws SrganError(SRGAN_ERR_BACKEND) when a forced backend cannot load, or no rung can.
 */
export async function selectBackend(request: BackendRequest): Promise<BackendSelection> {
  if (request !== 'auto' && !BACKEND_NAMES.includes(request)) {
    throw new TypeError(`backend must be "auto" or one of ${BACKEND_NAMES.join(', ')}, got ${JSON.stringify(request)}`);
  }
  const skipped: BackendSelection['skipped'] = [];
  for (const name of request === 'auto' ? AUTO_ORDER : [request]) {
    try {
      const { tfBackend, detail, adapter } = await load(name, request !== 'auto');
      const why = skipped.map((s) => `${s.name}: ${s.why}`).join('; ');
      return { name, tfBackend, skipped, reason: why ? `${detail} (skipped ${why})` : detail, ...(adapter ? { adapter } : {}) };
    } catch (err) {
      if (request !== 'auto') {
        throw new SrganError('SRGAN_ERR_BACKEND', `backend "${name}" cannot be used: ${firstLine(err)}`, { cause: err });
      }
      skipped.push({ name, why: firstLine(err) });
    }
  }
  throw new SrganError('SRGAN_ERR_BACKEND', `no compute backend could be loaded: ${skipped.map((s) => `${s.name}: ${s.why}`).join('; ')}`);
}

/**
 * Sets what convolutions compute in (config `precision`) on the rung `selection` loaded; returns the
 * words its reason gets, or null for fp32. bf16 runs on the wasm-native rung only, and only where the
 * CPU has bf16 units: otherwise SRGAN_ERR_BACKEND says why, rather than falling back to slow code.
 */
export function applyPrecision(selection: BackendSelection, precision: 'fp32' | 'bf16'): string | null {
  if (precision === 'fp32') return null;
  if (selection.name !== 'wasm-native') {
    throw new SrganError(
      'SRGAN_ERR_BACKEND',
      `precision "bf16" runs on the wasm-native rung (oneDNN's bf16 convolutions); this run is on ${selection.name}, which computes in fp32: give --precision fp32, or --backend wasm-native`,
    );
  }
  try {
    configureNative({ precision: 'bf16' });
  } catch (err) {
    throw new SrganError('SRGAN_ERR_BACKEND', `precision "bf16" cannot be used: ${firstLine(err)}; give --precision fp32`, { cause: err });
  }
  return 'convolutions in bf16, those with 16 channels or fewer on a side in fp32 (fp32 weights, optimiser state and losses)';
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] ?? text;
}
