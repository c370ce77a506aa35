// The monitor's HTTP API (docs/protocol.md, "HTTP API"): token-checked JSON reads of runs.db through
// MonitorData, preview images by id (cached for good: a stored preview never changes), and checkpoint
// pins. Served by the control server beside the page and the WebSocket.

import type http from 'node:http';

import { BadParameter, type MonitorData } from '../store/monitor-data.js';
import type { CheckpointRow } from '../store/db.js';
import { tokensEqual } from '../util/token.js';

export interface MonitorApiOptions {
  token: string;
  data: MonitorData;
  /** The run the daemon trains; null for `srgan monitor`. */
  liveRunId: () => string | null;
  /** Pins a checkpoint (the daemon's store writes it); absent on a read-only server. */
  pin?: (runId: string, step: number, pinned: boolean) => CheckpointRow[];
}

const MAX_BODY = 1024;
const MAX_KEYS = 64;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Serves `req` if it is an /api/ request (true), else leaves it alone (false). */
export function serveMonitorApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, o: MonitorApiOptions): boolean {
  if (!url.pathname.startsWith('/api/')) return false;
  void answer(req, res, url, o).catch((err: unknown) => {
    const e =
      err instanceof HttpError
        ? err
        : err instanceof BadParameter
          ? new HttpError(400, 'SRGAN_ERR_BAD_MESSAGE', err.message)
          : new HttpError(500, 'SRGAN_ERR_ACTOR', (err as Error).message ?? String(err));
    if (!res.headersSent) sendJson(res, e.status, { error: { code: e.code, message: e.message } });
    else res.destroy();
  });
  return true;
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, url: URL, o: MonitorApiOptions): Promise<void> {
  if (!authorized(req, o.token)) {
    throw new HttpError(401, 'SRGAN_ERR_UNAUTHORIZED', 'wrong or missing access token (send "Authorization: Bearer TOKEN")');
  }
  const parts = url.pathname.split('/').slice(2).map(decodeURIComponent); // after "/api/"
  const get = req.method === 'GET' || req.method === 'HEAD';
  const live = o.liveRunId();
  const found = <T>(v: T | null, what: string): T => {
    if (v === null) throw new HttpError(404, 'SRGAN_ERR_CONFIG', `no ${what}`);
    return v;
  };
  // /api/info, /api/runs, /api/runs/ID[/series|events|previews|checkpoints], /api/previews/ID.png,
  // POST /api/runs/ID/checkpoints/STEP/pin
  if (get && parts.length === 1 && parts[0] === 'info') return sendJson(res, 200, { readOnly: o.pin === undefined, liveRunId: live });
  if (get && parts.length === 1 && parts[0] === 'runs') return sendJson(res, 200, { runs: o.data.runs(live) });
  if (get && parts.length === 2 && parts[0] === 'previews') {
    const m = /^(\d{1,15})\.png$/.exec(parts[1]);
    if (!m) throw new HttpError(404, 'SRGAN_ERR_CONFIG', `no preview ${parts[1]}`);
    return sendPreview(req, res, o.data, Number(m[1]));
  }
  if (parts[0] !== 'runs' || parts.length < 2) throw new HttpError(404, 'SRGAN_ERR_CONFIG', `no such endpoint ${url.pathname}`);
  const runId = parts[1];
  const noRun = `run ${runId}`;
  if (get && parts.length === 2) return sendJson(res, 200, found(o.data.run(runId, live), noRun));
  if (get && parts.length === 3) {
    switch (parts[2]) {
      case 'series': {
        const keys = (url.searchParams.get('keys') ?? '').split(',').filter((k) => k !== '');
        if (keys.length > MAX_KEYS) throw new BadParameter(`"keys" may name at most ${MAX_KEYS} keys, got ${keys.length}`);
        const opts = { from: intParam(url, 'from'), to: intParam(url, 'to'), width: intParam(url, 'width') };
        return sendJson(res, 200, found(o.data.series(runId, keys, opts), noRun));
      }
      case 'events':
        return sendJson(res, 200, { events: found(o.data.events(runId), noRun) });
      case 'previews':
        return sendJson(res, 200, found(o.data.previews(runId), noRun));
      case 'checkpoints':
        return sendJson(res, 200, { checkpoints: found(o.data.checkpoints(runId), noRun) });
    }
  }
  if (req.method === 'POST' && parts.length === 5 && parts[2] === 'checkpoints' && parts[4] === 'pin') {
    if (!o.pin)
      throw new HttpError(403, 'SRGAN_ERR_BAD_STATE', 'this monitor is read-only (srgan monitor); pin with `srgan checkpoint --keep STEP`');
    if (!/^\d{1,15}$/.test(parts[3])) throw new BadParameter(`the step must be an integer >= 0, got ${JSON.stringify(parts[3])}`);
    const body = await readJson(req);
    const pinned = (body as { pinned?: unknown } | null)?.pinned;
    if (typeof pinned !== 'boolean') throw new BadParameter('the body must be {"pinned": true} or {"pinned": false}');
    found(o.data.run(runId, live), noRun);
    const rows = o.pin(runId, Number(parts[3]), pinned);
    if (rows.length === 0)
      throw new HttpError(404, 'SRGAN_ERR_CHECKPOINT', `run ${runId} has no checkpoint at step ${parts[3]} (or its files were removed)`);
    return sendJson(res, 200, { checkpoint: rows[rows.length - 1] });
  }
  throw new HttpError(404, 'SRGAN_ERR_CONFIG', `no such endpoint ${req.method} ${url.pathname}`);
}

function sendPreview(req: http.IncomingMessage, res: http.ServerResponse, data: MonitorData, id: number): void {
  const etag = `"preview-${id}"`;
  const cache = { 'cache-control': 'private, max-age=31536000, immutable', etag };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, cache).end();
    return;
  }
  const p = data.previewPng(id);
  if (!p) throw new HttpError(404, 'SRGAN_ERR_CONFIG', `no preview ${id}`);
  res
    .writeHead(200, {
      ...cache,
      'content-type': 'image/png',
      'content-length': p.png.length,
      'x-srgan-step': String(p.step),
      'x-srgan-run': p.runId,
    })
    .end(req.method === 'HEAD' ? undefined : p.png);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v)) throw new BadParameter(`"${name}" must be an integer >= 0, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

function authorized(req: http.IncomingMessage, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  return m !== null && tokensEqual(m[1], token);
}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        // Answered at once; the rest of the body is read and dropped (the answer closes the connection).
        reject(new HttpError(413, 'SRGAN_ERR_MESSAGE_TOO_LARGE', `the body is over ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch {
        reject(new BadParameter('the body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}
