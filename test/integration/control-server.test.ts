// The control server's token check, on every command: the real ControlServer on a real socket on
// 127.0.0.1, the daemon's side played by a stub DaemonControl that counts what it is asked to do. A
// command without the token, or with a near miss of it (same length, one character off; a prefix; one
// character more; another case), is answered with an error and reaches nothing: no control call, no
// subscription, no preview.

import crypto from 'node:crypto';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer, type DaemonControl } from '../../src/actors/control-server.js';
import type { DaemonStatus, ServerMessage } from '../../src/protocol/messages.js';
import { waitFor } from '../support/cli.js';

const TOKEN = crypto.randomBytes(24).toString('hex');

const calls: Record<string, number> = {};
const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);

const status = { state: 'training', step: 7 } as DaemonStatus;
const control: DaemonControl = {
  status: () => (count('status'), status),
  pause: () => (count('pause'), 'paused'),
  resume: () => (count('resume'), 'training'),
  stop: () => (count('stop'), 'stopping'),
  checkpoint: async () => (
    count('checkpoint'),
    { step: 7, dir: '/c/step-00000007', checksum: 'x', bytes: 1, kind: 'manual', valPsnr: null, valGain: null, ms: 1 }
  ),
  history: (limit) => (count('history'), [{ step: 7, wallTime: 0, values: { g_loss: 1 } }].slice(-limit)),
  latestPreview: () => (count('latestPreview'), { type: 'preview', id: 1, runId: 'r', step: 7, width: 1, height: 1, panels: [] }),
};

// Many wrong attempts on one socket, to see each answered: the default closes a socket at the third
// (test/integration/hostile-clients.test.ts tests that).
const server = new ControlServer({ port: 0, token: TOKEN, control, maxFailedAuth: 10_000, rateBurst: 10_000 });

beforeAll(async () => {
  await server.start();
});
afterAll(async () => {
  await server.stop();
});

/** A client socket that collects every frame it gets and can wait for the reply to a request id. */
async function client(): Promise<{
  ws: WebSocket;
  got: (ServerMessage & { id?: unknown; code?: string })[];
  ask: (m: Record<string, unknown>) => Promise<ServerMessage & { code?: string }>;
}> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const got: (ServerMessage & { id?: unknown; code?: string })[] = [];
  ws.on('message', (d) => got.push(JSON.parse((d as Buffer).toString()) as ServerMessage & { id?: unknown; code?: string }));
  let next = 0;
  const ask = async (m: Record<string, unknown>) => {
    const id = `q${next++}`;
    ws.send(JSON.stringify({ ...m, id }));
    return waitFor(`the reply to ${JSON.stringify(m)}`, () => got.find((r) => r.id === id), 10_000, 5);
  };
  return { ws, got, ask };
}

const COMMANDS: Record<string, unknown>[] = [
  { type: 'status' },
  { type: 'pause' },
  { type: 'resume' },
  { type: 'stop' },
  { type: 'checkpoint' },
  { type: 'subscribe', topics: ['metrics', 'status', 'previews'] },
  { type: 'unsubscribe', topics: ['metrics'] },
  { type: 'history', limit: 10 },
];

const flip = (c: string) => (c === '0' ? '1' : '0');
const NEAR_MISSES: Record<string, string> = {
  'same length, last character off': TOKEN.slice(0, -1) + flip(TOKEN.at(-1)!),
  'same length, first character off': flip(TOKEN[0]) + TOKEN.slice(1),
  'a prefix': TOKEN.slice(0, -1),
  'one character more': TOKEN + '0',
  'upper case': TOKEN.toUpperCase() === TOKEN ? TOKEN.replace(/[0-9]/, 'A') : TOKEN.toUpperCase(),
};

describe('control server: the access token on every command', () => {
  it('refuses every command without the token or with a near miss of it, and nothing reaches the daemon', async () => {
    expect(TOKEN).toMatch(/[a-f]/); // so the upper-case miss differs
    const bad = await client();
    for (const command of COMMANDS) {
      for (const [what, token] of Object.entries(NEAR_MISSES)) {
        if (what.startsWith('same length')) expect(token).toHaveLength(TOKEN.length);
        expect({ command: command.type, what, reply: await bad.ask({ ...command, token }) }).toMatchObject({
          command: command.type,
          what,
          reply: { type: 'error', code: 'SRGAN_ERR_UNAUTHORIZED' },
        });
      }
      for (const [what, extra] of Object.entries({ 'no token': {}, 'an empty token': { token: '' }, 'a number': { token: 12 } })) {
        expect({ command: command.type, what, reply: await bad.ask({ ...command, ...extra }) }).toMatchObject({
          command: command.type,
          what,
          reply: { type: 'error', code: 'SRGAN_ERR_BAD_MESSAGE', message: expect.stringMatching(/"token" must be a non-empty string/) },
        });
      }
    }
    expect(calls).toEqual({});

    // No subscription took: a broadcast reaches a client that subscribed with the token, not this one.
    const good = await client();
    expect(await good.ask({ type: 'subscribe', topics: ['metrics', 'status', 'previews'], token: TOKEN })).toMatchObject({
      type: 'ok',
      command: 'subscribe',
    });
    server.send({ type: 'broadcast', topic: 'metrics', message: { type: 'metrics', step: 8, wallTime: 0, values: { g_loss: 0.5 } } });
    await waitFor('the broadcast to the subscribed client', () => good.got.some((m) => m.type === 'metrics'), 10_000, 5);
    // Frames on one socket arrive in order: anything broadcast to `bad` came before this reply.
    expect(await bad.ask({ type: 'status', token: TOKEN })).toMatchObject({ type: 'status' });
    expect(bad.got.filter((m) => m.type !== 'error' && m.type !== 'status')).toEqual([]);
    bad.ws.close();
    good.ws.close();
  });

  it('with the token, every command reaches the daemon once', async () => {
    for (const k of Object.keys(calls)) delete calls[k];
    const c = await client();
    const replies = [];
    for (const command of COMMANDS) replies.push(await c.ask({ ...command, token: TOKEN }));
    expect(replies.map((r) => r.type)).toEqual(['status', 'ok', 'ok', 'ok', 'checkpoint', 'ok', 'ok', 'history']);
    // subscribe and unsubscribe answer with the daemon's state; subscribing to previews sends the latest.
    expect(calls).toEqual({ status: 3, pause: 1, resume: 1, stop: 1, checkpoint: 1, history: 1, latestPreview: 1 });
    await waitFor('the latest preview', () => c.got.some((m) => m.type === 'preview'), 10_000, 5);
    c.ws.close();
  });
});
