import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { selectBackend, vulkanDriverManifests } from '../../src/models/backend/ladder.js';
import { DIST, tempDir } from '../support/tmp.js';
import { loadNativeKernels } from '../../src/models/backend/native/kernels.js';

describe('selectBackend', () => {
  it('refuses an unknown name', async () => {
    await expect(selectBackend('tpu' as never)).rejects.toThrow(TypeError);
  });

  it('a forced rung that is not installed fails clearly', async () => {
    await expect(selectBackend('tfjs-node-gpu')).rejects.toMatchObject({
      code: 'SRGAN_ERR_BACKEND',
      message: expect.stringMatching(/backend "tfjs-node-gpu" cannot be used: @tensorflow\/tfjs-node-gpu is not installed/),
    });
  });

  it('webgpu is used only with a GPU adapter, and says so when there is none', async () => {
    const r = await selectBackend('webgpu').then(
      (sel) => ({ ok: true as const, sel }),
      (err: Error) => ({ ok: false as const, err }),
    );
    if (r.ok)
      expect(r.sel.tfBackend).toBe('webgpu'); // a machine with a Vulkan GPU
    else expect(r.err.message).toMatch(/backend "webgpu" cannot be used: (no GPU adapter|the webgpu package)/);
    await selectBackend('wasm'); // leave a CPU backend in force for the tests below
  });

  it('auto takes the best rung that loads and names every rung it skipped, with the reason', async () => {
    const sel = await selectBackend('auto');
    const native = loadNativeKernels();
    const expected = native.ok ? 'wasm-native' : 'wasm';
    expect(sel.name).toBe(expected);
    expect(tf.getBackend()).toBe('wasm');
    const skipped = Object.fromEntries(sel.skipped.map((s) => [s.name, s.why]));
    expect(skipped['tfjs-node-gpu']).toMatch(/not installed/);
    expect(skipped['tfjs-node']).toMatch(/not installed/);
    expect(Object.keys(skipped)).toContain('webgpu');
    if (!native.ok) expect(skipped['wasm-native']).toBe(native.reason);
    expect(sel.reason).toMatch(/skipped tfjs-node-gpu: .*not installed; tfjs-node: .*; webgpu: /);
    // It trains: a gradient through a convolution works on the chosen rung.
    const x = tf.randomUniform([1, 6, 6, 2]);
    const w = tf.variable(tf.randomUniform([3, 3, 2, 2]));
    const { grads } = tf.variableGrads(() => tf.sum(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')) as tf.Scalar, [w]);
    expect(grads[w.name].shape).toEqual([3, 3, 2, 2]);
  });

  it('cpu is there when asked for', async () => {
    const sel = await selectBackend('cpu');
    expect(sel).toMatchObject({ name: 'cpu', tfBackend: 'cpu', skipped: [] });
    await selectBackend('wasm');
  });

  it('finds Vulkan driver manifests where the loader looks, or where VK_DRIVER_FILES points', () => {
    const tmp = tempDir('srgan-icd-');
    try {
      const data = path.join(tmp.dir, 'share');
      const none = { HOME: tmp.dir, XDG_DATA_DIRS: data, XDG_CONFIG_DIRS: path.join(tmp.dir, 'xdg') };
      const system = vulkanDriverManifests({ HOME: tmp.dir, XDG_DATA_DIRS: '/nowhere', XDG_CONFIG_DIRS: '/nowhere' }); // /etc's
      expect(vulkanDriverManifests(none)).toEqual(system);
      fs.mkdirSync(path.join(data, 'vulkan', 'icd.d'), { recursive: true });
      const icd = path.join(data, 'vulkan', 'icd.d', 'nvidia_icd.json');
      fs.writeFileSync(icd, '{}');
      fs.writeFileSync(path.join(data, 'vulkan', 'icd.d', 'README'), '');
      expect(vulkanDriverManifests(none)).toEqual([...system, icd]);
      // The variables replace the search, as they do for the loader.
      expect(vulkanDriverManifests({ ...none, VK_DRIVER_FILES: path.join(tmp.dir, 'missing.json') })).toEqual([]);
      expect(vulkanDriverManifests({ ...none, VK_ICD_FILENAMES: `${path.join(tmp.dir, 'missing.json')}:${icd}` })).toEqual([icd]);
      expect(vulkanDriverManifests({ ...none, VK_DRIVER_FILES: path.dirname(icd) })).toEqual([icd]);
    } finally {
      tmp.cleanup();
    }
  });

  it('auto does not load Dawn where no Vulkan driver is installed: nothing of the loader reaches the terminal', (ctx) => {
    if (vulkanDriverManifests().length > 0) return ctx.skip(); // a machine with a Vulkan driver
    const script = `const { selectBackend } = await import(${JSON.stringify(path.join(DIST, 'models/backend/ladder.js'))});
      console.log(JSON.stringify(await selectBackend('auto')));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const sel = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { skipped: { name: string; why: string }[] };
    expect(sel.skipped.find((s) => s.name === 'webgpu')?.why).toBe(
      'no Vulkan driver is installed (no ICD manifest where the Vulkan loader looks)',
    );
  });
});
