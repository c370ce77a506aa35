// HTTP + WebSocket on 127.0.0.1: serves the monitor page and takes typed, token-checked commands.
// Slow clients lose frames (counted) instead of growing buffers without bound. Hostile or broken
// clients cannot hold it (docs/reliability.md, "Hostile clients"): at most `maxClients` sockets at once,
// of which at most `maxUnauthenticated` without the token in the upgrade (more are refused at the upgrade
// with 503; srgan's own clients offer the subprotocol `srgan-token.TOKEN`, so a flood of strangers never
// locks them out); a socket that has not sent a message with the right token
// within `authTimeoutMs`, or that sends `maxFailedAuth` messages with a wrong token or none that parse
// before it has, is closed; a socket that sends faster than `ratePerSec` (with a burst of `rateBurst`) is
// closed.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, WebSocket } from 'ws';
import { Actor } from './actor.js';
import { serveMonitorApi, type MonitorApiOptions } from './monitor-api.js';
import { SrganError } from '../util/errors.js';
import { tokensEqual } from '../util/token.js';
import { parseClientMessage, MAX_CLIENT_MESSAGE_BYTES, PROTOCOL, tokenProtocol } from '../protocol/validate.js';
import type {
  CheckpointWritten,
  ClientMessage,
  DaemonState,
  DaemonStatus,
  MetricsPoint,
  ServerMessage,
  Topic,
} from '../protocol/messages.js';

/** What the server asks of the daemon. */
export interface DaemonControl {
  status(): DaemonStatus;
  pause(): DaemonState;
  resume(): DaemonState;
  stop(): DaemonState;
  /** Writes a checkpoint at the next step boundary; resolves once it is on disk. */
  checkpoint(): Promise<CheckpointWritten>;
  history(limit: number): MetricsPoint[];
  /** The newest preview, sent to a client when it subscribes to previews. */
  latestPreview(): ServerMessage | null;
}

export type ControlServerMessage = { type: 'broadcast'; topic: Topic; message: ServerMessage };

export interface ControlServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  token: string;
  /** The daemon; null for `srgan monitor`, which shows runs.db and controls nothing. */
  control: DaemonControl | null;
  /** The monitor's HTTP API over runs.db (monitor-api.ts); without it /api/ answers 404. */
  monitor?: Omit<MonitorApiOptions, 'token'>;
  /** Frames are dropped for a client with more than this many bytes unsent. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Sockets open at once; more are refused. Default 64. */
  maxClients?: number;
  /** Of those, sockets whose upgrade did not offer the token (TOKEN_PROTOCOL). Default 16. */
  maxUnauthenticated?: number;
  /** A socket without a message bearing the token by then is closed. Default 10 s. */
  authTimeoutMs?: number;
  /** Messages with a wrong token, or that do not parse, before a socket has authenticated. Default 3. */
  maxFailedAuth?: number;
  /** Messages a second a socket may send on average, and in a burst. Default 50 and 200. */
  ratePerSec?: number;
  rateBurst?: number;
}

/** WebSocket close code for a policy violation (RFC 6455). */
const POLICY = 1008;

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB_ROOT = path.resolve(here, '../../web-monitor');
const require = createRequire(import.meta.url);
const UPLOT_DIST = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
/** Content types of the files the monitor is made of (web-monitor/, served as they are: no build step). */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};
const VENDOR: Record<string, string> = {
  '/vendor/uPlot.iife.min.js': path.join(UPLOT_DIST, 'uPlot.iife.min.js'),
  '/vendor/uPlot.min.css': path.join(UPLOT_DIST, 'uPlot.min.css'),
};

/** The file a GET of `pathname` serves: web-monitor/'s own files (no sub-folders, no dot files) and uPlot. */
function staticFile(pathname: string): { file: string; type: string } | null {
  if (pathname in VENDOR) return { file: VENDOR[pathname], type: TYPES[path.extname(pathname)] };
  const name = pathname === '/' ? 'index.html' : pathname.slice(1);
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) return null;
  const type = TYPES[path.extname(name)];
  return type === undefined ? null : { file: path.join(WEB_ROOT, name), type };
}

interface Client {
  socket: WebSocket;
  topics: Set<Topic>;
  /** Offered the token in its upgrade, or has sent a message with it. */
  authed: boolean;
  failedAuth: number;
  /** Token bucket of the rate limit. */
  tokens: number;
  lastRefill: number;
}

/** What the server turned away, for the log and tests. */
export interface RefusedCounts {
  /** Upgrades refused because maxClients sockets were open. */
  full: number;
  /** Sockets closed for not authenticating in time, or for failed attempts. */
  unauthenticated: number;
  /** Sockets closed for sending too fast. */
  rateLimited: number;
}

export class ControlServer extends Actor<ControlServerMessage> {
  readonly #options: Required<Omit<ControlServerOptions, 'host' | 'monitor'>> & Pick<ControlServerOptions, 'monitor'> & { host: string };
  #http: http.Server | null = null;
  #wss: WebSocketServer | null = null;
  #clients = new Set<Client>();
  #dropped = 0;
  #port = 0;
  readonly #refused: RefusedCounts = { full: 0, unauthenticated: 0, rateLimited: 0 };

  constructor(options: ControlServerOptions) {
    super('control-server');
    this.#options = {
      host: '127.0.0.1',
      maxBufferedBytes: 4 << 20,
      maxClients: 64,
      maxUnauthenticated: 16,
      authTimeoutMs: 10_000,
      maxFailedAuth: 3,
      ratePerSec: 50,
      rateBurst: 200,
      ...options,
    };
  }

  /** Sockets open now. */
  get clients(): number {
    return this.#clients.size;
  }
  get refused(): Readonly<RefusedCounts> {
    return { ...this.#refused };
  }

  get port(): number {
    return this.#port;
  }
  /** Frames dropped for slow clients. */
  get droppedFrames(): number {
    return this.#dropped;
  }
  get url(): string {
    return `http://${this.#options.host}:${this.#port}/?token=${this.#options.token}`;
  }

  protected override async onStart(): Promise<void> {
    const server = http.createServer((req, res) => this.#serve(req, res));
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_MESSAGE_BYTES * 4,
      handleProtocols: (offered) => (offered.has(PROTOCOL) ? PROTOCOL : false),
    });
    server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/ws') {
        socket.destroy();
        return;
      }
      const offered = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim());
      const token = tokenProtocol(this.#options.token);
      const authed = offered.some((p) => tokensEqual(p, token));
      const strangers = [...this.#clients].filter((c) => !c.authed).length;
      if (this.#clients.size >= this.#options.maxClients || (!authed && strangers >= this.#options.maxUnauthenticated)) {
        this.#refused.full++;
        socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, authed));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.fail(err));
    this.#port = (server.address() as { port: number }).port;
    this.#http = server;
    this.#wss = wss;
  }

  protected override async onStop(): Promise<void> {
    for (const c of this.#clients) c.socket.terminate();
    this.#clients.clear();
    this.#wss?.close();
    const server = this.#http;
    this.#http = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  protected receive(message: ControlServerMessage): void {
    this.#publish(message.topic, message.message);
  }

  #publish(topic: Topic, message: ServerMessage): void {
    let text: string | null = null;
    for (const c of this.#clients) {
      if (!c.topics.has(topic) || c.socket.readyState !== WebSocket.OPEN) continue;
      if (c.socket.bufferedAmount > this.#options.maxBufferedBytes) {
        this.#dropped++;
        continue;
      }
      text ??= JSON.stringify(message);
      c.socket.send(text);
    }
  }

  #serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (this.#options.monitor && serveMonitorApi(req, res, url, { token: this.#options.token, ...this.#options.monitor })) return;
    const entry = staticFile(url.pathname);
    if (req.method !== 'GET' || !entry) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    fs.readFile(entry.file, (err, body) => {
      if (err) {
        const missing = err.code === 'ENOENT';
        res
          .writeHead(missing ? 404 : 500, { 'content-type': 'text/plain' })
          .end(missing ? 'not found\n' : `cannot read ${path.basename(entry.file)}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-store' }).end(body);
    });
  }

  #accept(socket: WebSocket, authed: boolean): void {
    const o = this.#options;
    const client: Client = { socket, topics: new Set(), authed, failedAuth: 0, tokens: o.rateBurst, lastRefill: performance.now() };
    this.#clients.add(client);
    const authTimer = setTimeout(() => {
      if (client.authed) return;
      this.#refused.unauthenticated++;
      socket.close(POLICY, `SRGAN_ERR_UNAUTHORIZED: no message with the access token within ${o.authTimeoutMs / 1000} s`);
      // A peer that does not answer the close handshake is cut off.
      setTimeout(() => socket.terminate(), 1000).unref();
    }, o.authTimeoutMs);
    authTimer.unref();
    const gone = () => {
      clearTimeout(authTimer);
      this.#clients.delete(client);
    };
    socket.on('close', gone);
    socket.on('error', gone);
    /** Counts a failed attempt of a socket that has not authenticated; closes it at the limit. */
    const failed = (): boolean => {
      if (client.authed || ++client.failedAuth < o.maxFailedAuth) return false;
      this.#refused.unauthenticated++;
      socket.close(POLICY, `SRGAN_ERR_UNAUTHORIZED: ${client.failedAuth} messages without the access token`);
      setTimeout(() => socket.terminate(), 1000).unref();
      return true;
    };
    socket.on('message', (data, isBinary) => {
      if (socket.readyState !== WebSocket.OPEN) return;
      const now = performance.now();
      client.tokens = Math.min(o.rateBurst, client.tokens + ((now - client.lastRefill) / 1000) * o.ratePerSec);
      client.lastRefill = now;
      if (client.tokens < 1) {
        this.#refused.rateLimited++;
        socket.close(POLICY, `rate limit: more than ${o.ratePerSec} messages a second`);
        setTimeout(() => socket.terminate(), 1000).unref();
        return;
      }
      client.tokens -= 1;
      const send = (m: ServerMessage) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(m));
      };
      if (isBinary) {
        if (failed()) return;
        send({ type: 'error', code: 'SRGAN_ERR_BAD_MESSAGE', message: 'binary frames are not accepted; send JSON text' });
        return;
      }
      const parsed = parseClientMessage(data as Buffer);
      if (!parsed.ok) {
        if (failed()) return;
        send({ type: 'error', code: parsed.code, message: parsed.message, ...(parsed.id !== undefined ? { id: parsed.id } : {}) });
        return;
      }
      const msg = parsed.message;
      if (!tokensEqual(msg.token, this.#options.token)) {
        if (failed()) return;
        send({
          type: 'error',
          code: 'SRGAN_ERR_UNAUTHORIZED',
          message: 'wrong or missing access token',
          ...(msg.id !== undefined ? { id: msg.id } : {}),
        });
        return;
      }
      client.authed = true;
      // Most commands answer at once; 'checkpoint' answers when the file is on disk.
      Promise.resolve()
        .then(() => this.#handle(client, msg))
        .then(send, (err: unknown) =>
          send({
            type: 'error',
            code: (err as { code?: string }).code ?? 'SRGAN_ERR_BAD_STATE',
            message: (err as Error).message,
            ...(msg.id !== undefined ? { id: msg.id } : {}),
          }),
        );
    });
  }

  #handle(client: Client, msg: ClientMessage): ServerMessage | Promise<ServerMessage> {
    const id = msg.id !== undefined ? { id: msg.id } : {};
    const control = this.#options.control;
    if (!control) {
      // srgan monitor: nothing trains here; pushes never come, so subscribing is harmless.
      if (msg.type === 'subscribe' || msg.type === 'unsubscribe') return { type: 'ok', command: msg.type, state: 'stopped', ...id };
      if (msg.type === 'history') return { type: 'history', points: [], ...id };
      throw new SrganError(
        'SRGAN_ERR_NOT_RUNNING',
        `cannot ${msg.type}: no daemon is running; this is srgan monitor, which only shows past runs`,
      );
    }
    switch (msg.type) {
      case 'status':
        return { type: 'status', status: control.status(), ...id };
      case 'pause':
        return { type: 'ok', command: 'pause', state: control.pause(), ...id };
      case 'resume':
        return { type: 'ok', command: 'resume', state: control.resume(), ...id };
      case 'stop':
        return { type: 'ok', command: 'stop', state: control.stop(), ...id };
      case 'checkpoint':
        return control.checkpoint().then((checkpoint): ServerMessage => ({ type: 'checkpoint', checkpoint, ...id }));
      case 'subscribe': {
        for (const t of msg.topics) client.topics.add(t);
        const preview = msg.topics.includes('previews') ? control.latestPreview() : null;
        // After the reply, so the client sees its subscription confirmed first.
        if (preview) setImmediate(() => client.socket.readyState === WebSocket.OPEN && client.socket.send(JSON.stringify(preview)));
        return { type: 'ok', command: 'subscribe', state: control.status().state, ...id };
      }
      case 'unsubscribe':
        for (const t of msg.topics) client.topics.delete(t);
        return { type: 'ok', command: 'unsubscribe', state: control.status().state, ...id };
      case 'history':
        return { type: 'history', points: control.history(msg.limit ?? 2000), ...id };
    }
  }
}
