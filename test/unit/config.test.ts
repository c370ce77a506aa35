import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/resolve.js';
import { PRESETS } from '../../src/config/presets.js';

describe('resolveConfig', () => {
  it('returns the default preset when given nothing', () => {
    expect(resolveConfig({})).toEqual(PRESETS['espcn-x2-fast']);
  });

  it('merges overrides, including nested fields', () => {
    const c = resolveConfig({
      batchSize: 4,
      generator: { channels: 16 },
      phases: [
        { steps: 10, lrG: 1e-4, lrD: 1e-5 },
        { steps: null, lrG: 1e-5, lrD: 1e-6 },
      ],
    });
    expect(c.batchSize).toBe(4);
    expect(c.generator).toEqual({ ...PRESETS['espcn-x2-fast'].generator, channels: 16 });
    expect(c.generator.kind).toBe('espcn');
    expect(c.phases).toHaveLength(2);
    expect(PRESETS['espcn-x2-fast']?.generator.channels).toBe(64); // the preset itself is untouched
  });

  it("switching a network kind starts from that kind's defaults", () => {
    const c = resolveConfig({ generator: { kind: 'final', blocks: 2 }, discriminator: { kind: 'unet' }, maxShift: 8 });
    expect(c.generator).toEqual({ kind: 'final', channels: 64, blocks: 2, dilatedBlocks: true });
    expect(c.discriminator).toEqual({ kind: 'unet', channels: 64 });
    expect(() => resolveConfig({ generator: { kind: 'final', mid: 3 } })).toThrow(/unknown config field "generator.mid"/);
    expect(() => resolveConfig({ generator: { kind: 'gan9000' } })).toThrow(/"generator.kind" must be one of "espcn", "final", "rrdbnet"/);
  });

  it('every preset is valid as it stands, and presets differ where the article says', () => {
    const fast = resolveConfig({ preset: 'espcn-x2-fast' });
    const seed = resolveConfig({ preset: 'seed-final-x2' });
    const esrgan = resolveConfig({ preset: 'esrgan-x4' });
    expect(seed).toMatchObject({
      batchSize: 1,
      dStepsPerG: 10,
      advWeight: 3e-4,
      lrReferenceBatch: 8,
      resetOptimizers: true,
      jpeg: true,
      maxShift: 8,
    });
    expect(seed.generator.kind).toBe('final');
    expect(seed.discriminator.kind).toBe('dilated');
    expect(seed.phases.reduce((n, p) => n + (p.steps ?? 0), 0)).toBe(360_100);
    expect(esrgan).toMatchObject({ scale: 4, generator: { kind: 'rrdbnet', blocks: 23 } });
    expect(fast.perceptual.kind).toBe('off');
  });

  it.each([
    [{ batchSize: 0 }, /"batchSize" must be an integer in 1\.\.256, got 0/],
    [{ batchSize: '8' }, /"batchSize".*got "8"/],
    [{ batchsize: 8 }, /unknown config field "batchsize" \(did you mean "batchSize"\?\)/],
    [{ generator: { chanels: 8 } }, /unknown config field "generator.chanels" \(did you mean "channels"\?\)/],
    [{ preset: 'nope' }, /"preset" must be one of espcn-x2-fast/],
    [{ patchSize: 60 }, /"patchSize" must be a multiple of 16/],
    [{ phases: [] }, /"phases"/],
    [
      {
        phases: [
          { steps: null, lrG: 1, lrD: 1 },
          { steps: 1, lrG: 1, lrD: 1 },
        ],
      },
      /"phases\[0\].steps"/,
    ],
    [{ phases: [{ steps: 1, lrG: 1, lrD: 1, lrX: 2 }] }, /unknown config field "phases\[0\].lrX"/],
    [{ preset: 'seed-final-x2', scale: 4 }, /"scale" must be 2 for the final generator/],
    [{ perceptual: { kind: 'vgg16' } }, /"perceptual.path" must be the path of a VGG16/],
    [{ jpeg: 'yes' }, /"jpeg" must be true or false/],
    [{ emaDecay: 1 }, /"emaDecay"/],
    [{ backend: 'tpu' }, /"backend" must be one of "auto", "tfjs-node-gpu", "tfjs-node", "webgpu", "wasm-native", "wasm", "cpu"/],
    [{ maxShift: 40 }, /"maxShift"/],
    [[1, 2], /"config" must be an object/],
  ])('rejects %j naming the field', (overrides, pattern) => {
    expect(() => resolveConfig(overrides)).toThrow(pattern);
  });
});
