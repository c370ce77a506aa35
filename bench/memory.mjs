// Tensor count and RSS over 500 training steps of the espcn-x2-fast GAN step, on every CPU rung.
//
//   npm run bench -- memory [--steps 500]
//
// Each rung runs in its own process. "flat" means the tensor count at the end equals the count after
// the first steps (optimizer slots exist by then), and RSS grew by less than 5% over the second half of
// the run (allocators and the wasm heap settle in the first steps; a leak keeps growing).

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const STEPS = Number(opt('steps', 500));

if (args.includes('--child')) {
  const tf = await import('@tensorflow/tfjs-core');
  const { resolveConfig } = await import('../dist/config/resolve.js');
  const { selectBackend } = await import('../dist/models/backend/ladder.js');
  const { Gan } = await import('../dist/models/train/gan.js');
  const { createEma } = await import('../dist/models/train/ema.js');
  const { seededUniform } = await import('../dist/models/archs/ops.js');
  const config = resolveConfig({ backend: opt('child') });
  const sel = await selectBackend(config.backend);
  const gan = new Gan(config, { ema: (G) => createEma(G.variables, config.emaDecay ?? 0.99) });
  const P = config.patchSize;
  const hr = tf.add(seededUniform([config.batchSize, P, P, 3], 0.5, 1), 0.5);
  const lr = tf.avgPool(hr, 2, 2, 'valid');
  const spec = { lrG: 1e-3, lrD: 1e-4, dSteps: config.dStepsPerG };
  // A full GC before each sample (the child runs with --expose-gc): what is measured is memory still
  // held, not how far V8 let its heap grow before collecting.
  const sample = (step) => {
    globalThis.gc?.();
    return { step, tensors: tf.memory().numTensors, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) };
  };
  const marks = [];
  for (let step = 1; step <= STEPS; step++) {
    gan.step(hr, lr, spec);
    if (step === 5 || step % Math.max(1, Math.floor(STEPS / 10)) === 0) marks.push(sample(step));
  }
  console.log(JSON.stringify({ backend: sel.name, marks }));
  process.exit(0);
}

const rows = [];
for (const rung of opt('rungs', 'wasm-native,wasm,cpu').split(',')) {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', rung, '--steps', String(STEPS)], {
    encoding: 'utf8',
    timeout: 60 * 60_000,
  });
  let res;
  try {
    res = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    console.error(`${rung}: unavailable (${(r.stderr || '').trim().split('\n').pop()})`);
    continue;
  }
  const a = res.marks[0];
  const c = res.marks.at(-1);
  const b = res.marks.find((m) => m.step >= STEPS / 2) ?? c;
  const flat = c.tensors === a.tensors && c.rssMiB < b.rssMiB * 1.05;
  rows.push({ backend: res.backend, tensors: [a.tensors, c.tensors], rssMiB: res.marks.map((m) => [m.step, m.rssMiB]), flat });
  console.log(
    `${res.backend.padEnd(12)} tensors ${a.tensors} → ${c.tensors}   RSS ${b.rssMiB} → ${c.rssMiB} MiB (step ${b.step} → ${c.step})   ${flat ? 'flat' : 'GROWING'}`,
  );
  console.log(`${''.padEnd(12)} RSS by step: ${res.marks.map((m) => `${m.step}:${m.rssMiB}`).join(' ')}`);
}
console.log(JSON.stringify({ bench: 'memory', steps: STEPS, rows }));
