// The registry of training presets: pure data. `srgan start --preset NAME` picks one; a config file or
// flags override single fields.

import type { Phase } from '../actors/scheduler.js';
import type { BackendRequest } from './backend-names.js';

export interface RunConfig {
  preset: string;
  /** Upscale factor. */
  scale: 2;
  /** HR patch side in pixels (the LR input is patchSize / scale). */
  patchSize: number;
  batchSize: number;
  generator: { kind: 'espcn'; channels: number };
  discriminator: { kind: 'patch'; mid: number };
  /** D steps per G step (SEED_SPEC §6.1: the G step's output is reused, detached). */
  dStepsPerG: number;
  phases: Phase[];
  /** Weight of the capped relativistic adversarial term (SEED_SPEC §4.3). */
  advWeight: number;
  /** Max random shift of the shift crop before D (SEED_SPEC §4.4). */
  maxShift: number;
  logEvery: number;
  previewEvery: number;
  maxSteps: number | null;
  seed: number;
  /** Directory of training images; null = the built-in demo set. */
  dataDir: string | null;
  loaderWorkers: number;
  /** Patches cut from an image each time a loader visits it. */
  patchesPerImage: number;
  /** Ring buffer size in MiB. */
  ringMiB: number;
  /** Compute backend: 'auto' takes the best rung that loads (models/ladder.ts). */
  backend: BackendRequest;
  port: number;
}

/** `espcn-x2-fast`: small enough to show real progress on a 2-core CPU within minutes. */
const ESPCN_X2_FAST: RunConfig = {
  preset: 'espcn-x2-fast',
  scale: 2,
  patchSize: 64,
  batchSize: 8,
  generator: { kind: 'espcn', channels: 32 },
  discriminator: { kind: 'patch', mid: 16 },
  dStepsPerG: 2,
  phases: [{ steps: null, lrG: 1e-3, lrD: 1e-4 }],
  advWeight: 1e-3,
  maxShift: 4,
  logEvery: 1,
  previewEvery: 25,
  maxSteps: null,
  seed: 1,
  dataDir: null,
  loaderWorkers: 1,
  patchesPerImage: 8,
  ringMiB: 8,
  backend: 'auto',
  port: 0,
};

export const PRESETS: Readonly<Record<string, Readonly<RunConfig>>> = Object.freeze({
  'espcn-x2-fast': Object.freeze(ESPCN_X2_FAST),
});
