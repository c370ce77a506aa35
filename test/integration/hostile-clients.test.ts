// Hostile or broken WebSocket clients (docs/reliability.md, "Hostile clients"). First the real
// ControlServer with small limits and a stub daemon: the cap on sockets (strangers apart from clients
// that offer the token), idle strangers closed, a few failed attempts close a socket, the rate limit.
// Then a real daemon under a fuzz of many sockets (random bytes, huge frames, deep nesting, wrong types,
// wrong tokens, floods) while it trains: training goes on, `srgan status` answers throughout, the
// daemon's memory stays bounded.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlServer, type DaemonControl } from '../../src/actors/control-server.js';
import { PROTOCOL, tokenProtocol } from '../../src/protocol/validate.js';
import type { DaemonStatus } from '../../src/protocol/messages.js';
import { srgan, srganJson, waitFor } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { tinyRun } from '../support/tiny-run.js';
import { writePhotos } from '../support/photos.js';
import { hasExited } from '../../src/util/lock-file.js';
import { mulberry32 } from '../../src/util/prng.js';

const tmp = tempDir('srgan-hostile-');
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) if (!hasExited(pid)) process.kill(pid, 'SIGKILL');
  tmp.cleanup();
});

interface Sock {
  ws: WebSocket;
  opened: Promise<boolean>;
  closed: Promise<[number, string]>;
  replies: { type: string; code?: string }[];
}

function connect(port: number, token?: string): Sock {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, token ? [PROTOCOL, tokenProtocol(token)] : []);
  const replies: Sock['replies'] = [];
  ws.on('message', (d) => replies.push(JSON.parse((d as Buffer).toString()) as { type: string; code?: string }));
  const opened = new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('error', () => resolve(false)); // a refused upgrade: "Unexpected server response: 503"
  });
  const closed = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, String(reason)])));
  return { ws, opened, closed, replies };
}

describe('the control server with small limits', () => {
  const TOKEN = crypto.randomBytes(24).toString('hex');
  const control = {
    status: () => ({ state: 'training', step: 1 }) as DaemonStatus,
    history: () => [],
    latestPreview: () => null,
  } as unknown as DaemonControl;
  const limits = { maxClients: 6, maxUnauthenticated: 3, authTimeoutMs: 400, maxFailedAuth: 3, ratePerSec: 20, rateBurst: 40 };
  const status = (token = TOKEN) => JSON.stringify({ type: 'status', token });

  it('caps strangers apart from clients that offer the token, and the whole', async () => {
    const server = new ControlServer({ port: 0, token: TOKEN, control, ...limits, authTimeoutMs: 60_000 });
    await server.start();
    try {
      const strangers = [0, 1, 2].map(() => connect(server.port));
      expect(await Promise.all(strangers.map((s) => s.opened))).toEqual([true, true, true]);
      expect(await connect(server.port).opened).toBe(false); // a fourth stranger
      expect(await connect(server.port, 'f'.repeat(48)).opened).toBe(false); // a wrong token in the upgrade counts as a stranger
      const ours = [0, 1, 2].map(() => connect(server.port, TOKEN));
      expect(await Promise.all(ours.map((s) => s.opened))).toEqual([true, true, true]);
      expect(await connect(server.port, TOKEN).opened).toBe(false); // 6 in all
      expect(server.refused.full).toBe(3);
      strangers[0].ws.close();
      await strangers[0].closed;
      await waitFor('the slot to free', () => server.clients === 5, 5000, 10);
      const again = connect(server.port, TOKEN);
      expect(await again.opened).toBe(true);
      again.ws.send(status());
      await waitFor('a reply', () => again.replies.length === 1, 5000, 10);
      expect(again.replies[0].type).toBe('status');
    } finally {
      await server.stop();
    }
  });

  it('closes a stranger that shows no token in time, or fails three times; a client with the token stays', async () => {
    const server = new ControlServer({ port: 0, token: TOKEN, control, ...limits });
    await server.start();
    try {
      const idle = connect(server.port);
      const ours = connect(server.port, TOKEN);
      const late = connect(server.port); // shows the token in a message in time
      await Promise.all([idle.opened, ours.opened, late.opened]);
      late.ws.send(status());
      expect(await idle.closed).toEqual([1008, 'SRGAN_ERR_UNAUTHORIZED: no message with the access token within 0.4 s']);
      await new Promise((r) => setTimeout(r, 200));
      expect([ours.ws.readyState, late.ws.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

      const guesser = connect(server.port);
      await guesser.opened;
      for (const t of ['a'.repeat(48), 'b'.repeat(48), 'c'.repeat(48)]) guesser.ws.send(status(t));
      expect(await guesser.closed).toEqual([1008, 'SRGAN_ERR_UNAUTHORIZED: 3 messages without the access token']);
      expect(guesser.replies.map((r) => r.code)).toEqual(['SRGAN_ERR_UNAUTHORIZED', 'SRGAN_ERR_UNAUTHORIZED']);
      expect(server.refused.unauthenticated).toBe(2);
      // With the token, mistakes are only answered.
      for (let i = 0; i < 5; i++) ours.ws.send('{nope');
      await waitFor('five answers', () => ours.replies.length === 5, 5000, 10);
      expect(ours.ws.readyState).toBe(WebSocket.OPEN);
      ours.ws.close();
      late.ws.close();
    } finally {
      await server.stop();
    }
  });

  it('closes a socket that sends faster than the rate limit; one within it is answered', async () => {
    const server = new ControlServer({ port: 0, token: TOKEN, control, ...limits });
    await server.start();
    try {
      const polite = connect(server.port, TOKEN);
      const flood = connect(server.port, TOKEN);
      await Promise.all([polite.opened, flood.opened]);
      for (let i = 0; i < 200; i++) flood.ws.send(status());
      expect(await flood.closed).toEqual([1008, 'rate limit: more than 20 messages a second']);
      expect(flood.replies.length).toBeLessThanOrEqual(41);
      for (let i = 0; i < 10; i++) {
        polite.ws.send(status());
        await new Promise((r) => setTimeout(r, 60));
      }
      await waitFor('ten answers', () => polite.replies.length === 10, 5000, 10);
      expect(server.refused.rateLimited).toBe(1);
      polite.ws.close();
    } finally {
      await server.stop();
    }
  });
});

/** The daemon's resident memory in MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

describe('a daemon under a fuzz of many sockets', () => {
  it('keeps training, answers status throughout, and its memory stays bounded', async () => {
    const photos = path.join(tmp.dir, 'photos');
    await writePhotos(photos, 6, 80, 72);
    const home = path.join(tmp.dir, 'home');
    fs.mkdirSync(home);
    const cfg = path.join(home, 'run.json');
    fs.writeFileSync(cfg, JSON.stringify(tinyRun(photos, { previewEvery: 50, checkpointEvery: 500, seed: 2 })));
    const info = srganJson<{ pid: number; port: number }>(home, ['start', '--config', cfg]);
    pids.push(info.pid);
    const token = fs.readFileSync(path.join(home, 'token'), 'utf8').trim();
    const step = () => srganJson<{ step: number }>(home, ['status']).step;
    await waitFor('training', () => step() >= 20, 120_000);
    const rssBefore = rssMiB(info.pid);
    const stepBefore = step();

    const rand = mulberry32(7);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const frames: (() => string | Buffer)[] = [
      () => crypto.randomBytes(1 + Math.floor(rand() * 512)),
      () => crypto.randomBytes(64).toString('latin1'),
      () => Buffer.alloc(2 << 20, 'x'), // over the frame limit
      () => deep,
      () => '{"type":' + '{"a":'.repeat(5000) + '1' + '}'.repeat(5001),
      () =>
        JSON.stringify({
          type: pick(['status', 'pause', 'subscribe', 'history', 'x']),
          token: pick([token.slice(1), 12, null, [], {}]),
          topics: pick([['metrics'], 'all', [1, 2], null]),
          limit: pick([-1, 1e12, 'ten', 5]),
        }),
      () => JSON.stringify({ type: 'history', token, limit: pick([1, 20_000, -5, 'x']) }),
      () => JSON.stringify({ type: 'subscribe', token, topics: ['metrics', 'previews', 'status', 'events'] }),
      () => JSON.stringify(pick([null, 1, 'status', [], true])),
    ];
    const SOCKETS = 100;
    const until = Date.now() + 12_000;
    let sent = 0;
    let refused = 0;
    let statusChecks = 0;
    const fuzzer = async (i: number) => {
      while (Date.now() < until) {
        const s = connect(info.port, i % 4 === 0 ? token : undefined);
        if (!(await s.opened)) {
          refused++;
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const n = i % 10 === 0 ? 500 : 1 + Math.floor(rand() * 20); // some flood
        for (let k = 0; k < n && s.ws.readyState === WebSocket.OPEN; k++) {
          const f = pick(frames)();
          s.ws.send(f, { binary: Buffer.isBuffer(f) });
          sent++;
          if (k % 20 === 0) await new Promise((r) => setImmediate(r));
        }
        await Promise.race([s.closed, new Promise((r) => setTimeout(r, 300 + rand() * 1500))]);
        s.ws.terminate();
      }
    };
    const watcher = async () => {
      while (Date.now() < until) {
        const r = srgan(home, ['status', '--json'], 20_000); // a real client: offers the token, gets a place
        expect(r.status, r.stderr).toBe(0);
        statusChecks++;
        await new Promise((res) => setTimeout(res, 1000));
      }
    };
    await Promise.all([...Array.from({ length: SOCKETS }, (_, i) => fuzzer(i)), watcher()]);
    const stepAfter = step();
    const rssAfter = rssMiB(info.pid);
    console.log(
      `fuzz: ${sent} frames over ${SOCKETS} sockets, ${refused} upgrades refused, ${statusChecks} status checks; ` +
        `steps ${stepBefore} → ${stepAfter}; RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB`,
    );
    expect(statusChecks).toBeGreaterThanOrEqual(5);
    expect(stepAfter).toBeGreaterThan(stepBefore + 50);
    expect(rssAfter - rssBefore).toBeLessThan(150);
    expect(srganJson<{ state: string }>(home, ['stop']).state).toBe('stopped');
  }, 240_000);
});
