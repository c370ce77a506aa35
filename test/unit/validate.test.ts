import { describe, expect, it } from 'vitest';
import { parseClientMessage, MAX_CLIENT_MESSAGE_BYTES } from '../../src/protocol/validate.js';

describe('parseClientMessage', () => {
  it('accepts every command type', () => {
    for (const type of ['status', 'pause', 'resume', 'stop']) {
      expect(parseClientMessage(JSON.stringify({ type, token: 't', id: 7 }))).toEqual({ ok: true, message: { type, token: 't', id: 7 } });
    }
    expect(parseClientMessage(JSON.stringify({ type: 'subscribe', token: 't', topics: ['metrics', 'previews'] }))).toEqual({
      ok: true,
      message: { type: 'subscribe', token: 't', topics: ['metrics', 'previews'] },
    });
    expect(parseClientMessage(Buffer.from(JSON.stringify({ type: 'history', token: 't', limit: 10 })))).toMatchObject({ ok: true });
  });

  it.each([
    ['not json', '{nope', 'SRGAN_ERR_BAD_MESSAGE', /not JSON/],
    ['an array', '[1]', 'SRGAN_ERR_BAD_MESSAGE', /object/],
    ['null', 'null', 'SRGAN_ERR_BAD_MESSAGE', /object/],
    ['no type', '{"token":"t"}', 'SRGAN_ERR_BAD_MESSAGE', /"type"/],
    ['unknown type', '{"type":"explode","token":"t"}', 'SRGAN_ERR_UNKNOWN_TYPE', /explode/],
    ['no token', '{"type":"pause"}', 'SRGAN_ERR_BAD_MESSAGE', /token/],
    ['empty token', '{"type":"pause","token":""}', 'SRGAN_ERR_BAD_MESSAGE', /token/],
    ['extra field', '{"type":"pause","token":"t","force":true}', 'SRGAN_ERR_BAD_MESSAGE', /"force"/],
    ['bad topic', '{"type":"subscribe","token":"t","topics":["secrets"]}', 'SRGAN_ERR_BAD_MESSAGE', /topic/],
    ['topics not array', '{"type":"subscribe","token":"t","topics":"metrics"}', 'SRGAN_ERR_BAD_MESSAGE', /topics/],
    ['bad limit', '{"type":"history","token":"t","limit":-1}', 'SRGAN_ERR_BAD_MESSAGE', /limit/],
    ['bad id', '{"type":"status","token":"t","id":{}}', 'SRGAN_ERR_BAD_MESSAGE', /"id"/],
  ])('rejects %s', (_name, raw, code, pattern) => {
    const r = parseClientMessage(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe(code);
      expect(r.message).toMatch(pattern);
    }
  });

  it('echoes the id of a rejected message when it can', () => {
    expect(parseClientMessage('{"type":"nope","token":"t","id":"x1"}')).toMatchObject({ ok: false, id: 'x1' });
  });

  it('rejects oversized frames before parsing', () => {
    const big = JSON.stringify({ type: 'status', token: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) });
    expect(parseClientMessage(big)).toMatchObject({ ok: false, code: 'SRGAN_ERR_MESSAGE_TOO_LARGE' });
  });
});
