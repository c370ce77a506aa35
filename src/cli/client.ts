// A WebSocket client for one command to the running daemon: connect, send with the token, await the
// reply with the same id.

import WebSocket from 'ws';
import { SrganError } from '../util/errors.js';
import type { ClientMessage, ServerMessage } from '../protocol/messages.js';
import { PROTOCOL, tokenProtocol } from '../protocol/validate.js';
import { readDaemonInfo, readToken, type DaemonInfo, type HomePaths } from '../store/home.js';

type Command = Exclude<ClientMessage, { type: 'subscribe' | 'unsubscribe' | 'history' }>['type'];

/** The running daemon's info, or SRGAN_ERR_NOT_RUNNING. */
export function requireDaemon(paths: HomePaths): DaemonInfo {
  const info = readDaemonInfo(paths);
  if (!info) throw new SrganError('SRGAN_ERR_NOT_RUNNING', `no daemon is running in ${paths.root} (start one with: srgan start)`);
  return info;
}

/** Sends one command and returns the daemon's reply (an `error` reply is thrown as SrganError). */
export async function sendCommand(paths: HomePaths, type: Command, timeoutMs = 10_000): Promise<ServerMessage> {
  const info = requireDaemon(paths);
  const token = readToken(paths);
  const ws = new WebSocket(`ws://127.0.0.1:${info.port}/ws`, [PROTOCOL, tokenProtocol(token)]);
  try {
    return await new Promise<ServerMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new SrganError('SRGAN_ERR_TIMEOUT', `the daemon (pid ${info.pid}) did not answer "${type}" within ${timeoutMs} ms`)),
        timeoutMs,
      );
      ws.on('error', (err) => {
        clearTimeout(timer);
        reject(new SrganError('SRGAN_ERR_NOT_RUNNING', `cannot reach the daemon on port ${info.port}: ${err.message}`, { cause: err }));
      });
      ws.on('open', () => ws.send(JSON.stringify({ type, token, id: 1 })));
      ws.on('message', (data) => {
        const reply = JSON.parse((data as Buffer).toString()) as ServerMessage; // binaryType 'nodebuffer' (the default): a Buffer
        if (!('id' in reply) || reply.id !== 1) return;
        clearTimeout(timer);
        if (reply.type === 'error') reject(new SrganError(reply.code as never, reply.message));
        else resolve(reply);
      });
    });
  } finally {
    ws.terminate();
  }
}
