// Does training make models that beat bicubic on photos nobody trained on? Runs what a user runs:
// `srgan prepare` on real training photos, `srgan start` (the real daemon) for a fixed wall time with a
// checkpoint every N steps, `srgan stop`; then scores every checkpoint on held-out real photos under
// each LR synthesis (the standard protocol first: mod-crop, MATLAB-style antialiased bicubic LR, PSNR
// on Y with border = scale) against centre-aligned bicubic of the same LR. Prints one table row per
// checkpoint (fixed step counts, and the last one at the fixed wall time) and a JSON line.
//
//   npm run bench -- quality [--minutes 8] [--preset espcn-x2-fast] [--set JSON] [--every 1000]
//                            [--photos DIR] [--train a,b,...] [--test c,d,...] [--filters f,g,...]
//                            [--max-steps N] [--keep DIR]
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
const overrides = { preset: opt('preset', 'espcn-x2-fast'), ...JSON.parse(opt('set', '{}')) };

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
const env = { ...process.env, SRGAN_HOME: home };

function cli(argv, { quiet = true } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...argv], { env, stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`srgan ${argv[0]} exited ${code}: ${err || out}`))));
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1. prepare, as a user does (default parameters).
const data = path.join(tmp, 'data');
const prep = JSON.parse(await cli(['prepare', ...trainFiles, '--out', data, '--json']));
console.log(`prepared ${prep.patches ?? '?'} patches from ${TRAIN.length} photos; held out: ${TEST.join(', ')}`);

// 2. train for MINUTES of wall time from the first step.
const config = {
  ...overrides,
  checkpointEvery: EVERY,
  checkpointMinutes: 0,
  checkpointKeep: 1000,
  ...(MAX_STEPS ? { maxSteps: Number(MAX_STEPS) } : {}),
};
const configFile = path.join(tmp, 'run.json');
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

// 3. score every checkpoint on the held-out photos, per LR synthesis.
const backend = await selectBackend(opt('backend', 'auto'));
const ckRoot = fs.readdirSync(path.join(home, 'checkpoints')).map((r) => path.join(home, 'checkpoints', r))[0];
// The fixed step counts and the last one (at the wall time); 'best' checkpoints the run wrote on the way
// are left out, except the run's best by validation gain, scored last (what `--best` gives the user).
const all = fs
  .readdirSync(ckRoot)
  .filter((d) => /^step-\d+$/.test(d))
  .sort()
  .map((d) => path.join(ckRoot, d));
const states = new Map(all.map((d) => [d, JSON.parse(fs.readFileSync(path.join(d, 'state.json'), 'utf8'))]));
const stateOf = (dir) => states.get(dir);
const periodic = all.filter((d) => stateOf(d).kind !== 'best');
// The same ranking retention and `--best` use.
const bestDir = rankByValidation(
  all.map((dir) => ({ dir, step: stateOf(dir).step, gain: stateOf(dir).valGain ?? null, psnr: stateOf(dir).valPsnr ?? null })),
).ranked[0]?.dir;
const dirs = bestDir && !periodic.includes(bestDir) ? [...periodic, bestDir] : periodic;
const rows = [];
const cell = (v, w = 6) => (v >= 0 ? '+' : '') + v.toFixed(2).padStart(w - 1);
console.log(
  `\nscored on ${TEST.length} held-out photos (backend ${backend.name}); gain = model − centre-aligned bicubic, PSNR-Y dB, border = scale`,
);
console.log(['step', 'min', ...FILTERS.map((f) => f.name.padStart(18))].join('  '));
for (const dir of dirs) {
  const state = stateOf(dir);
  const loaded = await loadGenerator(dir);
  const row = {
    step: state.step,
    minutes: Math.max(0, (state.time - t0) / 60),
    best: dir === bestDir,
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
    set: JSON.parse(opt('set', '{}')),
    minutes: MINUTES,
    train: TRAIN,
    test: TEST,
    backend: trainedOn,
    rows,
  }),
);
if (!args.includes('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
