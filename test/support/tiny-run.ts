// A run config small enough that a step takes milliseconds on the wasm rung, for tests that need a real
// daemon training: 32-px patches in pairs, an 8-channel ESPCN, a 4-wide patch D, one loader thread, no
// previews, validation or timed checkpoints unless `extra` asks for them.

export function tinyRun(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    backend: 'wasm',
    dataDir,
    patchSize: 32,
    batchSize: 2,
    generator: { kind: 'espcn', channels: 8, layout: 'plain', skip: true },
    discriminator: { kind: 'patch', mid: 4 },
    loaderWorkers: 1,
    patchesPerImage: 2,
    previewEvery: 0,
    checkpointMinutes: 0,
    valEvery: 0,
    ...extra,
  };
}
