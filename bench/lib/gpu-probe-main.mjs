// The GPU probe itself: what the webgpu rung does on this machine's GPU. Run through
// `npm run bench -- gpu-probe` (from a checkout) or a bundle's run.sh (a machine with no network and no
// npm: bench/gpu-probe.mjs --pack). docs/backends.md, "GPU probe".
//
//   options: --models espcn,seed_g,seed_d,seed_step   steps to time (bench/lib/steps.mjs)
//            --seconds 20        steady-state time budget per model
//            --chunk 10          steps queued between two waits (the trainer reads once per logEvery)
//            --patch 256         HR patch side of the seed steps (smaller for slow adapters)
//            --peak-tflops X     the card's FP32 peak, when the table below does not know the card
//            --deadline 270      seconds: models not started by then are skipped (the probe must end
//                                inside 5 minutes on a card, shader compilation included)
//            --matmul 4096       side of the matmul that measures tfjs-webgpu's ceiling here (0: none)
//            --quick             2 chunks of 2 steps per model, no matmul (tests, software adapters)
//
// Prints the adapter, then per model: the first step (pipelines compiled), the steady ms/step, GFLOP/s
// and the fraction of the card's FP32 peak; last, one JSON line. Exit status 0 when every model ran.

import { spawnSync } from 'node:child_process';
import os from 'node:os';

const T0 = performance.now();
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const QUICK = args.includes('--quick');
const MODELS = opt('models', 'espcn,seed_g,seed_d,seed_step').split(',');
const SECONDS = Number(opt('seconds', QUICK ? 0 : 20));
const CHUNK = Number(opt('chunk', QUICK ? 2 : 10));
const MIN_CHUNKS = QUICK ? 2 : 3;
const MAX_CHUNKS = QUICK ? 2 : 50;
const PATCH = opt('patch', undefined) === undefined ? undefined : Number(opt('patch'));
const DEADLINE_S = Number(opt('deadline', 270));
const MATMUL = Number(opt('matmul', QUICK ? 0 : 4096));
const PEAK_OVERRIDE = opt('peak-tflops', process.env.SRGAN_GPU_PEAK_TFLOPS);

/**
 * FP32 (non-tensor-core) peaks in TFLOP/s at boost clock, from the vendors' data sheets; matched against
 * the adapter's description or nvidia-smi's name, most specific pattern first.
 */
const FP32_PEAK_TFLOPS = [
  [/H200 NVL/i, 60.3],
  [/H200/i, 66.9],
  [/H100.*PCIe/i, 51.2],
  [/H100 NVL/i, 60.3],
  [/H100/i, 66.9], // SXM5 (nvidia-smi: "NVIDIA H100 80GB HBM3")
  [/GH200/i, 66.9],
  [/A100/i, 19.5],
  [/A10G/i, 31.2],
  [/\bA10\b/i, 31.2],
  [/L40S/i, 91.6],
  [/\bL40\b/i, 90.5],
  [/\bL4\b/i, 30.3],
  [/\bT4\b/i, 8.1],
  [/V100.*PCIe/i, 14.0],
  [/V100/i, 15.7],
  [/RTX 6000 Ada/i, 91.1],
  [/RTX A6000/i, 38.7],
  [/RTX 4090/i, 82.6],
  [/RTX 4080/i, 48.7],
  [/RTX 3090/i, 35.6],
  [/RTX 3080/i, 29.8],
  [/RTX 2060 SUPER/i, 7.2], // the seed's card (docs/seed.md §7)
];

const log = (line) => console.log(line);
const result = { bench: 'gpu-probe', ok: false, node: process.version, host: `${os.platform()} ${os.arch()}`, adapter: null, models: [] };

function nvidiaSmi() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,clocks.max.sm', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.status !== 0 || !r.stdout) return null;
  const [name, driver, memory, maxSmClock] = r.stdout.trim().split('\n')[0].split(', ');
  return { name, driver, memory, maxSmClock };
}

function peakFor(names) {
  if (PEAK_OVERRIDE !== undefined) return { tflops: Number(PEAK_OVERRIDE), source: '--peak-tflops' };
  for (const [re, tflops] of FP32_PEAK_TFLOPS) {
    const hit = names.find((n) => n && re.test(n));
    if (hit) return { tflops, source: `data sheet, matched "${hit}"` };
  }
  return { tflops: null, source: `unknown card (${names.filter(Boolean).join(' / ') || 'no name'}): pass --peak-tflops` };
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main() {
  const smi = nvidiaSmi();
  result.nvidiaSmi = smi;
  log(`node ${process.version} on ${result.host}; nvidia-smi: ${smi ? `${smi.name}, driver ${smi.driver}, ${smi.memory}` : 'not found'}`);
  const tf = await import('@tensorflow/tfjs-core');
  const { selectBackend } = await import('../../dist/models/backend/ladder.js');
  const vulkan = () =>
    `vulkan: VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '-'} VK_DRIVER_FILES=${process.env.VK_DRIVER_FILES ?? '-'} ` +
    `LD_LIBRARY_PATH=${process.env.LD_LIBRARY_PATH ?? '-'}`;
  let sel;
  try {
    sel = await selectBackend('webgpu');
  } finally {
    log(vulkan()); // after the ladder, which points the loader at SwiftShader when asked to
  }
  const adapter = sel.adapter;
  const peak = adapter.software ? { tflops: null, source: 'software adapter: no card peak' } : peakFor([adapter.description, smi?.name]);
  result.adapter = adapter;
  result.peak = peak;
  log(`adapter: ${sel.reason}`);
  log(`FP32 peak: ${peak.tflops === null ? '-' : `${peak.tflops} TFLOP/s`} (${peak.source})`);
  const ofPeak = (gflops) => (peak.tflops ? gflops / (peak.tflops * 1000) : null);

  if (MATMUL > 0) {
    // What tfjs-backend-webgpu's best kernel reaches here: a large matmul, the ceiling for our steps.
    const n = MATMUL;
    const a = tf.randomUniform([n, n]);
    const b = tf.randomUniform([n, n]);
    const mm = async (k) => {
      let c = null;
      for (let i = 0; i < k; i++) {
        c?.dispose();
        c = tf.matMul(a, b);
      }
      await c.data();
      c.dispose();
    };
    await mm(1);
    const ms = [];
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      await mm(5);
      ms.push((performance.now() - t) / 5);
    }
    const gflops = (2 * n ** 3) / 1e9 / (median(ms) / 1000);
    result.matmul = { n, ms: round(median(ms)), gflops: round(gflops), ofPeak: round(ofPeak(gflops)) };
    log(
      `matmul ${n}³ fp32: ${result.matmul.ms} ms, ${result.matmul.gflops} GFLOP/s${peak.tflops ? `, ${pct(ofPeak(gflops))} of peak` : ''}`,
    );
    tf.dispose([a, b]);
  }

  const { buildStep } = await import('./steps.mjs');
  log('');
  log(
    ['model', 'first ms', 'ms/step', 'GFLOP/s', 'of peak', 'what']
      .map((h, i) => (i === 0 ? h.padEnd(11) : i < 5 ? h.padStart(10) : `  ${h}`))
      .join(''),
  );
  for (const model of MODELS) {
    if ((performance.now() - T0) / 1000 > DEADLINE_S) {
      result.models.push({ model, skipped: `past the ${DEADLINE_S} s deadline` });
      log(`${model.padEnd(11)} skipped: past the ${DEADLINE_S} s deadline`);
      continue;
    }
    try {
      const s = await buildStep(model, { patch: PATCH });
      const t1 = performance.now();
      s.step(); // compiles this model's pipelines
      await s.sync();
      const firstMs = performance.now() - t1;
      const perStep = [];
      const started = performance.now();
      while (perStep.length < MAX_CHUNKS && (perStep.length < MIN_CHUNKS || performance.now() - started < SECONDS * 1000)) {
        const t = performance.now();
        for (let i = 0; i < CHUNK; i++) s.step();
        await s.sync();
        perStep.push((performance.now() - t) / CHUNK);
      }
      const ms = median(perStep);
      const gflops = s.gflop / (ms / 1000);
      const row = {
        model,
        what: s.what,
        firstMs: round(firstMs),
        ms: round(ms),
        steps: perStep.length * CHUNK,
        gflop: round(s.gflop),
        gflops: round(gflops),
        ofPeak: round(ofPeak(gflops)),
      };
      s.dispose();
      result.models.push(row);
      log(
        [
          model.padEnd(11),
          String(row.firstMs).padStart(10),
          String(row.ms).padStart(10),
          String(row.gflops).padStart(10),
          (row.ofPeak === null ? '-' : pct(row.ofPeak)).padStart(10),
          `  ${row.what}`,
        ].join(''),
      );
    } catch (err) {
      result.models.push({ model, error: firstLine(err) });
      log(`${model.padEnd(11)} failed: ${firstLine(err)}`);
    }
  }
  const { takeGpuErrors } = await import('../../dist/models/backend/ladder.js');
  const gpuErrors = takeGpuErrors();
  if (gpuErrors.length > 0) result.gpuErrors = gpuErrors;
  result.ok = gpuErrors.length === 0 && result.models.every((m) => m.ms !== undefined);
}

const round = (x) => (x === null ? null : Number(x.toPrecision(4)));
const pct = (x) => `${(100 * x).toFixed(2)}%`;
const firstLine = (err) => String(err instanceof Error ? err.message : err).split('\n')[0];

try {
  await main();
} catch (err) {
  result.error = firstLine(err);
  log(`gpu-probe: ${result.error}`);
}
result.seconds = round((performance.now() - T0) / 1000);
log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
