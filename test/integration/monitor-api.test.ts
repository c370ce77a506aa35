// The monitor's HTTP API (docs/protocol.md, "HTTP API") over a runs.db written by the real metrics
// store: token checks, runs, downsampled series (bounded, and true to the points), events on the step
// axis, preview images by id with caching, checkpoints and pins; and `srgan monitor`, the read-only
// server for past runs, as a user starts it.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

import { ControlServer } from '../../src/actors/control-server.js';
import { MetricsStore, type StoredPreview } from '../../src/actors/metrics-store.js';
import { encodePng } from '../../src/data/image/patches.js';
import { openDb, pinCheckpoint } from '../../src/store/db.js';
import { MonitorData, type SeriesAnswer } from '../../src/store/monitor-data.js';
import { mulberry32 } from '../../src/util/prng.js';
import { srgan } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/srgan.js');
const TOKEN = 'ab'.repeat(24);
const STEPS = 30_000;
const T0 = 1_700_000_000;

const newRun = (id: string, created: number, maxSteps: number | null) => ({
  id,
  name: `run ${id}`,
  status: 'stopped',
  created_at: created,
  preset: 'espcn-x2-fast',
  backend: 'wasm-native',
  backend_reason: 'test',
  config: JSON.stringify({ maxSteps }),
  pid: 1,
  data_dir: '/data',
});

/** Every point of g_loss of run "long": step → [value, wall time]. Also in the database. */
const points = new Map<number, [number, number]>();

let tmp: ReturnType<typeof tempDir>;
let dbFile: string;
let reader: Database.Database;
let writer: Database.Database;
let server: ControlServer;
let base: string;
const stored: StoredPreview[] = [];
const pngs = new Map<number, Buffer>();
const pins: [string, number, boolean][] = [];

beforeAll(async () => {
  tmp = tempDir('srgan-monitor-api-');
  dbFile = path.join(tmp.dir, 'runs.db');
  const store = new MetricsStore({ file: dbFile, onPreviewStored: (p) => stored.push(p) });
  await store.start();
  store.send({ type: 'createRun', run: newRun('long', T0, 50_000) });
  store.send({ type: 'createRun', run: newRun('short', T0 + 10, null) });
  const rand = mulberry32(7);
  for (let step = 0; step < STEPS; step += 1 + Math.floor(rand() * 2)) {
    const value = Math.exp(-step / 10_000) + 0.1 * rand() + (step === 20_001 ? 5 : 0); // one spike
    const wall = (T0 + step / 10) * 1000;
    points.set(step, [value, wall / 1000]);
    const values: Record<string, number> = { g_loss: value };
    if (step % 1000 === 0) values.val_gain = step / 10_000 - 1;
    store.send({ type: 'metrics', runId: 'long', points: [{ step, wallTime: wall, values }] });
  }
  for (let step = 0; step < 50; step++)
    store.send({ type: 'metrics', runId: 'short', points: [{ step, wallTime: (T0 + 20 + step) * 1000, values: { g_loss: 1 } }] });
  // Preview strips whose pixels say their step.
  for (const step of [0, 10_000, 20_000]) {
    const data = new Uint8Array(4 * 8 * 8 * 3).fill(step / 10_000 + 1);
    const png = await encodePng({ width: 32, height: 8, data });
    store.send({ type: 'preview', runId: 'long', step, width: 32, height: 8, panels: ['a', 'b', 'c', 'd'], png });
  }
  store.send({ type: 'event', runId: 'long', kind: 'pause', message: 'paused at step ?' }); // placed by time
  store.send({ type: 'event', runId: 'long', kind: 'checkpoint', message: 'at 12000', data: { step: 12_000 } });
  for (const step of [10_000, 20_000]) {
    store.send({
      type: 'checkpoint',
      row: { run_id: 'long', step, time: T0 + step / 10, path: `/ck/step-${step}`, checksum: 'x', kind: 'periodic', psnr: 30, gain: 0.5 },
    });
  }
  store.flushNow();
  await store.stop();
  reader = openDb(dbFile, { readonly: true });
  for (const p of stored) pngs.set(p.id, reader.prepare('SELECT png FROM previews WHERE id = ?').pluck().get(p.id) as Buffer);
  writer = openDb(dbFile);
  server = new ControlServer({
    port: 0,
    token: TOKEN,
    control: null,
    monitor: {
      data: new MonitorData(reader),
      liveRunId: () => 'long',
      pin: (runId, step, pinned) => {
        pins.push([runId, step, pinned]);
        return pinCheckpoint(writer, runId, step, pinned);
      },
    },
  });
  await server.start();
  base = `http://127.0.0.1:${server.port}`;
}, 120_000);

afterAll(async () => {
  await server?.stop();
  reader?.close();
  writer?.close();
  tmp?.cleanup();
});

const auth = { authorization: `Bearer ${TOKEN}` };
async function getJson<T>(p: string, headers: Record<string, string> = auth): Promise<{ status: number; body: T; bytes: number }> {
  const res = await fetch(base + p, { headers });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T, bytes: text.length };
}

/** The points of g_loss in [from, to], brute force. */
function inRange(from: number, to: number): [number, number, number][] {
  return [...points].filter(([s]) => s >= from && s <= to).map(([s, [v, t]]) => [s, v, t]);
}

describe('monitor HTTP API', () => {
  it('refuses every /api/ request without the token, and a wrong one, naming what is missing', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: TOKEN }] as Record<string, string>[]) {
      const r = await getJson<{ error: { code: string; message: string } }>('/api/runs', headers);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('SRGAN_ERR_UNAUTHORIZED');
    }
    const img = await fetch(`${base}/api/previews/${stored[0].id}.png`);
    expect(img.status).toBe(401);
  });

  it('lists runs newest first with status, steps, max steps, best validation gain and which one is live', async () => {
    const { body } = await getJson<{ runs: { id: string; lastStep: number; maxSteps: number | null; best: unknown; live: boolean }[] }>(
      '/api/runs',
    );
    expect(body.runs.map((r) => r.id)).toEqual(['short', 'long']);
    const long = body.runs[1];
    expect(long.maxSteps).toBe(50_000);
    expect(long.live).toBe(true);
    expect(long.best).toEqual({ key: 'val_gain', step: 29_000, value: 29_000 / 10_000 - 1 });
    const info = await getJson<{ readOnly: boolean; liveRunId: string }>('/api/info');
    expect(info.body).toEqual({ readOnly: false, liveRunId: 'long' });
    const run = await getJson<{ keys: string[] }>('/api/runs/long');
    expect(run.body.keys).toEqual(['g_loss', 'val_gain']);
    expect((await getJson('/api/runs/nope')).status).toBe(404);
  });

  it('downsamples a curve to at most `width` columns whose envelope, counts and last points are those of the points', async () => {
    for (const [from, to, width, bucket] of [
      [undefined, undefined, 500, 1], // 60 steps a column: the points themselves
      [undefined, undefined, 100, 64],
      [undefined, undefined, 10, 1024],
      [1234, 27_777, 300, 64], // ranges that cut buckets: the partial ends come from the points
      [19_990, 20_010, 4000, 1],
    ] as const) {
      const q = new URLSearchParams({ keys: 'g_loss', width: String(width) });
      if (from !== undefined) q.set('from', String(from));
      if (to !== undefined) q.set('to', String(to));
      const { body } = await getJson<SeriesAnswer>(`/api/runs/long/series?${q}`);
      const lo = from ?? 0;
      const hi = to ?? Math.max(...points.keys());
      expect([body.from, body.to, body.width, body.bucket]).toEqual([lo, hi, width, bucket]);
      const s = body.series.g_loss;
      const want = inRange(lo, hi);
      expect(s.step.length).toBeLessThanOrEqual(width);
      expect(s.n.reduce((a, b) => a + b, 0)).toBe(want.length);
      expect(Math.max(...s.max)).toBeCloseTo(Math.max(...want.map((p) => p[1])), 5);
      expect(Math.min(...s.min)).toBeCloseTo(Math.min(...want.map((p) => p[1])), 5);
      const meanOfAll = s.mean.reduce((a, m, i) => a + m * s.n[i], 0) / want.length;
      expect(meanOfAll).toBeCloseTo(want.reduce((a, p) => a + p[1], 0) / want.length, 4);
      for (let i = 0; i < s.step.length; i++) {
        const [value, time] = points.get(s.step[i])!;
        expect(s.last[i]).toBeCloseTo(value, 5);
        expect(s.time[i]).toBeCloseTo(time, 3);
        expect(s.min[i]).toBeLessThanOrEqual(s.mean[i] + 1e-6);
        expect(s.max[i]).toBeGreaterThanOrEqual(s.mean[i] - 1e-6);
        if (i > 0) expect(s.step[i]).toBeGreaterThan(s.step[i - 1]);
      }
      if (bucket === 1 && width >= hi - lo + 1) expect(s.n.every((n) => n === 1)).toBe(true);
    }
  });

  it('refuses bad series parameters with 400 naming the parameter', async () => {
    for (const [q, what] of [
      ['keys=g_loss&width=0', '"width"'],
      ['keys=g_loss&width=99999', '"width"'],
      ['keys=g_loss&from=-3', '"from"'],
      ['keys=g_loss&from=10&to=5', '"to"'],
      ['keys=', '"keys"'],
    ] as const) {
      const r = await getJson<{ error: { message: string } }>(`/api/runs/long/series?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.message).toContain(what);
    }
  });

  it('places events on the step axis: their own step, else the step reached by their time', async () => {
    const { body } = await getJson<{ events: { kind: string; step: number | null }[] }>('/api/runs/long/events');
    expect(body.events.map((e) => e.kind)).toEqual(['pause', 'checkpoint']);
    expect(body.events[1].step).toBe(12_000);
    // The pause was stored after every point (its wall time is now, after all of them): the last step.
    expect(body.events[0].step).toBeGreaterThan(STEPS - 100);
  });

  it('lists previews by step and serves each PNG by id, cached for good', async () => {
    const { body } = await getJson<{ previews: { id: number[]; step: number[] }; width: number; height: number; panels: string[] }>(
      '/api/runs/long/previews',
    );
    expect(body.previews.step).toEqual([0, 10_000, 20_000]);
    expect(body.previews.id).toEqual(stored.map((p) => p.id));
    expect([body.width, body.height, body.panels]).toEqual([32, 8, ['a', 'b', 'c', 'd']]);
    const res = await fetch(`${base}/api/previews/${stored[1].id}.png`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(res.headers.get('x-srgan-step')).toBe('10000');
    expect(Buffer.from(await res.arrayBuffer()).equals(pngs.get(stored[1].id)!)).toBe(true);
    const again = await fetch(`${base}/api/previews/${stored[1].id}.png`, {
      headers: { ...auth, 'if-none-match': res.headers.get('etag')! },
    });
    expect(again.status).toBe(304);
    expect((await fetch(`${base}/api/previews/999999.png`, { headers: auth })).status).toBe(404);
  });

  it('lists checkpoints and pins one through POST; a step without a checkpoint is 404', async () => {
    const post = (step: number, body: string) =>
      fetch(`${base}/api/runs/long/checkpoints/${step}/pin`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body,
      });
    const r = await post(10_000, '{"pinned": true}');
    expect(r.status).toBe(200);
    expect(((await r.json()) as { checkpoint: { step: number; pinned: number } }).checkpoint).toMatchObject({ step: 10_000, pinned: 1 });
    expect(pins).toEqual([['long', 10_000, true]]);
    const list = await getJson<{ checkpoints: { step: number; pinned: number }[] }>('/api/runs/long/checkpoints');
    expect(list.body.checkpoints.map((c) => [c.step, c.pinned])).toEqual([
      [10_000, 1],
      [20_000, 0],
    ]);
    expect((await post(12_345, '{"pinned": true}')).status).toBe(404);
    expect((await post(10_000, '{"pinned": "yes"}')).status).toBe(400);
    expect((await post(10_000, 'x'.repeat(5000))).status).toBe(413);
  });
});

describe('srgan monitor', () => {
  let child: ChildProcess | null = null;
  afterAll(() => child?.kill('SIGKILL'));

  it('serves past runs read-only with the home token, refuses control, and stops on SIGTERM', async () => {
    const home = path.join(tmp.dir, 'home');
    fs.mkdirSync(home);
    await writer.backup(path.join(home, 'runs.db')); // with what is still in the WAL
    child = spawn(process.execPath, [BIN, 'monitor', '--port', '0', '--json'], { env: { ...process.env, SRGAN_HOME: home } });
    let out = '';
    const line = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      child!.once('exit', (code) => reject(new Error(`srgan monitor exited ${code}: ${out}`)));
    });
    const info = JSON.parse(line) as { url: string; port: number; readOnly: boolean };
    expect(info.readOnly).toBe(true);
    const token = fs.readFileSync(path.join(home, 'token'), 'utf8').trim();
    expect(new URL(info.url).searchParams.get('token')).toBe(token);
    const at = `http://127.0.0.1:${info.port}`;
    const h = { authorization: `Bearer ${token}` };
    expect(await (await fetch(`${at}/api/info`, { headers: h })).json()).toEqual({ readOnly: true, liveRunId: null });
    const runs = (await (await fetch(`${at}/api/runs`, { headers: h })).json()) as { runs: { id: string; live: boolean }[] };
    expect(runs.runs.map((r) => [r.id, r.live])).toEqual([
      ['short', false],
      ['long', false],
    ]);
    expect((await fetch(`${at}/`)).status).toBe(200); // the page itself
    const pin = await fetch(`${at}/api/runs/long/checkpoints/20000/pin`, { method: 'POST', headers: h, body: '{"pinned":true}' });
    expect(pin.status).toBe(403);
    // Control over the WebSocket is refused: nothing trains here.
    const ws = new WebSocket(`ws://127.0.0.1:${info.port}/ws`);
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'pause', token }));
    const reply = JSON.parse(String(await new Promise((r) => ws.once('message', r)))) as { type: string; code: string };
    expect(reply).toMatchObject({ type: 'error', code: 'SRGAN_ERR_NOT_RUNNING' });
    ws.close();
    const code = await new Promise<number | null>((resolve) => {
      child!.once('exit', resolve);
      child!.kill('SIGTERM');
    });
    expect(code).toBe(0);
    child = null;
  });

  it('srgan checkpoint --keep pins in runs.db without a daemon; --unkeep unpins; a missing step names the ones there are', () => {
    const home = path.join(tmp.dir, 'home');
    const keep = srgan(home, ['checkpoint', '--keep', '20000', '--run', 'long', '--json']);
    expect(keep.status, keep.stderr).toBe(0);
    expect(JSON.parse(keep.stdout)).toEqual({ runId: 'long', step: 20_000, pinned: true, path: '/ck/step-20000' });
    const db = new Database(path.join(home, 'runs.db'), { readonly: true });
    expect(db.prepare("SELECT step FROM checkpoints WHERE run_id = 'long' AND pinned = 1").pluck().all()).toEqual([10_000, 20_000]);
    db.close();
    const unkeep = srgan(home, ['checkpoint', '--unkeep', '10000', '--run', 'long']);
    expect(unkeep.status, unkeep.stderr).toBe(0);
    expect(unkeep.stdout).toContain('unpinned run long step 10000');
    const missing = srgan(home, ['checkpoint', '--keep', '5', '--run', 'long']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/SRGAN_ERR_CHECKPOINT.*no checkpoint at step 5; it has steps 10000, 20000/);
    const both = srgan(home, ['checkpoint', '--keep', '5', '--unkeep', '5']);
    expect(both.status).not.toBe(0);
  });
});
