// `srgan models`: the presets, with their networks' parameter counts and the FLOPs of one training step.

import { PRESETS, type RunConfig } from '../config/presets.js';

export interface PresetSummary {
  preset: string;
  scale: number;
  batchSize: number;
  patchSize: number;
  generator: { kind: string; params: number; gflopsForward: number };
  discriminator: { kind: string; params: number; gflopsForward: number };
  dStepsPerG: number;
  /**
   * GFLOP of one generator step plus its D steps: G forward + backward (3× forward) on the batch, D
   * twice (fake and real crops) forward + backward in the G step and in each D step. The perceptual
   * network is not counted.
   */
  gflopsPerStep: number;
}

/** Builds each preset's networks once (on the cpu backend) to count parameters and FLOPs. */
export async function summarizePresets(): Promise<PresetSummary[]> {
  const { initBackend } = await import('../models/backend/init.js');
  const { buildDiscriminator, buildGenerator } = await import('../models/archs/build.js');
  await initBackend('cpu');
  const out: PresetSummary[] = [];
  for (const cfg of Object.values(PRESETS) as RunConfig[]) {
    const G = buildGenerator(cfg.generator, cfg.scale, 1);
    const D = buildDiscriminator(cfg.discriminator, 2);
    const lrSide = cfg.patchSize / cfg.scale;
    const dSide = cfg.patchSize - cfg.maxShift;
    const gF = G.flopsPerForward(lrSide, lrSide);
    const dF = D.flopsPerForward(dSide, dSide);
    const adversarial = cfg.advWeight > 0 ? 1 : 0;
    const perImage = 3 * gF + adversarial * (1 + cfg.dStepsPerG) * 2 * 3 * dF;
    out.push({
      preset: cfg.preset,
      scale: cfg.scale,
      batchSize: cfg.batchSize,
      patchSize: cfg.patchSize,
      generator: { kind: cfg.generator.kind, params: G.paramCount, gflopsForward: round(gF / 1e9) },
      discriminator: { kind: cfg.discriminator.kind, params: D.paramCount, gflopsForward: round(dF / 1e9) },
      dStepsPerG: cfg.dStepsPerG,
      gflopsPerStep: round((perImage * cfg.batchSize) / 1e9),
    });
    G.dispose();
    D.dispose();
  }
  return out;
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
