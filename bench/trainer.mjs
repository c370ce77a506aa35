// One training step of three models on every rung available (the CPU rungs, and webgpu where Dawn finds
// a GPU adapter: a software one too with SRGAN_WEBGPU_SOFTWARE=1, docs/backends.md), beside PyTorch CPU.
//
//   npm run bench -- trainer [--models espcn,d_final,g_final] [--rounds 2] [--quick]
//                            [--rungs webgpu,wasm-native,wasm-native-bf16,wasm]
//
//   Rows: each rung in fp32; wasm-native-bf16, the native rung with bf16 convolutions (config precision
//   "bf16", where the CPU has bf16 units); PyTorch fp32 ('torch') and under CPU autocast to bfloat16
//   ('torch-bf16'). Ratios are to PyTorch fp32's speed and to autocast's.
//
//   espcn, d_final, g_final: the steps of bench/lib/steps.mjs (the reference step, the seed's D and its
//   final G at bench size); the seed preset's whole steps are there too (seed_g, seed_d, seed_step).
//
// Each rung runs in its own process (a process holds one tfjs backend), rounds interleave the rungs and
// PyTorch so that machine noise hits them alike, and the median over rounds is reported. PyTorch runs
// with as many threads as this machine has cores (wasm is single-threaded; oneDNN uses the cores).
// Prints a table (ms/step, GFLOP/s, ratio to PyTorch's speed) and, last, one JSON line.

import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const QUICK = args.includes('--quick');
const MODELS = opt('models', 'espcn,d_final,g_final').split(',');
const ROUNDS = Number(opt('rounds', QUICK ? 1 : 2));
const STEPS = { espcn: QUICK ? 5 : 20, d_final: QUICK ? 2 : 4, g_final: QUICK ? 1 : 3 };
const THREADS = os.availableParallelism();

if (args.includes('--child')) {
  await child(opt('child'), opt('model'), Number(opt('steps')));
  process.exit(0);
}

async function child(rung, model, steps) {
  const tf = await import('@tensorflow/tfjs-core');
  const { selectBackend } = await import('../dist/models/backend/ladder.js');
  const bf16 = rung === 'wasm-native-bf16';
  const sel = await selectBackend(bf16 ? 'wasm-native' : rung);
  if (bf16) {
    const { configureNative } = await import('../dist/models/backend/native/addon.js');
    configureNative({ precision: 'bf16' });
  }
  const { buildStep } = await import('./lib/steps.mjs');
  const { step, sync, gflop } = await buildStep(model);
  const t1 = performance.now();
  step(); // warm-up: kernels, caches, optimizer slots (on a GPU: shader compilation)
  await sync();
  const firstMs = performance.now() - t1;
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    step();
    await sync();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      model,
      backend: bf16 ? rung : sel.name,
      ms: times[Math.floor(times.length / 2)],
      firstMs,
      gflop,
      tensors: tf.memory().numTensors,
    }),
  );
}

// ---- parent ---------------------------------------------------------------------------------------

function runChild(rung, model) {
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--child', rung, '--model', model, '--steps', String(STEPS[model])],
    {
      encoding: 'utf8',
      timeout: 30 * 60_000,
    },
  );
  const line = (r.stdout ?? '').trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    return { model, backend: rung, error: (r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ') };
  }
}

function runTorch(model, autocast = false) {
  const py = '/usr/bin/python3';
  if (!fs.existsSync(py)) return { model, backend: 'torch', error: `${py} not found` };
  // The same OpenMP wait policy as our oneDNN addon sets: spinning threads collapse on a busy machine.
  const r = spawnSync(
    py,
    [
      path.join(here, 'torch_step.py'),
      '--threads',
      String(THREADS),
      '--steps',
      String(STEPS[model]),
      '--warmup',
      '2',
      '--models',
      model,
      ...(autocast ? ['--autocast'] : []),
    ],
    {
      encoding: 'utf8',
      timeout: 30 * 60_000,
      env: { OMP_WAIT_POLICY: 'PASSIVE', ...process.env },
    },
  );
  if (r.status !== 0) return { model, backend: 'torch', error: (r.stderr || '').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const torchOk = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const rungs = opt('rungs', 'webgpu,wasm-native,wasm-native-bf16,wasm')
  .split(',')
  .filter((rung) => {
    const probe = runChild(rung, 'espcn');
    if (probe.error) console.error(`${rung}: unavailable (${probe.error})`);
    return !probe.error;
  });
if (!torchOk) console.error('PyTorch: /usr/bin/python3 cannot import torch (apt-get install python3-torch); no ratios');

const samples = new Map(); // "model|backend" -> { ms: [], gflop }
const add = (r) => {
  if (r.error) {
    console.error(`${r.model} on ${r.backend}: ${r.error}`);
    return;
  }
  const key = `${r.model}|${r.backend}`;
  const s = samples.get(key) ?? { model: r.model, backend: r.backend, ms: [], gflop: r.gflop };
  s.ms.push(r.ms);
  s.firstMs = r.firstMs;
  samples.set(key, s);
};
for (let round = 0; round < ROUNDS; round++) {
  for (const model of MODELS) {
    for (const rung of rungs) add(runChild(rung, model));
    if (torchOk) add({ ...runTorch(model), backend: 'torch' });
    if (torchOk) add({ ...runTorch(model, true), backend: 'torch-bf16' });
  }
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const rows = [];
for (const model of MODELS) {
  const torch = samples.get(`${model}|torch`);
  const torchBf16 = samples.get(`${model}|torch-bf16`);
  const gflop = [...samples.values()].find((s) => s.model === model && s.gflop)?.gflop ?? null;
  for (const backend of [...rungs, 'torch', 'torch-bf16']) {
    const s = samples.get(`${model}|${backend}`);
    if (!s) continue;
    const ms = median(s.ms);
    rows.push({
      model,
      backend,
      ms: Number(ms.toFixed(1)),
      first_ms: s.firstMs === undefined ? null : Number(s.firstMs.toFixed(1)),
      gflops: gflop ? Number((gflop / (ms / 1000)).toFixed(1)) : null,
      ratio_vs_torch: torch ? Number((median(torch.ms) / ms).toFixed(3)) : null,
      ratio_vs_torch_bf16: torchBf16 ? Number((median(torchBf16.ms) / ms).toFixed(3)) : null,
    });
  }
}
console.log(`threads: PyTorch ${THREADS}, oneDNN ${THREADS}, wasm 1; ${ROUNDS} interleaved round(s), median ms/step`);
console.log(
  ['model', 'backend', 'ms/step', 'GFLOP/s', '× torch speed', '× torch-bf16']
    .map((h, i) => (i < 2 ? h.padEnd(i === 1 ? 18 : 12) : h.padStart(14)))
    .join(''),
);
for (const r of rows) {
  console.log(
    [
      r.model.padEnd(12),
      r.backend.padEnd(18),
      String(r.ms).padStart(14),
      String(r.gflops ?? '-').padStart(14),
      String(r.ratio_vs_torch ?? '-').padStart(14),
      String(r.ratio_vs_torch_bf16 ?? '-').padStart(14),
    ].join(''),
  );
}
// The first step compiles (GPU: shaders and pipelines, reused after; CPU: kernels and caches).
for (const r of rows.filter((x) => x.first_ms !== null && !x.backend.startsWith('torch'))) {
  console.log(`${r.model} on ${r.backend}: first step ${r.first_ms} ms, steady ${r.ms} ms (${(r.first_ms / r.ms).toFixed(1)}×)`);
}
console.log(JSON.stringify({ bench: 'trainer', threads: THREADS, rows }));
