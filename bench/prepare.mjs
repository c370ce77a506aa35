// How fast is `srgan prepare` next to the article's method? One run, side by side, on the same photos and
// the same patch plan:
//
//   node bench/prepare.mjs [--images 12] [--png-levels 6,4] [--skip-pillow]      (after `npm run build`)
//
// Photos: photo-like JPEGs of 2, 4, 8 and 12 MP (q90), each a mosaic of the demo set's scenes (edges,
// text, textures, gradients) at their native scale plus sensor-like noise; every fourth is stored rotated
// with EXIF orientation 6. Made once and cached in $TMPDIR/srgan-bench-prepare-v1-N.
//
// The article's method (docs/seed.md §2.4): Python 3 + Pillow, one thread: open, exif_transpose,
// convert('RGB'), resize each level with LANCZOS (the filter srgan uses), crop, save PNG. It cuts exactly
// the crop boxes srgan chose (read from srgan's manifest), so both do the same work; Pillow does no
// hashing and keeps no manifest. Rows: Pillow and srgan (1 and 2 workers) at each PNG level. Ratios:
// "× Pillow" against Pillow at the same PNG level, "× article" against Pillow at its default level 6.
// Wall-clock rates suffer when other processes share the cores, so each row also has its CPU seconds
// (all threads of the process) and MP per CPU-second, and the load average is printed.
// Last line: {"bench":"prepare","rows":[...]}.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import Database from 'better-sqlite3';
import sharp from 'sharp';

import { generateDemoData } from '../dist/data/demo/generate.js';
import { prepare } from '../dist/data/prepare/pipeline.js';
import { mulberry32 } from '../dist/util/prng.js';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : d);
const IMAGES = Number(opt('images', 12));
// 6 is Pillow's default (the article's setting); 4 is srgan's default.
const PNG_LEVELS = String(opt('png-levels', '6,4')).split(',').map(Number);
const SIZES = [
  [1728, 1152], // 2 MP
  [2448, 1632], // 4 MP
  [3456, 2304], // 8 MP
  [4000, 3000], // 12 MP
];
const TILE = 480;

// ---- photos -------------------------------------------------------------------------------------------
const cache = path.join(os.tmpdir(), `srgan-bench-prepare-v1-${IMAGES}`);
const photos = path.join(cache, 'photos');
if (!fs.existsSync(path.join(cache, 'done'))) {
  fs.rmSync(cache, { recursive: true, force: true });
  fs.mkdirSync(photos, { recursive: true });
  process.stderr.write(`making ${IMAGES} photo-like JPEGs in ${photos} (once)…\n`);
  const demo = await generateDemoData(path.join(cache, 'demo'), { count: 48, seed: 7 });
  const tiles = await Promise.all(demo.map((f) => sharp(f).resize(TILE, TILE, { fit: 'cover' }).raw().toBuffer()));
  const rand = mulberry32(99);
  for (let i = 0; i < IMAGES; i++) {
    const [w, h] = SIZES[i % SIZES.length];
    const cols = Math.ceil(w / TILE);
    const rows = Math.ceil(h / TILE);
    const canvas = Buffer.alloc(cols * TILE * rows * TILE * 3);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const t = tiles[Math.floor(rand() * tiles.length)];
        for (let y = 0; y < TILE; y++) t.copy(canvas, ((r * TILE + y) * cols * TILE + c * TILE) * 3, y * TILE * 3, (y + 1) * TILE * 3);
      }
    }
    // Sensor-like noise: the sum of three uniforms, sigma about 3 levels.
    for (let k = 0; k < canvas.length; k++) {
      const n = (rand() + rand() + rand() - 1.5) * 6;
      canvas[k] = Math.max(0, Math.min(255, canvas[k] + n));
    }
    let img = sharp(canvas, { raw: { width: cols * TILE, height: rows * TILE, channels: 3 } }).extract({
      left: 0,
      top: 0,
      width: w,
      height: h,
    });
    if (i % 4 === 3)
      img = sharp(await img.rotate(-90).raw().toBuffer(), { raw: { width: h, height: w, channels: 3 } }).withMetadata({ orientation: 6 });
    await img.jpeg({ quality: 90 }).toFile(path.join(photos, `photo-${String(i).padStart(3, '0')}.jpg`));
  }
  fs.writeFileSync(path.join(cache, 'done'), '');
}
const files = fs
  .readdirSync(photos)
  .map((f) => path.join(photos, f))
  .sort();
let totalMp = 0;
for (const f of files) {
  const m = await sharp(f).metadata();
  totalMp += (m.width * m.height) / 1e6;
}
console.log(
  `${files.length} photos, ${totalMp.toFixed(1)} MP, ${os.availableParallelism()} cores (load average ${os.loadavg()[0].toFixed(1)}); patch 256, levels 1,2,4,8, 8 per level`,
);

// ---- Pillow -------------------------------------------------------------------------------------------
const PILLOW = `
import json, os, sys, time
from PIL import Image, ImageOps
plan, out, level = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
t0, c0 = time.perf_counter(), time.process_time()
patches = nbytes = pixels = 0
for src in plan:
    img = ImageOps.exif_transpose(Image.open(src['path'])).convert('RGB')
    w, h = img.size
    pixels += w * h
    for lv in src['levels']:
        f = lv['f']
        lw, lh = w // f, h // f
        L = img if f == 1 else img.resize((lw, lh), Image.LANCZOS, box=(0, 0, lw * f, lh * f))
        for pid, x, y, size in lv['patches']:
            d = os.path.join(out, str(pid // 1000))
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, '%d.png' % pid)
            L.crop((x, y, x + size, y + size)).save(p, 'PNG', compress_level=level)
            nbytes += os.path.getsize(p)
            patches += 1
print(json.dumps({'seconds': time.perf_counter() - t0, 'cpu': time.process_time() - c0, 'patches': patches, 'bytes': nbytes, 'pixels': pixels}))
`;

function findPython() {
  if (args.includes('--skip-pillow')) return null;
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import PIL; print(PIL.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { py, version: r.stdout.trim() };
  }
  process.stderr.write('Pillow not found (Debian: apt-get install -y python3-pil): its rows are left out\n');
  return null;
}

/** srgan's crop plan, from its manifest: the boxes Pillow cuts too. */
function planOf(dataDir) {
  const db = new Database(path.join(dataDir, 'manifest.sqlite'), { readonly: true });
  const rows = db
    .prepare('SELECT s.path, p.id, p.level, p.x, p.y, p.size FROM patches p JOIN sources s ON s.id = p.source_id ORDER BY p.id')
    .all();
  db.close();
  const bySource = new Map();
  for (const r of rows) {
    if (!bySource.has(r.path)) bySource.set(r.path, new Map());
    const levels = bySource.get(r.path);
    if (!levels.has(r.level)) levels.set(r.level, []);
    levels.get(r.level).push([r.id, r.x, r.y, r.size]);
  }
  return [...bySource].map(([p, levels]) => ({ path: p, levels: [...levels].map(([f, patches]) => ({ f, patches })) }));
}

/** Mean absolute difference per 8-bit sample between two datasets' patches, by level (a sanity check that both cut the same thing). */
async function agreement(a, b, plan) {
  const byLevel = {};
  for (const src of plan.slice(0, 4)) {
    for (const lv of src.levels) {
      for (const [id] of lv.patches.slice(0, 2)) {
        const rel = path.join(String(Math.floor(id / 1000)), `${id}.png`);
        const [x, y] = await Promise.all([sharp(path.join(a, rel)).raw().toBuffer(), sharp(path.join(b, rel)).raw().toBuffer()]);
        let d = 0;
        for (let i = 0; i < x.length; i++) d += Math.abs(x[i] - y[i]);
        (byLevel[lv.f] ??= []).push(d / x.length);
      }
    }
  }
  return Object.fromEntries(Object.entries(byLevel).map(([f, v]) => [f, +(v.reduce((s, t) => s + t, 0) / v.length).toFixed(2)]));
}

const python = findPython();
const rows = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'srgan-bench-prepare-run-'));
try {
  for (const pngLevel of PNG_LEVELS) {
    const srganRows = [];
    let planDir = null;
    for (const workers of [1, 2]) {
      const out = path.join(work, `srgan-w${workers}-png${pngLevel}`);
      const cpu0 = process.cpuUsage();
      const s = await prepare({ sources: [photos], out, workers, pngLevel });
      const cpu = process.cpuUsage(cpu0);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      const secs = s.elapsedMs / 1000;
      const st = s.stageSeconds;
      const busy = st.read + st.decode + st.resize + st.encode;
      srganRows.push({
        method: 'srgan prepare',
        workers,
        pngLevel,
        sources: s.done,
        megapixels: +s.sourceMegapixels.toFixed(1),
        patches: s.patches,
        seconds: +secs.toFixed(2),
        mpPerSec: +(s.sourceMegapixels / secs).toFixed(2),
        patchesPerSec: +(s.patches / secs).toFixed(1),
        kbPerPatch: +(s.pngBytes / s.patches / 1024).toFixed(1),
        cpuSeconds: +cpuSeconds.toFixed(2),
        mpPerCpuSec: +(s.sourceMegapixels / cpuSeconds).toFixed(2),
        stageShare: Object.fromEntries(Object.entries(st).map(([k, v]) => [k, +(v / busy).toFixed(2)])),
      });
      planDir ??= out;
    }
    let pillow = null;
    if (python) {
      const plan = planOf(planDir);
      const planFile = path.join(work, 'plan.json');
      fs.writeFileSync(planFile, JSON.stringify(plan));
      fs.writeFileSync(path.join(work, 'pillow.py'), PILLOW);
      const out = path.join(work, `pillow-png${pngLevel}`);
      const wall = performance.now();
      const r = spawnSync(python.py, [path.join(work, 'pillow.py'), planFile, out, String(pngLevel)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`the Pillow script failed: ${r.stderr}`);
      const p = JSON.parse(r.stdout.trim().split('\n').pop());
      const secs = p.seconds;
      pillow = {
        method: `pillow ${python.version} (LANCZOS, 1 thread)`,
        workers: 1,
        pngLevel,
        sources: plan.length,
        megapixels: +(p.pixels / 1e6).toFixed(1),
        patches: p.patches,
        seconds: +secs.toFixed(2),
        wallSeconds: +((performance.now() - wall) / 1000).toFixed(2),
        mpPerSec: +(p.pixels / 1e6 / secs).toFixed(2),
        patchesPerSec: +(p.patches / secs).toFixed(1),
        kbPerPatch: +(p.bytes / p.patches / 1024).toFixed(1),
        cpuSeconds: +p.cpu.toFixed(2),
        mpPerCpuSec: +(p.pixels / 1e6 / p.cpu).toFixed(2),
        meanAbsDiffByLevel: await agreement(planDir, out, plan),
      };
      rows.push(pillow);
    }
    for (const r of srganRows) {
      if (pillow) {
        r.vsPillow = +(r.mpPerSec / pillow.mpPerSec).toFixed(2);
        r.vsPillowCpu = +(r.mpPerCpuSec / pillow.mpPerCpuSec).toFixed(2);
      }
      rows.push(r);
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

// "× article": against Pillow at its default PNG level, the article's setting.
const article = rows.find((r) => r.method.startsWith('pillow') && r.pngLevel === 6);
for (const r of rows) if (article && !r.method.startsWith('pillow')) r.vsArticle = +(r.mpPerSec / article.mpPerSec).toFixed(2);
const header = [
  'method',
  'workers',
  'png',
  'sources',
  'MP',
  'patches',
  'seconds',
  'MP/s',
  'patches/s',
  'KB/patch',
  '× Pillow',
  '× article',
  'CPU s',
  'MP/CPU-s',
  'CPU ×',
];
const table = rows.map((r) =>
  [
    r.method,
    r.workers,
    r.pngLevel,
    r.sources,
    r.megapixels,
    r.patches,
    r.seconds,
    r.mpPerSec,
    r.patchesPerSec,
    r.kbPerPatch,
    r.vsPillow ?? '-',
    r.vsArticle ?? '-',
    r.cpuSeconds,
    r.mpPerCpuSec,
    r.vsPillowCpu ?? '-',
  ].map(String),
);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(line(header));
for (const t of table) console.log(line(t));
for (const r of rows) {
  if (r.stageShare)
    console.log(
      `srgan, ${r.workers} worker(s), png ${r.pngLevel}: share of worker time read ${r.stageShare.read}, decode ${r.stageShare.decode}, resize ${r.stageShare.resize}, PNG encode ${r.stageShare.encode}`,
    );
  if (r.meanAbsDiffByLevel)
    console.log(
      `Pillow vs srgan, png ${r.pngLevel}: mean |difference| per sample by level ${JSON.stringify(r.meanAbsDiffByLevel)} (decoder and filter differences)`,
    );
}
console.log(`load average at the end: ${os.loadavg()[0].toFixed(1)} on ${os.availableParallelism()} cores`);
console.log(
  JSON.stringify({
    bench: 'prepare',
    images: files.length,
    cores: os.availableParallelism(),
    loadAverage: +os.loadavg()[0].toFixed(2),
    rows,
  }),
);
