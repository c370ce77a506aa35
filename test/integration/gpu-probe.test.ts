// The GPU probe bundle (`npm run bench -- gpu-probe --pack DIR`, docs/backends.md "GPU probe") runs
// from a folder outside the checkout, with its own node and Dawn, and ends with one JSON line, on
// SwiftShader's software adapter here: what a machine with a card and no network gets. `.ci/run` sets
// SRGAN_REQUIRE_WEBGPU=1: there it must run.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';

const REQUIRE = process.env.SRGAN_REQUIRE_WEBGPU === '1';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const tmp = tempDir('srgan-gpu-probe-');
const bundle = path.join(tmp.dir, 'probe');
let pack: { bytes: number; files: Record<string, number> };

beforeAll(() => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bench/gpu-probe.mjs'), '--pack', bundle, '--node', 'gz'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(0);
  pack = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}, 130_000);
afterAll(() => tmp.cleanup());

/** Runs the bundle as a device machine would: `sh run.sh`, from another folder, no repo in reach. */
function runProbe(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync('sh', [path.join(bundle, 'run.sh'), ...args], { cwd: tmp.dir, encoding: 'utf8', timeout: 300_000, env });
  const lines = r.stdout.trim().split('\n');
  return {
    status: r.status,
    out: r.stdout,
    err: r.stderr,
    json: JSON.parse(lines.at(-1)!) as { error?: string } & Record<string, unknown>,
  };
}

const baseEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.SRGAN_WEBGPU_SOFTWARE;
  delete env.VK_ICD_FILENAMES;
  return env;
};

describe('gpu-probe bundle', () => {
  it('packs under the 64 MiB a device call carries, with its own node, Dawn and Vulkan loader', () => {
    expect(Object.keys(pack.files).sort()).toEqual(
      [
        'lib/libGLdispatch.so.0',
        'lib/libvulkan.so.1',
        'node.gz',
        'probe.mjs',
        'run.sh',
        'webgpu/dawn.node.gz',
        'webgpu/index.js',
        'webgpu/package.json',
      ].sort(),
    );
    expect(pack.bytes).toBeLessThan(60 * 2 ** 20);
    // Nothing of the checkout or node_modules is needed beside it.
    expect(fs.existsSync(path.join(tmp.dir, 'node_modules'))).toBe(false);
  });

  it('refuses a software adapter without the switch, and still ends with its JSON line', () => {
    const r = runProbe(['--quick', '--models', 'espcn'], baseEnv());
    expect(r.status).toBe(1);
    expect(r.json).toMatchObject({ bench: 'gpu-probe', ok: false });
    expect(r.json.error).toMatch(/software|no GPU adapter/);
  }, 120_000);

  it('times the reference step on the adapter and reports GFLOP/s', (ctx) => {
    const r = runProbe(['--quick', '--chunk', '1', '--models', 'espcn'], { ...baseEnv(), SRGAN_WEBGPU_SOFTWARE: '1' });
    if (r.json.error && /no GPU adapter/.test(r.json.error) && !REQUIRE) {
      console.log(`skipped: ${r.json.error}`);
      return ctx.skip();
    }
    expect(r.status, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^adapter: webgpu on Dawn, .*software adapter/m);
    expect(r.json).toMatchObject({ bench: 'gpu-probe', ok: true, adapter: { software: true }, peak: { tflops: null } });
    const [row] = r.json.models as Record<string, number>[];
    expect(row).toMatchObject({ model: 'espcn', gflop: 1.312, steps: 2, ofPeak: null });
    expect(row.ms).toBeGreaterThan(0);
    expect(row.firstMs).toBeGreaterThan(0);
    expect(row.gflops).toBeCloseTo(1.312 / (row.ms / 1000), 2);
  }, 300_000);
});
