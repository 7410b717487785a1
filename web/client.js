// cmdbus client: the credential, HTTP calls and the live WebSocket stream, with no DOM in
// sight, so that any front end can use it; the console's views sit on top of it.
//
// The credential (an API key, or a browser token) lives in sessionStorage: it survives a
// reload of this tab and dies with it, and it never goes into the URL, where history, logs
// and Referer headers would keep it. A 401 from anywhere, or a socket closed with 4401,
// signs out: the stored key is cleared and every listener hears why.

const STORAGE_KEY = 'cmdbus.key';

// WebSocket close codes the server uses (DESIGN.md section 6).
export const CLOSE_UNAUTHORIZED = 4401; // no valid credential: sign in again
export const CLOSE_FORBIDDEN = 4403;    // the credential lacks `read`
export const CLOSE_LIMITED = 4429;      // too many sockets for the tenant

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
// After this many failed attempts in a row (first try + retries after 0.5, 1, 2 s) the stream
// says it is unavailable, so that the page can poll instead; it keeps retrying in the
// background at the 10 s backoff cap.
const FAILS_BEFORE_UNAVAILABLE = 4;
const STABLE_CONNECTION_MS = 10000; // a socket that lived this long resets the failure count

export class ApiError extends Error {
  constructor(status, problem, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter; // seconds, on a 429
  }

  get code() { return this.problem?.code ?? null; }

  /** The route itself is missing (older server, feature switched off). */
  get notAvailable() { return this.status === 404 || this.status === 405; }
}

/** What a request made for a session that has since ended rejects with. */
const signedOutError = () => new DOMException('signed out', 'AbortError');

/** A request given up on purpose (its own signal, or the session ended): nothing to report. */
export const isAbort = (err) => err?.name === 'AbortError';

async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return null; }
}

function problemMessage(res, data) {
  return (data && (data.detail || data.title)) || `${res.status} ${res.statusText || 'error'}`.trim();
}

function storage() {
  try { return window.sessionStorage; } catch { return null; } // storage can be switched off
}

/**
 * One signed-in session against a cmdbus server.
 * `identity` is the answer of GET /v1/whoami: {tenant, scopes, kind: key|token|open, ...}.
 */
export class Client {
  #credential = null;
  #session = new AbortController(); // aborted (and replaced) at every sign-out
  #listeners = new Set();

  /** `refreshCredential`: for token holders, an async function giving a fresh token when the
   *  server asks to renew one (keys never expire, so the console passes none). */
  constructor({ refreshCredential = null } = {}) {
    this.identity = null;
    this.refreshCredential = refreshCredential;
  }

  get credential() { return this.#credential; }

  get signedIn() { return this.identity !== null; }

  /** Whether the signed-in credential holds `scope` (submit, read, operate, admin). */
  can(scope) { return Boolean(this.identity?.scopes?.includes(scope)); }

  /** `listener(reason)` runs whenever the session ends (sign-out, 401, socket closed 4401). */
  onSignedOut(listener) { this.#listeners.add(listener); }

  /**
   * Signs in with the key stored in this tab, or with none at all (a server that runs without
   * authentication answers anyway). Resolves to the identity, or to `{reason}` when there is no
   * usable credential; rejects with an ApiError when the server cannot tell (unreachable, 5xx).
   */
  async resume() {
    const stored = storage()?.getItem(STORAGE_KEY) || null;
    try {
      return await this.signIn(stored);
    } catch (err) {
      if (err.status !== 401) throw err;
      storage()?.removeItem(STORAGE_KEY);
      return { reason: stored ? err.message : '' };
    }
  }

  /** Checks `credential` with GET /v1/whoami; on success keeps it for this tab. */
  async signIn(credential) {
    const res = await this.#send('GET', '/v1/whoami', { credential });
    const identity = await readBody(res);
    if (!res.ok) throw new ApiError(res.status, identity, problemMessage(res, identity));
    this.#credential = credential || null;
    this.identity = identity;
    if (credential) storage()?.setItem(STORAGE_KEY, credential);
    return identity;
  }

  /** Forgets the credential, abandons every request of the session and tells the listeners. */
  signOut(reason = '') {
    if (!this.signedIn) return;
    storage()?.removeItem(STORAGE_KEY);
    this.#credential = null;
    this.identity = null;
    this.#session.abort();
    this.#session = new AbortController();
    for (const listener of this.#listeners) listener(reason);
  }

  /** Replaces the credential of the current session (a renewed token). */
  renewCredential(credential) {
    this.#credential = credential;
    storage()?.setItem(STORAGE_KEY, credential);
  }

  /**
   * fetch() for the session: JSON in, JSON out, the credential as `Authorization: Bearer`;
   * problem+json errors become ApiError with the server's `detail`. A 401 signs out.
   */
  async request(method, path, { body, rawBody, headers = {}, signal } = {}) {
    if (!this.signedIn) throw signedOutError();
    const session = this.#session;
    const res = await this.#send(method, path, {
      credential: this.#credential, body, rawBody, headers, signal: this.#withSession(signal),
    });
    if (session.signal.aborted) throw signedOutError(); // answered after the session ended
    if (res.status === 304) return { status: 304, data: null, res };
    const data = await readBody(res);
    if (!res.ok) {
      const error = new ApiError(res.status, data, problemMessage(res, data),
        Number(res.headers.get('Retry-After')) || null);
      if (res.status === 401) this.signOut(error.message);
      throw error;
    }
    return { status: res.status, data, res };
  }

  /** A live stream of this session's commands (see LiveStream). */
  live(handlers) { return new LiveStream(this, handlers); }

  /** The session's abort signal joined with the caller's, where the browser can join them. */
  #withSession(signal) {
    if (!signal) return this.#session.signal;
    return AbortSignal.any ? AbortSignal.any([signal, this.#session.signal]) : signal;
  }

  async #send(method, path, { credential, body, rawBody, headers = {}, signal }) {
    const init = { method, signal, cache: 'no-store', headers: { Accept: 'application/json', ...headers } };
    if (credential) init.headers.Authorization = `Bearer ${credential}`;
    if (rawBody !== undefined || body !== undefined) {
      init.body = rawBody !== undefined ? rawBody : JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    try {
      return await fetch(path, init);
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, null, 'The server did not answer. Check your connection.');
    }
  }
}

/** 0.5 s, 1 s, 2 s … capped at 10 s, each ±25% so a fleet of tabs does not reconnect in step. */
function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 1));
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
}

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/ws`;
}

/**
 * Every change of the tenant's commands over `/v1/ws`: authenticate, subscribe, and after any
 * drop reconnect with backoff and resume from the last cursor, so nothing is missed.
 *
 * handlers:
 *   onCommand(view)       a command changed (or its latest state, during a replay)
 *   onSubscribed(fresh)   caught up; `fresh`: a new subscription, so reload what you show
 *   onReset()             the server could not replay everything: reload what you show
 *   onStatus(status, why) 'live' | 'reconnecting' | 'unavailable' (poll instead; retries go on)
 *                         | 'forbidden' (the credential lacks read; no retries)
 */
export class LiveStream {
  #client;
  #handlers;
  #ws = null;
  #failures = 0;
  #openedAt = 0;
  #retryTimer = 0;
  #stopped = false;
  #authenticated = false;
  #subscribed = false;     // the current socket got its "subscribed" answer
  #fresh = false;          // the pending subscription has no `since`
  #unavailable = false;    // said 'unavailable'; until the next 'live'

  constructor(client, handlers) {
    this.#client = client;
    this.#handlers = handlers;
    this.cursor = null; // last resume point the stream gave us: our "since"
  }

  get socket() { return this.#ws; }

  start() {
    this.#stopped = false;
    this.#connect();
  }

  /** Closes the socket for good. */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(1000, 'done');
  }

  /** The network came back: do not wait out the backoff. */
  reconnectNow() {
    if (!this.#stopped && !this.#ws) this.#connect();
  }

  #connect() {
    clearTimeout(this.#retryTimer);
    if (this.#stopped || this.#ws) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      this.#gone(null, {});
      return;
    }
    this.#ws = ws;
    ws.addEventListener('open', () => this.#opened(ws));
    ws.addEventListener('message', (e) => this.#message(ws, e));
    ws.addEventListener('close', (e) => this.#gone(ws, e));
    // 'error' is always followed by 'close', which does the work.
  }

  /** A browser cannot set headers on a WebSocket: the credential is the first message. */
  #opened(ws) {
    if (ws !== this.#ws) return;
    this.#openedAt = Date.now();
    this.#authenticated = false;
    this.#subscribed = false;
    this.#send(ws, { op: 'auth', token: this.#client.credential ?? '' });
  }

  #send(ws, message) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  /** Resume from the last cursor the stream gave us, so nothing is missed across the gap, even
   *  changes that committed out of version order. */
  #subscribe(ws, fresh) {
    this.#fresh = fresh;
    this.#send(ws, fresh ? { op: 'subscribe', all: true } : { op: 'subscribe', all: true, since: this.cursor });
  }

  #message(ws, event) {
    if (ws !== this.#ws) return;
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    switch (msg?.op) {
      case 'authenticated':
        // A renewed token is answered too: subscribe only once per socket.
        if (!this.#authenticated) this.#subscribe(ws, this.cursor === null);
        this.#authenticated = true;
        break;
      case 'renew':
        this.#renew(ws);
        break;
      case 'subscribed':
        // Sent once the replay (if any) is delivered: we are caught up at this cursor.
        this.#subscribed = true;
        this.#keepCursor(msg.cursor);
        this.#unavailable = false;
        this.#handlers.onStatus?.('live');
        this.#handlers.onSubscribed?.(this.#fresh);
        break;
      case 'command':
        this.#handlers.onCommand?.(msg.command);
        this.#keepCursor(msg.cursor);
        break;
      case 'reset':
        // The server could not replay everything we missed: reload, then go on from its cursor.
        this.#keepCursor(msg.cursor);
        this.#handlers.onReset?.();
        break;
      case 'error':
        console.warn('cmdbus: WebSocket error from server:', msg.code, msg.message);
        // A server that rejects our resume point: start over with a fresh subscription.
        if (this.#authenticated && !this.#subscribed && !this.#fresh) this.#subscribe(ws, true);
        break;
      default:
    }
  }

  /** A token about to expire: send a fresh one on the same socket. (Keys never get here.) */
  async #renew(ws) {
    const refresh = this.#client.refreshCredential;
    if (!refresh) return; // the socket closes with 4401 at expiry, and that signs out
    try {
      const token = await refresh();
      if (!token || ws !== this.#ws) return;
      this.#client.renewCredential(token);
      this.#send(ws, { op: 'auth', token });
    } catch (err) {
      console.warn('cmdbus: could not renew the token:', err);
    }
  }

  /** A message that carries a cursor moves our resume point there (the server only sends one
   *  once everything before it has been delivered). */
  #keepCursor(cursor) {
    if (typeof cursor === 'string' && cursor) this.cursor = cursor;
  }

  /** Any other close means "reconnect": the server may drop slow clients, proxies time out,
   *  laptops sleep. */
  #gone(ws, { code, reason }) {
    if (ws && ws !== this.#ws) return;
    this.#ws = null;
    if (this.#stopped) return;
    if (code === CLOSE_UNAUTHORIZED) {
      this.#stopped = true;
      this.#client.signOut(reason || 'The server no longer accepts this key.');
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      this.#stopped = true;
      this.#handlers.onStatus?.('forbidden', reason || 'This key may not read commands.');
      return;
    }
    const lived = this.#openedAt ? Date.now() - this.#openedAt : 0;
    this.#openedAt = 0;
    if (lived >= STABLE_CONNECTION_MS) this.#failures = 0;
    this.#failures++;
    // The tenant's sockets are all taken: polling still works, so do not wait for it.
    if (code === CLOSE_LIMITED) this.#failures = Math.max(this.#failures, FAILS_BEFORE_UNAVAILABLE);
    if (this.#failures >= FAILS_BEFORE_UNAVAILABLE) this.#unavailable = true;
    this.#handlers.onStatus?.(this.#unavailable ? 'unavailable' : 'reconnecting', reason || '');
    this.#retryTimer = setTimeout(() => this.#connect(), backoffDelay(this.#failures));
  }
}
