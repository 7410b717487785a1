// cmdbus client: the credential, HTTP calls, and watching commands live with a polling
// fallback, with no DOM in sight, so that any front end can use it; the console's views sit on
// top of it. This module is the library's one entry point:
//   connect        new Client(), then resume() (the key this tab holds, or none on an open
//                  server) or signIn(key); request() for any call; signOut()
//   watch          client.watch(handlers, {versions, polling, since}) -> Watch (client/watch.js):
//                  the WebSocket while it works, polling while it does not
//   resume         `since`: a cursor to go on from; after any drop the stream resumes from the
//                  last cursor it was given, so nothing is missed
//   de-duplicate   Versions (client/versions.js): a view is kept only if its version is higher
//                  than the one held, whichever way and however often it arrives
// client.live() is the bare WebSocket stream (client/live.js) under a watch.
//
// The credential (an API key, or a browser token) lives in sessionStorage: it survives a
// reload of this tab and dies with it, and it never goes into the URL, where history, logs
// and Referer headers would keep it. A 401 from anywhere, or a socket closed with 4401,
// signs out: the stored key is cleared and every listener hears why.

import { LiveStream } from './client/live.js';
import { Watch } from './client/watch.js';

export { CLOSE_FORBIDDEN, CLOSE_LIMITED, CLOSE_UNAUTHORIZED, LiveStream } from './client/live.js';
export { Versions } from './client/versions.js';
export { Watch } from './client/watch.js';

const STORAGE_KEY = 'cmdbus.key';

/** A request that failed: `status` 0 when the server did not answer, else its problem+json. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {object|null} problem the problem+json body, if any
   * @param {string} message
   * @param {number|null} [retryAfter]
   */
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

/**
 * A request given up on purpose (its own signal, or the session ended): nothing to report.
 * @type {(err: unknown) => boolean}
 */
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

  /**
   * Whether the signed-in credential holds `scope` (submit, read, operate, admin).
   * @param {string} scope
   * @returns {boolean}
   */
  can(scope) { return Boolean(this.identity?.scopes?.includes(scope)); }

  /**
   * `listener(reason)` runs whenever the session ends (sign-out, 401, socket closed 4401).
   * @param {(reason: string) => void} listener
   */
  onSignedOut(listener) { this.#listeners.add(listener); }

  /**
   * Signs in with the key stored in this tab, or with none at all (a server that runs without
   * authentication answers anyway). Resolves to the identity, or to `{reason}` when there is no
   * usable credential; rejects with an ApiError when the server cannot tell (unreachable, 5xx).
   * @returns {Promise<object>}
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

  /**
   * Checks `credential` with GET /v1/whoami; on success keeps it for this tab.
   * @param {string|null} credential
   * @returns {Promise<object>} the identity
   */
  async signIn(credential) {
    const res = await this.#send('GET', '/v1/whoami', { credential });
    const identity = await readBody(res);
    if (!res.ok) throw new ApiError(res.status, identity, problemMessage(res, identity));
    this.#credential = credential || null;
    this.identity = identity;
    if (credential) storage()?.setItem(STORAGE_KEY, credential);
    return identity;
  }

  /**
   * Forgets the credential, abandons every request of the session and tells the listeners.
   * @param {string} [reason]
   */
  signOut(reason = '') {
    if (!this.signedIn) return;
    storage()?.removeItem(STORAGE_KEY);
    this.#credential = null;
    this.identity = null;
    this.#session.abort();
    this.#session = new AbortController();
    for (const listener of this.#listeners) listener(reason);
  }

  /**
   * Replaces the credential of the current session (a renewed token).
   * @param {string} credential
   */
  renewCredential(credential) {
    this.#credential = credential;
    storage()?.setItem(STORAGE_KEY, credential);
  }

  /**
   * fetch() for the session: JSON in, JSON out, the credential as `Authorization: Bearer`;
   * problem+json errors become ApiError with the server's `detail`. A 401 signs out.
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, rawBody?: string, headers?: Record<string, string>, signal?: AbortSignal}} [options]
   * @returns {Promise<{status: number, data: any, res: Response}>}
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

  /**
   * The session's commands, live when the WebSocket works and polled when not, de-duplicated
   * by version (see Watch). Call start() on it.
   * @param {import('./client/watch.js').WatchHandlers} handlers
   * @param {import('./client/watch.js').WatchOptions} [options]
   * @returns {Watch}
   */
  watch(handlers, options) { return new Watch(this, handlers, options); }

  /**
   * The bare WebSocket stream of this session's commands, with no fallback (see LiveStream).
   * @param {import('./client/live.js').LiveHandlers} handlers
   * @param {{since?: string|null}} [options]
   * @returns {LiveStream}
   */
  live(handlers, options) { return new LiveStream(this, handlers, options); }

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
