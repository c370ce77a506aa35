// The commands that read runs from $SRGAN_HOME/runs.db, or from the files --db names (several read as
// one: store/multi-db.ts): runs, show, metrics, compare. They open the databases read-only (never
// migrating them) and read while a daemon writes: WAL gives each query a consistent snapshot. Usage and
// --help live with their entries in runs-commands.ts.

import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { homePaths } from '../store/home.js';
import {
  bestMetric,
  eventCounts,
  getParams,
  lastEvent,
  latestMetrics,
  listCheckpoints,
  listEvals,
  listRuns,
  metricCurves,
  metricKeys,
  resolveRun,
  RUN_STATUSES,
  runStorage,
  validationSummary,
  type ParamValue,
  type RunRow,
} from '../store/db.js';
import { openRunsDbs } from '../store/multi-db.js';
import { SrganError } from '../util/errors.js';
import { describeGain, formatNumber, formatTime, printTable, signedDb } from './format.js';
import { intFlag, type Values } from './flags.js';

/** `srgan runs [--json] [--status S[,S]]` */
export async function runsCommand(v: Values): Promise<number> {
  const statuses = typeof v.status === 'string' ? parseStatuses(v.status) : undefined;
  const files = dbFiles(v);
  // $SRGAN_HOME only when no --db is given (homePaths creates its folders).
  const shown = files.length > 0 ? [...new Set(files.map((f) => path.resolve(f)))] : [homePaths().db];
  const runs = files.length > 0 || fs.existsSync(shown[0]) ? withRunsDb(v, (db) => listRuns(db, statuses ? { status: statuses } : {})) : [];
  if (v.json) {
    console.log(JSON.stringify({ db: shown[0], dbs: shown, runs: runs.map(withParsedConfig) }));
    return 0;
  }
  console.log(`${shown.length > 1 ? 'databases' : 'database'}: ${shown.join(', ')}`);
  if (runs.length === 0) {
    console.log(statuses ? `no runs with status ${statuses.join(' or ')}` : 'no runs yet');
    return 0;
  }
  // Runs from the queue say which worker trained them last.
  const workers = runs.some((r) => r.worker);
  printTable(
    ['RUN', 'STATUS', 'PRESET', 'BACKEND', 'STEP', 'CREATED', ...(workers ? ['WORKER'] : []), 'CONFIG'],
    runs.map((r) => [
      r.id,
      r.status,
      r.preset,
      r.backend ?? '-',
      String(r.last_step),
      formatTime(r.created_at),
      ...(workers ? [r.worker ? `${r.worker} job ${r.job}` : '-'] : []),
      summarizeConfig(r.config),
    ]),
  );
  return 0;
}

/** `srgan show RUN [--json]` */
export async function showCommand(v: Values, args: string[]): Promise<number> {
  const report = withRunsDb(v, (db) => {
    const run = resolveRun(db, args[0]);
    const errorEvent = lastEvent(db, run.id, 'error');
    return {
      run: withParsedConfig(run),
      latestMetrics: latestMetrics(db, run.id),
      validation: validationSummary(db, run.id),
      checkpoints: listCheckpoints(db, run.id, { includeDeleted: true }),
      evals: listEvals(db, run.id).map((e) => ({ ...e, json: e.json === null ? null : (JSON.parse(e.json) as unknown) })),
      events: Object.fromEntries(eventCounts(db, run.id).map((e) => [e.kind, e.count])),
      lastError: errorEvent && { ...errorEvent, data: errorEvent.data === null ? null : (JSON.parse(errorEvent.data) as unknown) },
      disk: diskUsage(db, run.id, listCheckpoints(db, run.id)),
    };
  });
  if (v.json) {
    console.log(JSON.stringify(report));
    return 0;
  }
  const r = report.run;
  console.log(`run:       ${r.id}  (${r.name})`);
  console.log(`status:    ${r.status}`);
  console.log(`created:   ${formatTime(r.created_at)}${r.ended_at === null ? '' : `, ended ${formatTime(r.ended_at)}`}`);
  console.log(`preset:    ${r.preset}`);
  console.log(`backend:   ${r.backend ?? '-'}${r.backend_reason ? `: ${r.backend_reason}` : ''}`);
  console.log(`steps:     ${r.last_step}`);
  console.log(`data:      ${r.data_dir}`);
  console.log(`host:      ${r.host} (pid ${r.pid})`);
  if (r.worker) {
    const from = r.continued_from === null || r.continued_from === undefined ? '' : `; continued here from step ${r.continued_from}`;
    console.log(`queue:     job ${r.job} on worker ${r.worker}${from}`);
  }
  console.log('\nconfig:');
  console.log(indent(JSON.stringify(r.config, null, 2)));
  console.log('\nlatest metrics:');
  if (report.latestMetrics.length === 0) console.log('  none');
  else
    printTable(
      ['KEY', 'STEP', 'VALUE', 'TIME'],
      report.latestMetrics.map((m) => [m.key, String(m.step), formatNumber(m.value), formatTime(m.wall_time)]),
      '  ',
    );
  const val = report.validation;
  console.log(
    `\nvalidation: ${val.latest ? `${describeGain(val.latest.gain, val.latest.psnr, val.latest.bicubic)} at step ${val.latest.step}` : 'none'}`,
  );
  if (val.best) console.log(`best gain:  ${signedDb(val.best.gain)} at step ${val.best.step}`);
  console.log('\ncheckpoints:');
  if (report.checkpoints.length === 0) console.log('  none');
  else {
    printTable(
      ['ID', 'STEP', 'KIND', 'PSNR', 'GAIN', 'TIME', 'PATH'],
      report.checkpoints.map((c) => [
        String(c.id),
        String(c.step),
        c.kind,
        c.psnr === null ? '-' : c.psnr.toFixed(2),
        c.gain === null ? '-' : signedDb(c.gain).replace(' dB', ''),
        formatTime(c.time),
        c.deleted ? `${c.path} (deleted)` : c.path,
      ]),
      '  ',
    );
  }
  if (report.evals.length > 0) {
    console.log('\nevaluations:');
    printTable(
      ['TIME', 'MODEL', 'PSNR', 'SSIM', 'IMAGES', 'DATA'],
      report.evals.map((e) => [
        formatTime(e.time),
        e.model,
        e.psnr === null ? '-' : e.psnr.toFixed(2),
        e.ssim === null ? '-' : e.ssim.toFixed(4),
        String(e.images),
        e.data_dir,
      ]),
      '  ',
    );
  }
  const d = report.disk;
  console.log(
    `\ndisk:      ${mib(d.totalBytes)} in all: ${d.checkpoints} checkpoint${d.checkpoints === 1 ? '' : 's'} on disk ${mib(d.checkpointBytes)}; ` +
      `in runs.db ~${mib(d.dbBytes)} (${d.metricRows} metric rows ~${mib(d.metricBytes)}, ${d.previews} previews ${mib(d.previewBytes)}); ` +
      `runs.db is ${mib(d.fileBytes)} with every run`,
  );
  const counts = Object.entries(report.events);
  console.log(`\nevents:    ${counts.length === 0 ? 'none' : counts.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const err = report.lastError;
  console.log(`last error: ${err ? `${formatTime(err.time)} ${err.message}` : 'none'}`);
  return 0;
}

/** `srgan metrics RUN [--key K ...] [--csv|--json] [--every N]` */
export async function metricsCommand(v: Values, args: string[]): Promise<number> {
  if (v.csv && v.json) throw new SrganError('SRGAN_ERR_CONFIG', '--csv and --json cannot be used together');
  const every = typeof v.every === 'string' ? intFlag('--every', v.every, 1) : 1;
  const wanted = stringList(v.key);
  const { run, keys, points } = withRunsDb(v, (db) => {
    const run = resolveRun(db, args[0]);
    const keys = checkKeys(wanted, metricKeys(db, run.id), `run ${run.id}`);
    return { run, keys, points: metricCurves(db, run.id, keys, every) };
  });
  if (v.json) {
    console.log(JSON.stringify({ run: { id: run.id, name: run.name }, keys, every, points }));
    return 0;
  }
  if (v.csv) {
    const lines = [
      'step,key,value,wall_time',
      ...points.map((p) => [String(p.step), csvField(p.key), String(p.value), String(p.wall_time)].join(',')),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  }
  if (points.length === 0) {
    console.log(`run ${run.id} has no metrics yet`);
    return 0;
  }
  // One row per step, one column per key: the curves side by side.
  const bySteps = new Map<number, { time: number; values: Map<string, number> }>();
  for (const p of points) {
    let row = bySteps.get(p.step);
    if (!row) bySteps.set(p.step, (row = { time: p.wall_time, values: new Map() }));
    row.values.set(p.key, p.value);
  }
  printTable(
    ['STEP', 'TIME', ...keys.map((k) => k.toUpperCase())],
    [...bySteps].map(([step, row]) => [
      String(step),
      formatTime(row.time),
      ...keys.map((k) => (row.values.has(k) ? formatNumber(row.values.get(k) as number) : '-')),
    ]),
  );
  return 0;
}

/** Which way is better for a metric key: min for losses, max for PSNR/SSIM and gains over bicubic, null when neither. */
export function metricDirection(key: string): 'min' | 'max' | null {
  const k = key.toLowerCase();
  if (k.includes('psnr') || k.includes('ssim') || /(^|_)gain(_|$)/.test(k)) return 'max';
  if (k.includes('loss') || /_(l1|mse|adv|perc)$/.test(k)) return 'min';
  return null;
}

/** `srgan compare RUN RUN... [--key K ...] [--json]` */
export async function compareCommand(v: Values, args: string[]): Promise<number> {
  const wanted = stringList(v.key);
  const report = withRunsDb(v, (db) => {
    const runs = args.map((ref) => resolveRun(db, ref));
    const allKeys = [...new Set(runs.flatMap((r) => metricKeys(db, r.id)))].sort();
    const keys = checkKeys(wanted, allKeys, 'these runs');
    const latest = runs.map((r) => new Map(latestMetrics(db, r.id).map((m) => [m.key, m])));
    const metrics = keys.map((key) => {
      const direction = metricDirection(key);
      return {
        key,
        direction,
        runs: runs.map((r, i) => {
          const final = latest[i]?.get(key);
          return {
            final: final ? { step: final.step, value: final.value } : null,
            best: direction ? bestMetric(db, r.id, key, direction) : null,
          };
        }),
      };
    });
    const params = runs.map((r) => getParams(db, r.id));
    const paramKeys = [...new Set(params.flatMap((p) => [...p.keys()]))].sort();
    const config = paramKeys
      .map((key) => ({ key, values: params.map((p) => (p.has(key) ? (p.get(key) as ParamValue) : undefined)) }))
      .filter(({ values }) => new Set(values.map((x) => (x === undefined ? 'undefined' : JSON.stringify(x)))).size > 1)
      .map(({ key, values }) => ({ key, values: values.map((x) => x ?? null) }));
    return {
      runs: runs.map((r) => ({ id: r.id, name: r.name, status: r.status, preset: r.preset, backend: r.backend, steps: r.last_step })),
      metrics,
      config,
    };
  });
  if (v.json) {
    console.log(JSON.stringify(report));
    return 0;
  }
  const point = (p: { step: number; value: number } | null) => (p ? `${formatNumber(p.value)} @${p.step}` : '-');
  const rows: string[][] = [
    ['name', ...report.runs.map((r) => r.name)],
    ['status', ...report.runs.map((r) => r.status)],
    ['preset', ...report.runs.map((r) => r.preset)],
    ['backend', ...report.runs.map((r) => r.backend ?? '-')],
    ['steps', ...report.runs.map((r) => String(r.steps))],
  ];
  for (const m of report.metrics) {
    rows.push([`${m.key} final`, ...m.runs.map((x) => point(x.final))]);
    if (m.direction) rows.push([`${m.key} best (${m.direction})`, ...m.runs.map((x) => point(x.best))]);
  }
  if (report.config.length === 0) rows.push(['config', ...report.runs.map(() => 'same')]);
  for (const c of report.config) rows.push([`config ${c.key}`, ...c.values.map((x) => (x === null ? '-' : String(x)))]);
  printTable(['', ...report.runs.map((r) => r.id)], rows);
  return 0;
}

// ---- helpers -------------------------------------------------------------------------------------

/** The files --db names (none: $SRGAN_HOME/runs.db). */
function dbFiles(v: Values): string[] {
  return stringList(v.db);
}

/**
 * Runs `fn` on the databases --db names, read as one, or else on $SRGAN_HOME/runs.db (a missing one is
 * an error naming the home).
 */
function withRunsDb<T>(v: Values, fn: (db: Database.Database) => T): T {
  let files = dbFiles(v);
  if (files.length === 0) {
    const paths = homePaths();
    if (!fs.existsSync(paths.db))
      throw new SrganError('SRGAN_ERR_CONFIG', `no runs database at ${paths.db}: no daemon has run in ${paths.root} yet`);
    files = [paths.db];
  }
  const db = openRunsDbs(files);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function parseStatuses(text: string): string[] {
  const statuses = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = statuses.filter((s) => !(RUN_STATUSES as readonly string[]).includes(s));
  if (statuses.length === 0 || bad.length > 0) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `--status: unknown status "${bad.join(',') || text}"; expected one or more of ${RUN_STATUSES.join(', ')} separated by commas`,
    );
  }
  return statuses;
}

function stringList(v: string | boolean | string[] | undefined): string[] {
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** The keys asked for, checked against those available (all of them when none was asked for). */
function checkKeys(wanted: string[], available: string[], where: string): string[] {
  if (wanted.length === 0) return available;
  const missing = wanted.filter((k) => !available.includes(k));
  if (missing.length > 0) {
    throw new SrganError(
      'SRGAN_ERR_CONFIG',
      `--key ${missing.join(', ')}: not logged by ${where}; keys: ${available.length ? available.join(', ') : 'none yet'}`,
    );
  }
  return [...new Set(wanted)];
}

function withParsedConfig(r: RunRow): Omit<RunRow, 'config'> & { config: unknown } {
  let config: unknown;
  try {
    config = JSON.parse(r.config);
  } catch {
    config = r.config; // shown as stored rather than hiding the run
  }
  return { ...r, config };
}

function summarizeConfig(text: string): string {
  try {
    const c = JSON.parse(text) as { batchSize?: number; patchSize?: number; dStepsPerG?: number; seed?: number; dataDir?: string };
    return `batch=${c.batchSize} patch=${c.patchSize} dSteps=${c.dStepsPerG} seed=${c.seed}${c.dataDir ? ` data=${c.dataDir}` : ''}`;
  } catch {
    return '?';
  }
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/**
 * What a run takes on disk (docs/reliability.md, "Bounded growth"): its checkpoint folders still on
 * disk, its previews (exact), and its share of the rest of runs.db by metric rows (an estimate).
 */
function diskUsage(db: Database.Database, runId: string, checkpoints: readonly { path: string }[]) {
  const s = runStorage(db, runId);
  let checkpointBytes = 0;
  let onDisk = 0;
  for (const c of checkpoints) {
    if (!fs.existsSync(c.path)) continue;
    onDisk++;
    checkpointBytes += folderBytes(c.path);
  }
  const metricBytes = s.allMetricRows === 0 ? 0 : Math.round(((s.fileBytes - s.allPreviewBytes) * s.metricRows) / s.allMetricRows);
  const dbBytes = metricBytes + s.previewBytes;
  return {
    totalBytes: checkpointBytes + dbBytes,
    checkpoints: onDisk,
    checkpointBytes,
    dbBytes,
    metricRows: s.metricRows,
    metricBytes,
    previews: s.previews,
    previewBytes: s.previewBytes,
    fileBytes: s.fileBytes,
  };
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    n += e.isDirectory() ? folderBytes(p) : fs.statSync(p).size;
  }
  return n;
}

function mib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
