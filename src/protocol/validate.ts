// Validation of untrusted WebSocket frames. A frame that fails returns a typed error the server sends
// back; nothing else happens.

import { TOPICS, type ClientMessage, type Topic } from './messages.js';

/** Largest client frame accepted, in bytes. */
/**
 * The WebSocket subprotocols srgan's clients offer: `srgan`, which the server selects, and
 * `srgan-token.TOKEN`, which shows the token in the upgrade itself (a browser cannot set other headers
 * on a WebSocket, and the monitor page keeps the token out of URLs), so a flood of strangers never locks
 * them out (actors/control-server.ts). Every message still carries the token. web-monitor/api.js
 * offers the same.
 */
export const PROTOCOL = 'srgan';
export const tokenProtocol = (token: string): string => `srgan-token.${token}`;

export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | {
      ok: false;
      code: 'SRGAN_ERR_BAD_MESSAGE' | 'SRGAN_ERR_UNKNOWN_TYPE' | 'SRGAN_ERR_MESSAGE_TOO_LARGE';
      message: string;
      id?: string | number;
    };

const TYPES = new Set(['status', 'pause', 'resume', 'stop', 'checkpoint', 'subscribe', 'unsubscribe', 'history']);
const COMMON = new Set(['type', 'token', 'id']);

/** Parses one text frame from a client. Token checking is the server's job (it knows the token). */
export function parseClientMessage(raw: string | Buffer): ParseResult {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > MAX_CLIENT_MESSAGE_BYTES) {
    return { ok: false, code: 'SRGAN_ERR_MESSAGE_TOO_LARGE', message: `message of ${size} bytes exceeds ${MAX_CLIENT_MESSAGE_BYTES}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    return { ok: false, code: 'SRGAN_ERR_BAD_MESSAGE', message: `not JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'SRGAN_ERR_BAD_MESSAGE', message: 'message must be a JSON object' };
  }
  const obj = value as Record<string, unknown>;
  const id = typeof obj.id === 'string' || (typeof obj.id === 'number' && Number.isFinite(obj.id)) ? obj.id : undefined;
  const bad = (message: string): ParseResult => ({ ok: false, code: 'SRGAN_ERR_BAD_MESSAGE', message, id });
  if (obj.id !== undefined && id === undefined) return bad('"id" must be a string or a finite number');
  if (typeof obj.type !== 'string') return bad('"type" must be a string');
  if (!TYPES.has(obj.type)) {
    return { ok: false, code: 'SRGAN_ERR_UNKNOWN_TYPE', message: `unknown message type "${obj.type.slice(0, 40)}"`, id };
  }
  if (typeof obj.token !== 'string' || obj.token.length === 0) return bad('"token" must be a non-empty string');
  const allowed = new Set(COMMON);
  if (obj.type === 'subscribe' || obj.type === 'unsubscribe') allowed.add('topics');
  if (obj.type === 'history') allowed.add('limit');
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) return bad(`unexpected field "${key.slice(0, 40)}" in "${obj.type}" message`);
  }
  const base = { token: obj.token, ...(id !== undefined ? { id } : {}) };
  switch (obj.type) {
    case 'subscribe':
    case 'unsubscribe': {
      const topics = obj.topics;
      if (!Array.isArray(topics) || topics.length === 0 || topics.length > TOPICS.length) {
        return bad(`"topics" must be a non-empty array of ${TOPICS.join(', ')}`);
      }
      for (const t of topics) {
        if (!TOPICS.includes(t as Topic)) return bad(`unknown topic ${JSON.stringify(t).slice(0, 40)}; expected ${TOPICS.join(', ')}`);
      }
      return { ok: true, message: { type: obj.type, topics: topics as Topic[], ...base } };
    }
    case 'history': {
      if (obj.limit !== undefined && !(Number.isInteger(obj.limit) && (obj.limit as number) > 0 && (obj.limit as number) <= 100_000)) {
        return bad('"limit" must be an integer in 1..100000');
      }
      return { ok: true, message: { type: 'history', ...(obj.limit !== undefined ? { limit: obj.limit as number } : {}), ...base } };
    }
    default:
      return { ok: true, message: { type: obj.type as 'status' | 'pause' | 'resume' | 'stop' | 'checkpoint', ...base } };
  }
}
