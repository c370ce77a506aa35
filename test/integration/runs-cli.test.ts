// The run-reading commands (runs, show, metrics, compare) through the real CLI (`node bin/srgan.js`,
// the built dist/) against a real SQLite file in a temp SRGAN_HOME, filled the way the daemon fills it.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actors/actor.js';
import { MetricsStore, type NewRun } from '../../src/actors/metrics-store.js';
import { MIGRATIONS, openDb, recordCheckpoint, recordEval } from '../../src/store/db.js';
import { srgan, srganJson } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const A = '20261129-112959-aaaa';
const B = '20261129-113500-bbbb';
const C = '20261130-090000-cccc';

const config = (channels: number, extra: Record<string, unknown> = {}) => ({
  preset: 'espcn-x2-fast',
  batchSize: 8,
  patchSize: 64,
  dStepsPerG: 1,
  seed: 1,
  generator: { kind: 'espcn', channels },
  ...extra,
});

const newRun = (id: string, name: string, created: number, cfg: object): NewRun => ({
  id,
  name,
  status: 'starting',
  created_at: created,
  preset: 'espcn-x2-fast',
  backend: null,
  backend_reason: null,
  config: JSON.stringify(cfg),
  pid: 4242,
  data_dir: '/photos',
});

interface Point {
  step: number;
  key: string;
  value: number;
  wall_time: number;
}

describe('srgan runs / show / metrics / compare', () => {
  const tmp = tempDir('srgan-runs-cli-');
  const home = path.join(tmp.dir, 'home');
  const dbFile = path.join(home, 'runs.db');

  beforeAll(async () => {
    fs.mkdirSync(home, { recursive: true });
    const clock = new SimulatedClock(1_700_000_000_000);
    const store = new MetricsStore({ file: dbFile, clock });
    await store.start();
    store.send({ type: 'createRun', run: newRun(A, 'alpha', 1_700_000_000, config(32)) });
    store.send({ type: 'createRun', run: newRun(B, 'beta', 1_700_000_100, config(64, { pixelLoss: 'l1' })) });
    store.send({ type: 'createRun', run: newRun(C, 'gamma', 1_700_000_200, config(32)) });
    // A: g_loss falls to its minimum at step 8 then rises; psnr_train peaks at step 9.
    const gA = [1, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.2, 0.25, 0.28];
    const pA = [20, 21, 22, 23, 24, 25, 26, 27, 29, 28];
    store.send({
      type: 'metrics',
      runId: A,
      points: gA.map((g, i) => ({
        step: i + 1,
        wallTime: 1_700_000_000_000 + (i + 1) * 1000,
        values: { g_loss: g, psnr_train: pA[i], lr_g: 1e-3 },
      })),
    });
    store.send({
      type: 'metrics',
      runId: B,
      points: [1, 2, 3, 4].map((step) => ({
        step,
        wallTime: 1_700_000_100_000 + step * 1000,
        values: { g_loss: 1 / step, psnr_train: 18 + step },
      })),
    });
    store.send({ type: 'updateRun', id: A, status: 'stopped', backend: 'cpu', backendReason: 'test', lastStep: 10, ended: true });
    store.send({ type: 'updateRun', id: B, status: 'failed', backend: 'wasm', lastStep: 4, ended: true });
    store.send({ type: 'updateRun', id: C, status: 'training', backend: 'cpu', lastStep: 0 });
    store.send({ type: 'event', runId: A, kind: 'start', message: 'run alpha' });
    store.send({ type: 'event', runId: B, kind: 'start', message: 'run beta' });
    store.send({ type: 'event', runId: B, kind: 'error', message: 'first failure' });
    store.send({ type: 'event', runId: B, kind: 'error', message: 'trainer exploded', data: { step: 4 } });
    store.send({ type: 'event', runId: B, kind: 'stop', message: 'stopped' });
    await store.stop();

    // Other writers (checkpoint and eval code) use the db.ts helpers on their own connection.
    const db = openDb(dbFile);
    recordCheckpoint(db, { run_id: A, step: 5, time: 1_700_000_005, path: '/ckpt/a-5.bin', checksum: 'sha256:05', kind: 'periodic' });
    recordCheckpoint(db, {
      run_id: A,
      step: 9,
      time: 1_700_000_009,
      path: '/ckpt/a-9.bin',
      checksum: 'sha256:09',
      kind: 'best',
      psnr: 29.25,
    });
    recordEval(db, {
      run_id: A,
      time: 1_700_000_011,
      data_dir: '/eval',
      model: 'model',
      psnr: 28.5,
      ssim: 0.81,
      images: 3,
      json: { images: ['a.png'] },
    });
    db.close();
  });
  afterAll(() => tmp.cleanup());

  const fail = (args: string[]) => {
    const r = srgan(home, args, 60_000);
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  };

  it('runs: lists every run newest first, and filters by one or several statuses', () => {
    const all = srganJson<{ db: string; runs: { id: string; config: { generator: { channels: number } } }[] }>(home, ['runs']);
    expect(all.db).toBe(dbFile);
    expect(all.runs.map((r) => r.id)).toEqual([C, B, A]);
    expect(all.runs[0]?.config.generator.channels).toBe(32);
    expect(srganJson<{ runs: { id: string }[] }>(home, ['runs', '--status', 'stopped,failed']).runs.map((r) => r.id)).toEqual([B, A]);
    expect(srganJson<{ runs: { id: string }[] }>(home, ['runs', '--status', 'training']).runs.map((r) => r.id)).toEqual([C]);
    const text = srgan(home, ['runs', '--status', 'failed']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`${B}\\s+failed\\s+espcn-x2-fast\\s+wasm\\s+4`));
    expect(text.stdout).not.toContain(A);
    const bad = fail(['runs', '--status', 'stoped']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(
      /SRGAN_ERR_CONFIG: --status: unknown status "stoped"; expected one or more of starting, training, paused, stopped, failed/,
    );
  });

  it('show: the run, its config, latest metrics, checkpoints, events and last error', () => {
    const a = srganJson<{
      run: { id: string; status: string; config: { generator: { channels: number } } };
      latestMetrics: Point[];
      checkpoints: { step: number; kind: string; psnr: number | null }[];
      evals: { model: string; psnr: number; json: unknown }[];
      events: Record<string, number>;
      lastError: unknown;
    }>(home, ['show', 'alpha']);
    expect(a.run).toMatchObject({ id: A, status: 'stopped', config: { generator: { channels: 32 } } });
    expect(a.latestMetrics.map((m) => [m.key, m.step, m.value])).toEqual([
      ['g_loss', 10, 0.28],
      ['lr_g', 10, 1e-3],
      ['psnr_train', 10, 28],
    ]);
    expect(a.checkpoints.map((c) => [c.step, c.kind, c.psnr])).toEqual([
      [5, 'periodic', null],
      [9, 'best', 29.25],
    ]);
    expect(a.evals).toEqual([expect.objectContaining({ model: 'model', psnr: 28.5, json: { images: ['a.png'] } })]);
    expect(a.events).toEqual({ start: 1 });
    expect(a.lastError).toBeNull();

    const b = srganJson<{ events: Record<string, number>; lastError: { message: string; data: unknown } }>(home, ['show', B.slice(0, 12)]);
    expect(b.events).toEqual({ error: 2, start: 1, stop: 1 });
    expect(b.lastError).toMatchObject({ message: 'trainer exploded', data: { step: 4 } });

    const text = srgan(home, ['show', A]);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`run:       ${A}  (alpha)`);
    expect(text.stdout).toContain('"channels": 32');
    expect(text.stdout).toMatch(/g_loss\s+10\s+0\.2800/);
    expect(text.stdout).toMatch(/9\s+best\s+29\.25\s+.*\/ckpt\/a-9\.bin/);
    expect(text.stdout).toContain('last error: none');
    expect(srgan(home, ['show', 'beta']).stdout).toMatch(/last error: .* trainer exploded/);
  });

  it('show: what the run takes on disk (checkpoint folders on disk, previews, its share of runs.db)', () => {
    // Run gamma gets a checkpoint folder that exists, and two previews.
    const folder = path.join(path.dirname(dbFile), 'ckpt-c-3');
    fs.mkdirSync(path.join(folder, 'generator'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'tensors.bin'), Buffer.alloc(300_000));
    fs.writeFileSync(path.join(folder, 'generator', 'w.bin'), Buffer.alloc(50_000));
    const db = openDb(dbFile);
    recordCheckpoint(db, { run_id: C, step: 3, time: 1_700_000_203, path: folder, checksum: 'sha256:c3', kind: 'periodic' });
    const preview = db.prepare('INSERT INTO previews (run_id, step, time, width, height, panels, png) VALUES (?, ?, ?, 1, 1, ?, ?)');
    preview.run(C, 1, 1_700_000_201, '[]', Buffer.alloc(1000));
    preview.run(C, 2, 1_700_000_202, '[]', Buffer.alloc(2000));
    db.close();
    const c = srganJson<{ disk: Record<string, number> }>(home, ['show', 'gamma']);
    expect(c.disk).toMatchObject({
      checkpoints: 1,
      checkpointBytes: 350_000,
      previews: 2,
      previewBytes: 3000,
      metricRows: 0,
      metricBytes: 0,
    });
    expect(c.disk.totalBytes).toBe(353_000);
    expect(c.disk.fileBytes).toBe(fs.statSync(dbFile).size);
    const a = srganJson<{ disk: Record<string, number> }>(home, ['show', 'alpha']);
    expect(a.disk).toMatchObject({ checkpoints: 0, checkpointBytes: 0, metricRows: 30 }); // its checkpoint paths are not on disk
    expect(a.disk.metricBytes).toBeGreaterThan(0);
    expect(srgan(home, ['show', 'gamma']).stdout).toMatch(
      /^disk: {6}0\.3 MiB in all: 1 checkpoint on disk 0\.3 MiB; in runs\.db ~0\.0 MiB \(0 metric rows ~0\.0 MiB, 2 previews 0\.0 MiB\); runs\.db is \d+\.\d MiB with every run$/m,
    );
  });

  it('metrics: a table by default, CSV and JSON, one or several keys, thinned with --every', () => {
    const csv = srgan(home, ['metrics', A, '--csv', '--key', 'g_loss']);
    expect(csv.status).toBe(0);
    const lines = csv.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('step,key,value,wall_time');
    expect(lines).toHaveLength(11);
    expect(lines[8]).toBe('8,g_loss,0.2,1700000008');

    const json = srganJson<{ run: { id: string }; keys: string[]; points: Point[] }>(home, [
      'metrics',
      'alpha',
      '--key',
      'psnr_train',
      '--key',
      'g_loss',
      '--every',
      '4',
    ]);
    expect(json.run.id).toBe(A);
    expect(json.keys).toEqual(['psnr_train', 'g_loss']);
    expect(json.points.map((p) => `${p.step}:${p.key}`)).toEqual([
      '1:g_loss',
      '1:psnr_train',
      '5:g_loss',
      '5:psnr_train',
      '9:g_loss',
      '9:psnr_train',
      '10:g_loss',
      '10:psnr_train',
    ]);
    expect(json.points[0]).toEqual({ step: 1, key: 'g_loss', value: 1, wall_time: 1_700_000_001 });

    const table = srgan(home, ['metrics', A]);
    expect(table.status).toBe(0);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^STEP\s+TIME\s+G_LOSS\s+LR_G\s+PSNR_TRAIN$/);
    expect(rows).toHaveLength(11);
    expect(rows[8]).toMatch(/^8\s+\S+ \S+\s+0\.2000\s+1\.000e-3\s+27\.0000$/);

    const unknownKey = fail(['metrics', A, '--key', 'ssim']);
    expect(unknownKey.status).toBe(1);
    expect(unknownKey.stderr).toContain(`--key ssim: not logged by run ${A}; keys: g_loss, lr_g, psnr_train`);
    expect(fail(['metrics', A, '--csv', '--json']).stderr).toContain('--csv and --json cannot be used together');
    expect(fail(['metrics', A, '--every', '0']).stderr).toContain('--every must be an integer >= 1, got "0"');
    const noMetrics = srgan(home, ['metrics', C, '--csv']);
    expect(noMetrics.stdout).toBe('step,key,value,wall_time\n');
  });

  it('compare: final and best values side by side, and the config keys that differ', () => {
    const r = srganJson<{
      runs: { id: string; status: string; steps: number; backend: string }[];
      metrics: {
        key: string;
        direction: string | null;
        runs: { final: { step: number; value: number } | null; best: { step: number; value: number } | null }[];
      }[];
      config: { key: string; values: unknown[] }[];
    }>(home, ['compare', 'alpha', B]);
    expect(r.runs.map((x) => [x.id, x.status, x.steps, x.backend])).toEqual([
      [A, 'stopped', 10, 'cpu'],
      [B, 'failed', 4, 'wasm'],
    ]);
    const byKey = Object.fromEntries(r.metrics.map((m) => [m.key, m]));
    expect(byKey.g_loss?.direction).toBe('min');
    expect(byKey.g_loss?.runs).toEqual([
      { final: { step: 10, value: 0.28 }, best: { step: 8, value: 0.2 } },
      { final: { step: 4, value: 0.25 }, best: { step: 4, value: 0.25 } },
    ]);
    expect(byKey.psnr_train?.direction).toBe('max');
    expect(byKey.psnr_train?.runs[0]?.best).toEqual({ step: 9, value: 29 });
    expect(byKey.lr_g).toEqual({
      key: 'lr_g',
      direction: null,
      runs: [
        { final: { step: 10, value: 1e-3 }, best: null },
        { final: null, best: null },
      ],
    });
    expect(r.config).toEqual([
      { key: 'generator.channels', values: [32, 64] },
      { key: 'pixelLoss', values: [null, 'l1'] },
    ]);

    const onlyLoss = srganJson<{ metrics: { key: string }[] }>(home, ['compare', A, B, C, '--key', 'g_loss']);
    expect(onlyLoss.metrics.map((m) => m.key)).toEqual(['g_loss']);

    const text = srgan(home, ['compare', A, B]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^\\s+${A}\\s+${B}$`, 'm'));
    expect(text.stdout).toMatch(/^g_loss best \(min\)\s+0\.2000 @8\s+0\.2500 @4$/m);
    expect(text.stdout).toMatch(/^config generator\.channels\s+32\s+64$/m);
    expect(text.stdout).toMatch(/^config pixelLoss\s+-\s+l1$/m);
  });

  it('names the candidates of an ambiguous RUN, and the latest runs for an unknown one', () => {
    for (const args of [
      ['show', '20261129'],
      ['metrics', '20261129'],
      ['compare', '20261129', C],
    ]) {
      const r = fail(args);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('SRGAN_ERR_CONFIG: "20261129" matches 2 runs; use more of the id:');
      expect(r.stderr).toMatch(new RegExp(`${B}\\s+failed\\s+beta\\n\\s+${A}\\s+stopped\\s+alpha`));
    }
    const unknown = fail(['show', 'nope']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('no run matches "nope" (by id, id prefix or name); the latest runs are:');
    expect(unknown.stderr).toContain(C);
    expect(fail(['compare', A, 'nope']).stderr).toContain('no run matches "nope"');
  });

  it('checks the number of RUN arguments and documents every command in --help', () => {
    const missing = fail(['show']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('srgan show: expected a RUN argument, got 0');
    expect(missing.stderr).toContain('usage: srgan show RUN [--json]');
    expect(fail(['compare', A]).stderr).toContain('expected at least 2 RUN arguments, got 1');
    expect(fail(['metrics', A, B]).stderr).toContain(`unexpected argument ${B}`);
    expect(fail(['runs', 'extra']).status).toBe(2);
    const usages: Record<string, string> = {
      runs: 'usage: srgan runs [--json] [--status STATUS[,STATUS...]]',
      show: 'usage: srgan show RUN [--json]',
      metrics: 'usage: srgan metrics RUN [--key KEY ...] [--csv | --json] [--every N]',
      compare: 'usage: srgan compare RUN RUN... [--key KEY ...] [--json]',
    };
    for (const [command, usage] of Object.entries(usages)) {
      const r = srgan(home, [command, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(usage);
      expect(r.stdout).toContain('--json');
    }
    expect(srgan(home, ['metrics', '--help']).stdout).toMatch(/--every N\s+keep every Nth point/);
    expect(srgan(home, ['--help']).stdout).toMatch(/compare\s+compare runs side by side/);
  });

  it('reads while a writer holds an open transaction (WAL): it sees the last commit', () => {
    const writer = new Database(dbFile);
    try {
      writer.pragma('busy_timeout = 5000');
      writer.exec('BEGIN IMMEDIATE');
      writer.prepare('INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, 11, ?, 0.1, 1)').run(A, 'g_loss');
      writer.prepare("UPDATE runs SET status = 'training' WHERE id = ?").run(A);
      // The writer keeps its lock until after the CLI has exited: a reader that needed the lock would
      // fail (SQLITE_BUSY after its busy timeout) instead of answering.
      const shown = srganJson<{ run: { status: string }; latestMetrics: Point[] }>(home, ['show', A]);
      expect(shown.run.status).toBe('stopped');
      expect(shown.latestMetrics.find((m) => m.key === 'g_loss')?.step).toBe(10);
      writer.exec('ROLLBACK');
    } finally {
      writer.close();
    }
  });

  it('reads a v1 database (left by an older srgan) without migrating it', () => {
    const oldHome = path.join(tmp.dir, 'old-home');
    fs.mkdirSync(oldHome);
    const file = path.join(oldHome, 'runs.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(MIGRATIONS[0]);
    db.pragma('user_version = 1');
    const insert = db.prepare(
      `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir, last_step)
       VALUES (?, ?, 'stopped', ?, 'espcn-x2-fast', ?, 'old-host', 1, '/d', 2)`,
    );
    insert.run('old-1', 'first', 1, JSON.stringify(config(16)));
    insert.run('old-2', 'second', 2, JSON.stringify(config(48)));
    const metric = db.prepare("INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, 'g_loss', ?, 0)");
    for (const [run, step, value] of [
      ['old-1', 1, 0.5],
      ['old-1', 2, 0.4],
      ['old-2', 1, 0.3],
    ] as const)
      metric.run(run, step, value);
    db.close();

    const shown = srganJson<{ latestMetrics: Point[]; checkpoints: unknown[] }>(oldHome, ['show', 'first']);
    expect(shown.latestMetrics.map((m) => [m.key, m.step, m.value])).toEqual([['g_loss', 2, 0.4]]);
    expect(shown.checkpoints).toEqual([]);
    const cmp = srganJson<{ config: { key: string; values: unknown[] }[] }>(oldHome, ['compare', 'first', 'second']);
    expect(cmp.config).toEqual([{ key: 'generator.channels', values: [16, 48] }]);
    const after = new Database(file, { readonly: true });
    expect(after.pragma('user_version', { simple: true })).toBe(1);
    after.close();
  });

  it("show: the latest validation against bicubic, the best gain with its step, and each checkpoint's gain", () => {
    const valHome = path.join(tmp.dir, 'val-home');
    fs.mkdirSync(valHome);
    const db = openDb(path.join(valHome, 'runs.db'));
    db.prepare(
      `INSERT INTO runs (id, name, status, created_at, preset, config, host, pid, data_dir, last_step)
       VALUES ('val-run', 'validated', 'stopped', 1, 'espcn-x2-fast', ?, 'host', 1, '/d', 30)`,
    ).run(JSON.stringify(config(32)));
    const metric = db.prepare("INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES ('val-run', ?, ?, ?, 0)");
    for (const [step, psnr, bicubic] of [
      [10, 30.5, 31],
      [20, 31.75, 31],
      [30, 30.25, 31.125],
    ] as const) {
      metric.run(step, 'val_psnr', psnr);
      metric.run(step, 'val_bicubic', bicubic);
      metric.run(step, 'val_gain', psnr - bicubic);
    }
    recordCheckpoint(db, {
      run_id: 'val-run',
      step: 20,
      time: 20,
      path: '/ckpt/val-20',
      checksum: 'x',
      kind: 'best',
      psnr: 31.75,
      gain: 0.75,
    });
    recordCheckpoint(db, {
      run_id: 'val-run',
      step: 30,
      time: 30,
      path: '/ckpt/val-30',
      checksum: 'x',
      kind: 'stop',
      psnr: 30.25,
      gain: -0.875,
    });
    db.close();

    const shown = srganJson<{ validation: unknown; checkpoints: { step: number; gain: number | null }[] }>(valHome, ['show', 'validated']);
    expect(shown.validation).toEqual({ latest: { step: 30, psnr: 30.25, bicubic: 31.125, gain: -0.875 }, best: { step: 20, gain: 0.75 } });
    expect(shown.checkpoints.map((c) => [c.step, c.gain])).toEqual([
      [20, 0.75],
      [30, -0.875],
    ]);
    const text = srgan(valHome, ['show', 'validated']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain('validation: 30.25 dB vs bicubic 31.13 dB: −0.88 dB (worse than bicubic) at step 30');
    expect(text.stdout).toContain('best gain:  +0.75 dB at step 20');
    expect(text.stdout).toMatch(/^\s+ID\s+STEP\s+KIND\s+PSNR\s+GAIN\s+TIME\s+PATH$/m);
    expect(text.stdout).toMatch(/20\s+best\s+31\.75\s+\+0\.75\s+.*\/ckpt\/val-20/);
    expect(text.stdout).toMatch(/30\s+stop\s+30\.25\s+−0\.88\s+.*\/ckpt\/val-30/);
    // compare ranks gains like PSNRs: higher is better.
    const cmp = srganJson<{ metrics: { key: string; direction: string | null; runs: { best: unknown }[] }[] }>(valHome, [
      'compare',
      'validated',
      'validated',
      '--key',
      'val_gain',
    ]);
    expect(cmp.metrics).toEqual([
      { key: 'val_gain', direction: 'max', runs: [expect.objectContaining({ best: { step: 20, value: 0.75 } }), expect.anything()] },
    ]);

    // Run A logged no validation.
    expect(srganJson<{ validation: unknown }>(home, ['show', A]).validation).toEqual({ latest: null, best: null });
    expect(srgan(home, ['show', A]).stdout).toContain('validation: none');
  });

  it('explains a home without a database', () => {
    const empty = path.join(tmp.dir, 'empty-home');
    expect(srganJson<{ runs: unknown[] }>(empty, ['runs']).runs).toEqual([]);
    const none = srgan(empty, ['show', 'x']);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain(`no runs database at ${path.join(empty, 'runs.db')}`);
  });
});
