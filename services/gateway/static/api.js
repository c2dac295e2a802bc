// HTTP calls and the self-healing story WebSocket.

const STATUS_CODES = {
  400: 'invalid_input',
  401: 'unauthorized',
  403: 'unauthorized',
  404: 'not_found',
  409: 'conflict',
  422: 'invalid_input',
  429: 'busy',
  503: 'busy',
};

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, or null
  }
}

function parseRetryAfter(value) {
  if (!value) return null;
  const n = Number(value);
  if (Number.isFinite(n)) return Math.max(0, n);
  const date = Date.parse(value);
  if (!Number.isNaN(date)) return Math.max(0, Math.round((date - Date.now()) / 1000));
  return null;
}

async function errorFrom(resp) {
  let code = STATUS_CODES[resp.status] || `http_${resp.status}`;
  let message = '';
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || '';
    } else if (body && body.detail) {
      // FastAPI's default validation body, in case a route answers with it.
      message = Array.isArray(body.detail)
        ? body.detail.map((d) => d.msg || '').filter(Boolean).join('; ')
        : String(body.detail);
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(resp.status, code, message, parseRetryAfter(resp.headers.get('Retry-After')));
}

async function request(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', String(err && err.message ? err.message : err));
  }
  if (!resp.ok) throw await errorFrom(resp);
  let data = null;
  if (resp.status !== 204) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  return { data, date: resp.headers.get('Date') };
}

const enc = encodeURIComponent;

export const api = {
  createStory: (payload) => request('POST', '/api/stories', { body: payload }),
  getStory: (id, token) => request('GET', `/api/stories/${enc(id)}`, { token }),
  choose: (id, token, page, choice) =>
    request('POST', `/api/stories/${enc(id)}/choices`, { token, body: { page, choice } }),
  act: (id, token, page, action) =>
    request('POST', `/api/stories/${enc(id)}/choices`, { token, body: { page, action } }),
  redrawSheet: (id, token) => request('POST', `/api/stories/${enc(id)}/sheet/retry`, { token }),
  redrawImage: (id, token, page) =>
    request('POST', `/api/stories/${enc(id)}/pages/${page}/image/retry`, { token }),
  retryPage: (id, token, page) =>
    request('POST', `/api/stories/${enc(id)}/pages/${page}/retry`, { token }),
  /** Summaries of the stories this device holds tokens for (≤ 100 per call). */
  library: (stories) => request('POST', '/api/library', { body: { stories } }),
  share: (id, token) => request('POST', `/api/stories/${enc(id)}/share`, { token }),
  exportStory: (id, token, fmt) => download(`/api/stories/${enc(id)}/export/${enc(fmt)}`, token),
};

/** The file name a Content-Disposition header gives: filename* (RFC 5987) first. */
export function dispositionFilename(header) {
  if (!header) return null;
  const star = header.match(/filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i);
  if (star) {
    try {
      const name = decodeURIComponent(star[2].trim().replace(/^"|"$/g, ''));
      if (name) return name;
    } catch {
      /* badly encoded: try the plain one */
    }
  }
  const plain = header.match(/filename\s*=\s*("([^"]*)"|[^;]+)/i);
  const name = plain ? (plain[2] ?? plain[1]).trim() : '';
  return name || null;
}

/** A file the server makes (needs the Authorization header, so not a plain link). */
async function download(path, token) {
  let resp;
  try {
    resp = await fetch(path, {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', String(err && err.message ? err.message : err));
  }
  if (!resp.ok) throw await errorFrom(resp);
  let blob;
  try {
    blob = await resp.blob();
  } catch (err) {
    throw new ApiError(0, 'network', String(err && err.message ? err.message : err));
  }
  return { blob, filename: dispositionFilename(resp.headers.get('Content-Disposition')) };
}

// Close codes after which reconnecting cannot help (bad token, unknown story).
const FATAL_CLOSE = new Set([1008, 4001, 4003, 4004, 4401, 4403, 4404]);

/**
 * One story's live connection. Reconnects by itself with exponential backoff
 * (full jitter, capped at ~15 s), always asking for events after the last seq seen.
 *
 * onEvent(msg) gets every parsed message; onState(state, info) gets
 * 'connecting' | 'open' | 'reconnecting' | 'fatal' | 'closed'.
 */
export class StorySocket {
  constructor({ storyId, token, getAfter, onEvent, onState }) {
    this.storyId = storyId;
    this.token = token;
    this.getAfter = getAfter;
    this.onEvent = onEvent;
    this.onState = onState;
    this.ws = null;
    this.failures = 0;
    this.timer = null;
    this.stopped = false;
    this.everOpened = false;
    this._onOnline = () => this.kick();
    this._onVisible = () => {
      if (document.visibilityState === 'visible') this.kick();
    };
    window.addEventListener('online', this._onOnline);
    document.addEventListener('visibilitychange', this._onVisible);
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const after = Math.max(0, Number(this.getAfter()) || 0);
    return `${proto}//${location.host}/ws/stories/${enc(this.storyId)}?token=${enc(this.token)}&after=${after}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.onState(this.everOpened ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.failures = 0;
      this.everOpened = true;
      this.onState('open');
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg && typeof msg === 'object') this.onEvent(msg);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FATAL_CLOSE.has(e.code)) {
        this.onState('fatal', { code: e.code, reason: e.reason });
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.failures += 1;
    const cap = 15000;
    const base = Math.min(cap, 500 * 2 ** Math.min(this.failures, 10));
    // "Equal jitter": at least half the backoff, so a dead server is not hammered.
    const delay = Math.min(cap, base / 2 + Math.random() * (base / 2));
    this.onState('reconnecting', { delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect now (network came back, tab became visible). */
  kick() {
    if (this.stopped || this.ws) return;
    this.failures = 0;
    this.connect();
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this._onOnline);
    document.removeEventListener('visibilitychange', this._onVisible);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    this.onState('closed');
  }
}
