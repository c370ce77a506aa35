// Does training make models that beat bicubic on photos nobody trained on? Runs what a user runs:
// `srgan prepare` on real training photos, `srgan start` (the real daemon) for a fixed wall time with a
// checkpoint every N steps, `srgan stop`; then scores every checkpoint on held-out real photos under
// each LR synthesis (the standard protocol first: mod-crop, MATLAB-style antialiased bicubic LR, PSNR
// on Y with border = scale) against centre-aligned bicubic of the same LR. Prints one table row per
// checkpoint (fixed step counts, and the last one at the fixed wall time) and a JSON line.
//
//   npm run bench -- quality [--minutes 8] [--preset espcn-x2-fast] [--set JSON] [--every 1000]
//                            [--photos DIR] [--train a,b,...] [--test c,d,...] [--filters f,g,...]
//                            [--max-steps N] [--keep DIR] [--seeds 1,2,3] [--vs JSON]
//
// `--seeds` trains once per seed; `--vs JSON` trains a second arm (config overrides as --set) on the
// same seeds. With several runs it prints each arm's mean gain ± sd over the seeds, the paired
// difference (B − A) ± its standard error, and both arms' loss curves side by side.
//
// Photos: by default the example photos of Debian's `opencv-doc` package (apt-get install opencv-doc);
// 8 train on and 8 others are held out. `--set '{"advWeight": 0}'` overrides config fields for an
// experiment. `--keep DIR` keeps the state folder (runs.db, checkpoints) there.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../dist/models/backend/ladder.js';
import { loadGenerator } from '../dist/models/infer/load-generator.js';
import { evaluate } from '../dist/models/infer/evaluate.js';
import { rankByValidation } from '../dist/models/train/checkpoint.js';
import { parseLrSynthesis } from '../dist/data/image/degrade.js';
import { EVAL_LR_SYNTHESES } from '../dist/config/lr-synthesis.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'srgan.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);

const PHOTOS = opt('photos', '/usr/share/doc/opencv-doc/examples/data');
const TRAIN = opt('train', 'aero3,board,building,fruits,leuvenA,orange,squirrel_cls,stuff').split(',');
const TEST = opt('test', 'apple,baboon,butterfly,home,messi5,smarties,ela_original,rubberwhale1').split(',');
const FILTERS = opt('filters', EVAL_LR_SYNTHESES.join(','))
  .split(',')
  .map((n) => ({ name: n, lr: parseLrSynthesis(n) }));
const MINUTES = Number(opt('minutes', 8));
const EVERY = Number(opt('every', 1000));
const MAX_STEPS = opt('max-steps', null);
const overrides = { preset: opt('preset', 'espcn-x2-fast') };
// Arms: the --set config, and with --vs a second one; each trained once per seed of --seeds.
const ARMS = [
  { name: 'A', set: JSON.parse(opt('set', '{}')) },
  ...(opt('vs', null) === null ? [] : [{ name: 'B', set: JSON.parse(opt('vs', '{}')) }]),
];
const SEEDS = opt('seeds', null)?.split(',').map(Number) ?? [null];
if (SEEDS.some((s) => !Number.isInteger(s))) {
  console.error('bench quality: --seeds takes integers, e.g. --seeds 1,2,3');
  process.exit(2);
}

/** The photo of `name` in PHOTOS (any of the usual extensions), or null. */
function photo(name) {
  for (const ext of ['.jpg', '.png', '.jpeg', '.webp', '.tif']) {
    const f = path.join(PHOTOS, name + ext);
    if (fs.existsSync(f)) return f;
  }
  return null;
}
const trainFiles = TRAIN.map(photo);
const testFiles = TEST.map(photo);
const missing = [...TRAIN.filter((_, i) => !trainFiles[i]), ...TEST.filter((_, i) => !testFiles[i])];
if (missing.length > 0) {
  console.error(
    `bench quality: photos not found in ${PHOTOS}: ${missing.join(', ')}.\n` +
      `Install Debian's example photos with \`apt-get install opencv-doc\`, or give --photos DIR --train a,b --test c,d (names without extension).`,
  );
  process.exit(2);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-quality-'));
const home = opt('keep', path.join(tmp, 'home'));
fs.mkdirSync(home, { recursive: true });

/** `srgan` with SRGAN_HOME=`dir`: a function of argv that resolves to its stdout. */
const cliIn = (dir) => (argv) =>
  new Promise((resolve, reject) => {
    const env = { ...process.env, SRGAN_HOME: dir };
    const child = spawn(process.execPath, [CLI, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`srgan ${argv[0]} exited ${code}: ${err || out}`))));
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1. prepare, as a user does (default parameters).
const data = path.join(tmp, 'data');
const prep = JSON.parse(await cliIn(home)(['prepare', ...trainFiles, '--out', data, '--json']));
console.log(`prepared ${prep.patches ?? '?'} patches from ${TRAIN.length} photos; held out: ${TEST.join(', ')}`);

// 2. train for MINUTES of wall time from the first step, then 3. score the checkpoints: once per arm
// (the --set config, and the --vs one) and seed.
const backend = await selectBackend(opt('backend', 'auto'));
const cell = (v, w = 6) => (v >= 0 ? '+' : '') + v.toFixed(2).padStart(w - 1);
const runs = [];
const several = ARMS.length * SEEDS.length > 1;
for (const arm of ARMS) {
  for (const seed of SEEDS) {
    const label = [arm.name, seed === null ? null : `seed ${seed}`].filter(Boolean).join(', ');
    const dir = several ? path.join(home, `${arm.name}-${seed ?? 'default'}`) : home;
    const config = {
      ...overrides,
      ...arm.set,
      ...(seed === null ? {} : { seed }),
      checkpointEvery: EVERY,
      checkpointMinutes: 0,
      checkpointKeep: 1000,
      ...(MAX_STEPS ? { maxSteps: Number(MAX_STEPS) } : {}),
    };
    if (several) console.log(`\n== ${label}: ${JSON.stringify({ ...arm.set, seed })}`);
    runs.push({ arm: arm.name, seed, ...(await trainAndScore(config, arm.set, dir)) });
  }
}
if (runs.length > 1) summarise(runs);

/**
 * One run of `config` (its arm's overrides: `set`) in the state folder `dir`: train, then score its
 * checkpoints; prints its table and JSON line.
 */
async function trainAndScore(config, set, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const cli = cliIn(dir);
  const configFile = path.join(dir, 'run.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  await cli(['start', '--data', data, '--config', configFile]);
  let status = JSON.parse(await cli(['status', '--json']));
  while (status.state !== 'training' && status.state !== 'stopped' && status.state !== 'failed') {
    await sleep(200);
    status = JSON.parse(await cli(['status', '--json']));
  }
  const t0 = Date.now() / 1000 - 0.1;
  const runId = status.runId ?? status.run?.id;
  // Kept now: once the run has stopped (--max-steps), status is the stopped stub, without a backend.
  const trainedOn = status.backend;
  console.log(`${config.preset} on ${trainedOn ?? '?'}: training for ${MINUTES} min, a checkpoint every ${EVERY} steps (run ${runId})`);
  const deadline = Date.now() + MINUTES * 60_000;
  while (Date.now() < deadline) {
    await sleep(Math.min(5000, Math.max(0, deadline - Date.now())));
    status = JSON.parse(await cli(['status', '--json']));
    if (status.state === 'stopped' || status.state === 'failed') break;
  }
  if (status.state !== 'stopped' && status.state !== 'failed') await cli(['stop']);
  const metrics = JSON.parse(await cli(['metrics', runId, '--json']));

  const ckRoot = fs.readdirSync(path.join(dir, 'checkpoints')).map((r) => path.join(dir, 'checkpoints', r))[0];
  // The fixed step counts and the last one (at the wall time); 'best' checkpoints the run wrote on the way
  // are left out, except the run's best by validation gain, scored last (what `--best` gives the user).
  const all = fs
    .readdirSync(ckRoot)
    .filter((d) => /^step-\d+$/.test(d))
    .sort()
    .map((d) => path.join(ckRoot, d));
  const states = new Map(all.map((d) => [d, JSON.parse(fs.readFileSync(path.join(d, 'state.json'), 'utf8'))]));
  const stateOf = (d) => states.get(d);
  const periodic = all.filter((d) => stateOf(d).kind !== 'best');
  // The same ranking retention and `--best` use.
  const bestDir = rankByValidation(
    all.map((d) => ({ dir: d, step: stateOf(d).step, gain: stateOf(d).valGain ?? null, psnr: stateOf(d).valPsnr ?? null })),
  ).ranked[0]?.dir;
  const dirs = bestDir && !periodic.includes(bestDir) ? [...periodic, bestDir] : periodic;
  const rows = [];
  console.log(
    `\nscored on ${TEST.length} held-out photos (backend ${backend.name}); gain = model − centre-aligned bicubic, PSNR-Y dB, border = scale`,
  );
  console.log(['step', 'min', ...FILTERS.map((f) => f.name.padStart(18))].join('  '));
  for (const d of dirs) {
    const state = stateOf(d);
    const loaded = await loadGenerator(d);
    const row = {
      step: state.step,
      minutes: Math.max(0, (state.time - t0) / 60),
      best: d === bestDir,
      valGain: state.valGain ?? null,
      filters: {},
    };
    try {
      for (const f of FILTERS) {
        const r = await evaluate(loaded.gen, testFiles, { scale: loaded.scale, lr: f.lr });
        row.filters[f.name] = {
          model: r.model.psnr,
          bicubic: r.bicubic.psnr,
          gain: r.model.psnr - r.bicubic.psnr,
          ssimGain: r.model.ssim - r.bicubic.ssim,
        };
      }
    } finally {
      loaded.gen.dispose();
    }
    rows.push(row);
    console.log(
      [
        String(row.step).padStart(5) + (row.best ? '*' : ' '),
        row.minutes.toFixed(1).padStart(4),
        ...FILTERS.map((f) => {
          const v = row.filters[f.name];
          return `${v.model.toFixed(2)} ${cell(v.gain)}`.padStart(18);
        }),
      ].join('  '),
    );
  }
  console.log('* the best checkpoint by validation gain (what --best takes)');
  console.log(
    JSON.stringify({
      bench: 'quality',
      preset: config.preset,
      set,
      config: { ...config, preset: undefined },
      minutes: MINUTES,
      train: TRAIN,
      test: TEST,
      backend: trainedOn,
      rows,
    }),
  );
  return { rows, last: rows[periodic.length - 1] ?? rows.at(-1), metrics };
}

/**
 * Several runs: each arm's mean (± sd over seeds) at its last periodic checkpoint; with --vs, the paired
 * difference (--vs arm − --set arm, seed by seed) with its standard error; and the loss curves of both
 * arms side by side (mean over seeds per step window), where a precision or other change shows first.
 */
function summarise(all) {
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
  const gainOf = (r, f) => r.last.filters[f].gain;
  const steps = [...new Set(all.map((r) => r.last.step))].join('/');
  console.log(`\nsummary: gain over bicubic at step ${steps}, mean ± sd over ${SEEDS.length} seed(s)`);
  console.log(['arm'.padEnd(4), ...FILTERS.map((f) => f.name.padStart(18))].join('  '));
  for (const arm of ARMS) {
    const mine = all.filter((r) => r.arm === arm.name);
    console.log(
      [
        arm.name.padEnd(4),
        ...FILTERS.map((f) => {
          const g = mine.map((r) => gainOf(r, f.name));
          return `${cell(mean(g))} ± ${sd(g).toFixed(2)}`.padStart(18);
        }),
      ].join('  '),
    );
  }
  const paired = {};
  if (ARMS.length === 2) {
    const line = ['B−A'.padEnd(4)];
    for (const f of FILTERS) {
      const d = SEEDS.map((seed) => {
        const [a, b] = ARMS.map((arm) => all.find((r) => r.arm === arm.name && r.seed === seed));
        return gainOf(b, f.name) - gainOf(a, f.name);
      });
      const se = sd(d) / Math.sqrt(d.length);
      paired[f.name] = { mean: mean(d), se, each: d };
      line.push(`${cell(mean(d))} ± ${se.toFixed(2)}`.padStart(18));
    }
    console.log(line.join('  '));
    console.log('B−A: the paired difference, seed by seed, ± its standard error');
  }
  // Curves: each key's mean over the points in each of ~12 step windows, then over the seeds.
  // g_loss only where it is more than g_pix (an adversarial or perceptual term).
  const valuesOf = (r, key) => r.metrics.points.filter((p) => p.key === key).map((p) => p.value);
  const differs = (r) => {
    const pix = valuesOf(r, 'g_pix');
    return valuesOf(r, 'g_loss').some((v, i) => v !== pix[i]);
  };
  const keys = ['g_pix', 'g_loss', 'd_loss', 'val_gain']
    .filter((k) => all.every((r) => r.metrics.points.some((p) => p.key === k)))
    .filter((k) => k !== 'g_loss' || all.some(differs));
  const lastStep = Math.max(...all.flatMap((r) => r.metrics.points.map((p) => p.step)));
  const width = Math.max(1, Math.ceil(lastStep / 12));
  const curves = {};
  for (const key of keys) {
    for (const arm of ARMS) {
      const windows = [];
      for (let w = 0; w * width < lastStep; w++) {
        const perRun = all
          .filter((r) => r.arm === arm.name)
          .map((r) => r.metrics.points.filter((p) => p.key === key && p.step > w * width && p.step <= (w + 1) * width).map((p) => p.value))
          .filter((v) => v.length > 0)
          .map(mean);
        windows.push(perRun.length > 0 ? mean(perRun) : null);
      }
      curves[`${arm.name}:${key}`] = windows;
    }
  }
  console.log(`\nloss curves: mean over each ${width}-step window, then over the seeds`);
  console.log(['steps'.padStart(11), ...Object.keys(curves).map((k) => k.padStart(14))].join(' '));
  for (let w = 0; w * width < lastStep; w++) {
    const span = `${w * width + 1}-${Math.min(lastStep, (w + 1) * width)}`;
    console.log(
      [span.padStart(11), ...Object.values(curves).map((c) => (c[w] === null ? '-' : c[w].toPrecision(5)).padStart(14))].join(' '),
    );
  }
  console.log(
    JSON.stringify({
      bench: 'quality-summary',
      arms: ARMS,
      seeds: SEEDS,
      last: all.map((r) => ({
        arm: r.arm,
        seed: r.seed,
        step: r.last.step,
        gains: Object.fromEntries(FILTERS.map((f) => [f.name, gainOf(r, f.name)])),
      })),
      paired,
      curveWindow: width,
      curves,
    }),
  );
}
if (!args.includes('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
