// The access token check shared by the WebSocket commands and the HTTP API (docs/protocol.md).

import crypto from 'node:crypto';

/** Whether `given` is the token, compared in constant time (no timing hint of how much matched). */
export function tokensEqual(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
