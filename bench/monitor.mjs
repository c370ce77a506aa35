// What the monitor costs the server for long runs: bytes sent and server milliseconds per request, for
// runs of 10k, 100k and 1M points per metric key, measured side by side in one process against the
// real control server over 127.0.0.1 (docs/protocol.md, "HTTP API").
//
//   npm run bench -- monitor [--sizes 10000,100000,1000000] [--keys 8] [--repeats 5]
//
// Each run's database is written through the same upsert the metrics store uses, so the rollups come
// from the triggers as in a real run; it is cached in $TMPDIR/srgan-bench-monitor-N.db between runs.
// The page's first load asks for the run, every curve at its chart width (1000 columns), the events and
// the preview index; a zoom asks for one curve over a tenth of the run. Medians over --repeats.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ControlServer } from '../dist/actors/control-server.js';
import { openDb } from '../dist/store/db.js';
import { MonitorData } from '../dist/store/monitor-data.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const SIZES = opt('sizes', '10000,100000,1000000').split(',').map(Number);
const KEYS = ['g_loss', 'g_pix', 'g_adv', 'd_loss', 'psnr_train', 'lr_g', 'lr_d', 'steps_per_sec', 'data_wait', 'rss_mib'].slice(
  0,
  Number(opt('keys', 8)),
);
const REPEATS = Number(opt('repeats', 5));
const TOKEN = 'b'.repeat(48);
const RUN = 'bench-run';

function buildDb(file, points) {
  if (fs.existsSync(file)) return;
  const t = performance.now();
  const db = openDb(`${file}.tmp`);
  db.prepare(
    `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir) VALUES (?, ?, 'stopped', 1.7e9, 'espcn-x2-fast', '{"maxSteps":null}', 'h', 1, '/d')`,
  ).run(RUN, RUN);
  const ins = db.prepare(
    `INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, wall_time = excluded.wall_time`,
  );
  const ev = db.prepare('INSERT INTO events (run_id, time, kind, message, data) VALUES (?, ?, ?, ?, ?)');
  const pv = db.prepare('INSERT INTO previews (run_id, step, time, width, height, panels, png) VALUES (?, ?, ?, 256, 64, ?, ?)');
  const png = Buffer.alloc(97_000, 7); // a preview strip's size; its bytes are not read here
  const chunk = 50_000;
  for (let s0 = 0; s0 < points; s0 += chunk) {
    db.transaction(() => {
      for (let step = s0; step < Math.min(points, s0 + chunk); step++) {
        const wall = 1.7e9 + step / 12;
        KEYS.forEach((k, i) => ins.run(RUN, step, k, Math.exp(-step / points) * (1 + i) + Math.sin(step * 0.37 + i) * 0.05, wall));
        if (step % 25 === 0) pv.run(RUN, step, wall, '["a","b","c","d"]', png);
        if (step % 5000 === 0) ev.run(RUN, wall, 'epoch', `epoch ${step / 5000}`, JSON.stringify({ step }));
      }
    })();
  }
  db.close();
  fs.renameSync(`${file}.tmp`, file);
  for (const ext of ['-wal', '-shm']) fs.rmSync(`${file}.tmp${ext}`, { force: true });
  console.error(
    `built ${path.basename(file)} (${points} points × ${KEYS.length} keys) in ${((performance.now() - t) / 1000).toFixed(0)} s`,
  );
}

async function timed(base, p) {
  const t = performance.now();
  const res = await fetch(base + p, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${p}: ${res.status} ${Buffer.from(body).toString()}`);
  return { ms: performance.now() - t, bytes: body.byteLength };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows = [];
for (const n of SIZES) {
  const file = path.join(os.tmpdir(), `srgan-bench-monitor-${n}x${KEYS.length}.db`);
  buildDb(file, n);
  const db = openDb(file, { readonly: true });
  const server = new ControlServer({ port: 0, token: TOKEN, control: null, monitor: { data: new MonitorData(db), liveRunId: () => null } });
  await server.start();
  const base = `http://127.0.0.1:${server.port}`;
  const keys = KEYS.join(',');
  const requests = {
    run: `/api/runs/${RUN}`,
    series: `/api/runs/${RUN}/series?keys=${keys}&width=1000`,
    events: `/api/runs/${RUN}/events`,
    previews: `/api/runs/${RUN}/previews`,
    zoom: `/api/runs/${RUN}/series?keys=g_loss&from=${Math.floor(n * 0.45)}&to=${Math.floor(n * 0.55)}&width=1000`,
  };
  const results = {};
  for (const [name, p] of Object.entries(requests)) {
    await timed(base, p); // warm the page cache
    const runs = [];
    for (let i = 0; i < REPEATS; i++) runs.push(await timed(base, p));
    results[name] = { ms: median(runs.map((r) => r.ms)), bytes: runs[0].bytes };
  }
  const load = ['run', 'series', 'events', 'previews'];
  rows.push({
    points: n,
    keys: KEYS.length,
    loadMs: load.reduce((a, k) => a + results[k].ms, 0),
    loadBytes: load.reduce((a, k) => a + results[k].bytes, 0),
    ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v])),
  });
  await server.stop();
  db.close();
}

const pad = (s, w) => String(s).padStart(w);
console.log(`monitor: server time and bytes per request, ${KEYS.length} keys, median of ${REPEATS} (127.0.0.1, ${os.cpus().length} cores)`);
console.log(
  `${pad('points/key', 11)} ${pad('first load ms', 14)} ${pad('bytes', 10)}   ${['series', 'events', 'previews', 'zoom'].map((k) => pad(`${k} ms / KiB`, 18)).join(' ')}`,
);
for (const r of rows) {
  console.log(
    `${pad(r.points, 11)} ${pad(r.loadMs.toFixed(1), 14)} ${pad(r.loadBytes, 10)}   ${['series', 'events', 'previews', 'zoom']
      .map((k) => pad(`${r[k].ms.toFixed(1)} / ${(r[k].bytes / 1024).toFixed(0)}`, 18))
      .join(' ')}`,
  );
}
console.log(JSON.stringify({ bench: 'monitor', keys: KEYS.length, repeats: REPEATS, rows }));
