// `srgan start --init FILE`: fine-tuning from a state dict that PyTorch wrote (test/fixtures/
// esrgan_reference.py), as .safetensors or as PyTorch's own .pth. The daemon builds the generator the file holds (kind, size, scale from its
// tensors), starts training from its weights, and `srgan export` of the run gives them back: with the
// learning rate at 0 and no EMA, byte for byte. Files that are no generator, or another format, are
// refused before any daemon starts.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readSafetensors } from '../../src/models/io/safetensors.js';
import { readStateDictFile } from '../../src/models/io/model-file.js';
import { hasExited } from '../../src/util/lock-file.js';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { writePhotos } from '../support/photos.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
const tmp = tempDir('srgan-init-');
const photos = path.join(tmp.dir, 'photos');
const pids: number[] = [];

/** Training that changes nothing: lr 0, no EMA, no adversarial term; two steps, a checkpoint after each. */
const FROZEN = {
  backend: 'wasm',
  dataDir: photos,
  patchSize: 32,
  batchSize: 2,
  discriminator: { kind: 'patch', mid: 4 },
  phases: [{ steps: null, lrG: 0, lrD: 0 }],
  advWeight: 0,
  emaDecay: null,
  previewEvery: 0,
  checkpointEvery: 1,
  checkpointMinutes: 0,
  valEvery: 0,
  maxSteps: 2,
};

beforeAll(async () => {
  await writePhotos(photos, 4, 96, 80);
}, 60_000);

afterAll(() => {
  for (const pid of pids) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

describe('srgan start --init', () => {
  for (const fixture of ['compact-tiny-x2.safetensors', 'esrgan-tiny-x4.safetensors', 'compact-tiny-x4.pth']) {
    it(`${fixture}: trains the generator the file holds, from its weights, and exports them back unchanged`, async () => {
      const home = path.join(tmp.dir, `home-${fixture}`);
      const config = path.join(tmp.dir, `${fixture}.json`);
      fs.writeFileSync(config, JSON.stringify(FROZEN));
      const init = path.join(FIXTURES, fixture);
      const info = srganJson<{ pid: number; runId: string }>(home, ['start', '--config', config, '--init', init]);
      pids.push(info.pid);
      await waitFor('the run to stop at maxSteps', () => hasExited(info.pid), 120_000, 100);

      const run = srganJson<{ run: { config: { generator: unknown; scale: number; init: string } } }>(home, ['show', info.runId]);
      const want = fixture.startsWith('compact')
        ? { generator: { kind: 'compact', channels: 8, convs: 2 }, scale: fixture.includes('x4') ? 4 : 2 }
        : { generator: { kind: 'rrdbnet', channels: 8, growth: 4, blocks: 2 }, scale: 4 };
      expect({ generator: run.run.config.generator, scale: run.run.config.scale }).toEqual(want);
      expect(run.run.config.init).toBe(init);

      const out = path.join(tmp.dir, `${fixture}.out.safetensors`);
      const r = srgan(home, ['export', info.runId, '--out', out]);
      expect(r.status, r.stderr).toBe(0);
      const original = readStateDictFile(init).tensors;
      const exported = new Map(readSafetensors(out).tensors.map((t) => [t.name, t]));
      expect([...exported.keys()].sort()).toEqual(original.map((t) => t.name).sort());
      for (const t of original) {
        expect(exported.get(t.name)!.shape, t.name).toEqual(t.shape);
        expect(Buffer.from(exported.get(t.name)!.data.buffer).equals(Buffer.from(t.data.buffer)), t.name).toBe(true);
      }
    }, 180_000);
  }

  it('refuses a file that holds no generator, another format, and --init with --resume, before any daemon starts', () => {
    const home = path.join(tmp.dir, 'home-bad');
    const foreign = path.join(tmp.dir, 'foreign.safetensors');
    const json = Buffer.from(JSON.stringify({ 'encoder.weight': { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(foreign, Buffer.concat([len, json, Buffer.alloc(4)]));
    const r = srgan(home, ['start', '--init', foreign]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/SRGAN_ERR_CHECKPOINT.*foreign\.safetensors: not a generator srgan can load.*it has encoder\.weight/);
    const other = srgan(home, ['start', '--init', path.join(tmp.dir, 'model.onnx')]);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/SRGAN_ERR_CONFIG.*--init takes a \.safetensors or \.pth state dict/);
    const hostile = srgan(home, ['start', '--init', path.join(FIXTURES, 'hostile.pth')]);
    expect(hostile.status).toBe(1);
    expect(hostile.stderr).toMatch(/SRGAN_ERR_CHECKPOINT.*its pickle asks for (posix|os)\.system/);
    const both = srgan(home, ['start', '--resume', 'x', '--init', foreign]);
    expect(both.status).not.toBe(0);
    expect(both.stderr).toMatch(/--init cannot be given with --resume/);
    expect(fs.existsSync(path.join(home, 'daemon.json'))).toBe(false);
  });
});
