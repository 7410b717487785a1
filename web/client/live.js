// The WebSocket half of the client: one LiveStream per watch, which authenticates, subscribes,
// and after any drop reconnects with backoff and resumes from the last cursor it was given.
// No DOM and no console code: client.js builds it, watch.js falls back to polling around it.

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

/** 0.5 s, 1 s, 2 s … capped at 10 s, each ±25% so a fleet of tabs does not reconnect in step. */
function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 1));
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
}

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/ws`;
}

/**
 * @typedef {object} LiveHandlers
 * @property {(view: object) => void} [onCommand]
 * @property {(fresh: boolean) => void} [onSubscribed]
 * @property {() => void} [onReset]
 * @property {(status: 'live'|'reconnecting'|'unavailable'|'forbidden', reason?: string) => void} [onStatus]
 */
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

  /**
   * @param {import('../client.js').Client} client the signed-in session whose credential authenticates
   * @param {LiveHandlers} handlers
   * @param {{since?: string|null}} [options] `since`: a cursor to resume from (null: a fresh subscription)
   */
  constructor(client, handlers, { since = null } = {}) {
    this.#client = client;
    this.#handlers = handlers;
    /** @type {string|null} last resume point the stream gave us: our "since" */
    this.cursor = since;
  }

  /** @returns {WebSocket|null} the open (or opening) socket, for tests and debugging */
  get socket() { return this.#ws; }

  /** Opens the socket; it reconnects by itself until stop(). */
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
