// The monitor's two ways to the server: the HTTP API (docs/protocol.md, "HTTP API") with the token in an
// Authorization header, and the WebSocket (/ws) with the token in every message, reconnected with
// exponential backoff. Also where the token lives in the page (sessionStorage, never the address bar).

const TOKEN_KEY = 'srgan-monitor-token';
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

/**
 * The access token: taken from `?token=` once (then stored in sessionStorage and removed from the address
 * bar, so a screenshot, a bookmark or a copied URL does not carry it), else the one stored earlier in this
 * tab; '' when neither.
 */
export function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl !== null) {
    url.searchParams.delete('token');
    history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
    if (fromUrl) storeToken(fromUrl);
  }
  if (fromUrl) return fromUrl;
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return ''; // storage disabled: the form asks again after a reload
  }
}

export function storeToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* storage disabled: the token lives for this page only */
  }
}

export function forgetToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* nothing stored */
  }
}

/** An answer other than 2xx: `status` and the server's error `code` (SRGAN_ERR_…) when it sent one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async #fetch(path, init = {}) {
    let res;
    try {
      res = await fetch(path, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${this.token}` },
        // The token rides in a header; nothing else about this page needs to leave with the request.
        referrerPolicy: 'no-referrer',
      });
    } catch (err) {
      throw new ApiError(0, 'NETWORK', `${path}: ${err.message}`);
    }
    if (!res.ok) {
      let code = `HTTP_${res.status}`;
      let message = `${path}: HTTP ${res.status}`;
      try {
        const body = await res.json();
        if (body && body.error) {
          code = body.error.code || code;
          message = `${body.error.message || message} (${code})`;
        }
      } catch {
        /* not JSON: keep the status */
      }
      throw new ApiError(res.status, code, message);
    }
    return res;
  }

  async get(path, init) {
    return (await this.#fetch(path, init)).json();
  }

  async post(path, body) {
    const res = await this.#fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return res.json();
  }

  async blob(path, init) {
    return (await this.#fetch(path, init)).blob();
  }
}

/**
 * The WebSocket to the daemon. `onOpen` runs on every (re)connection, `onMessage` for every parsed frame,
 * `onConn(conn, retryMs)` on each change: 'connecting' | 'connected' | 'disconnected' (retryMs: when the
 * next attempt is, or null when none will be made).
 */
export class Live {
  #ws = null;
  #nextId = 1;
  #backoffMs = BACKOFF_MIN_MS;
  #timer = null;
  #stopped = false;

  constructor(token, { onOpen, onMessage, onConn }) {
    this.token = token;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onConn = onConn;
  }

  get connected() {
    return this.#ws != null && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Sends `msg` with the token and a fresh id; returns the id, or null when not connected. */
  send(msg) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return null;
    const id = this.#nextId++;
    ws.send(JSON.stringify({ ...msg, token: this.token, id }));
    return id;
  }

  /** Backed-up socket: the caller should skip optional sends (status polls). */
  get congested() {
    return !this.#ws || this.#ws.bufferedAmount > 1024;
  }

  /** Closes for good (a rejected token): no reconnection. */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#ws) this.#ws.close();
  }

  /** Connects now, cancelling a pending retry (and its backoff). */
  connect() {
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#stopped) return;
    this.onConn('connecting', null);
    const url = new URL('/ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    // The token as a subprotocol: it gets this socket a place even when strangers fill the server's
    // slots for sockets without it (docs/reliability.md, "Hostile clients").
    const sock = new WebSocket(url, ['srgan', `srgan-token.${this.token}`]);
    this.#ws = sock;
    sock.addEventListener('open', () => {
      if (this.#ws !== sock) return;
      this.onConn('connected', null);
      this.onOpen();
    });
    sock.addEventListener('message', (ev) => {
      if (this.#ws !== sock) return;
      // Backoff resets only once the daemon actually talks to us, not merely on TCP accept.
      this.#backoffMs = BACKOFF_MIN_MS;
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data));
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this.onMessage(msg);
    });
    sock.addEventListener('close', () => {
      if (this.#ws !== sock) return;
      this.#ws = null;
      if (this.#stopped) {
        this.onConn('disconnected', null);
        return;
      }
      // Jittered, so several tabs do not knock in step when the daemon comes back.
      const delay = Math.round(this.#backoffMs * (0.75 + Math.random() * 0.5));
      this.#backoffMs = Math.min(BACKOFF_MAX_MS, this.#backoffMs * 2);
      this.onConn('disconnected', delay);
      this.#timer = setTimeout(() => this.connect(), delay);
    });
    // 'error' is always followed by 'close', which does the work.
  }
}
