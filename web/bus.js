// The console's session on top of the public browser library `@cmdbus/client`, imported from
// `/v1/client.js`: the very file pages of other origins get. The library does the HTTP calls,
// the live updates (WebSocket, then Server-Sent Events, then the HTTP change feed, with
// reconnects, resume and the version rule); this module keeps only what is the console's own:
//   - the pasted API key, kept in sessionStorage (it survives a reload of this tab and dies with
//     it; never in the URL, where history, logs and Referer headers would keep it);
//   - who is signed in (GET /v1/whoami) and what the key may do (its scopes);
//   - signing out when the server refuses or revokes the key, with the server's reason. The
//     library asks its token function again after a 401 or a socket closed with 4401 (right for
//     a browser token page, which fetches a new token); a pasted key cannot be renewed, so the
//     console asks the server whether the key still holds and, if not, signs out.
// No DOM: session.js draws the sign-in, the views call request() and follow().

import { ApiError, createClient } from '/v1/client.js';

export { ApiError, Versions } from '/v1/client.js';

/** @typedef {import('/v1/client.js').Client} LibraryClient */
/** @typedef {'websocket'|'sse'|'feed'} TransportName */

const STORAGE_KEY = 'cmdbus.key';

function storage() {
  try { return window.sessionStorage; } catch { return null; } // storage can be switched off
}

/** What a request made for a session that has since ended rejects with. */
const signedOutError = () => new DOMException('signed out', 'AbortError');

/**
 * A request given up on purpose (its own signal, or the session ended): nothing to report.
 * @type {(err: unknown) => boolean}
 */
export const isAbort = (err) => err?.name === 'AbortError';

/**
 * The route itself is missing (an older server, a feature switched off).
 * @type {(err: unknown) => boolean}
 */
export const notAvailable = (err) => err?.status === 404 || err?.status === 405;

// For tests and debugging (window.cmdbus.ws): the WebSocket the library opened last. The library
// keeps its sockets to itself, so the console notes each one as it is made.
let lastSocket = null;
if (typeof globalThis.WebSocket === 'function') {
  const Native = globalThis.WebSocket;
  globalThis.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      lastSocket = this;
    }
  };
}

/**
 * The library's WebSocket while it is open or opening, else null.
 * @returns {WebSocket|null}
 */
export const currentSocket = () =>
  (lastSocket && lastSocket.readyState <= WebSocket.OPEN ? lastSocket : null);

/** Asks the server who `key` is, through a library client of its own (no renewal: a refusal
 *  is an ApiError 401 with the server's reason). */
async function whoami(key) {
  const probe = createClient({ url: location.origin, token: key || '' });
  const { data } = await probe.request('GET', '/v1/whoami');
  return data;
}

/**
 * One signed-in session. `identity` is the answer of GET /v1/whoami:
 * {tenant, scopes, kind: key|token|open, ...}.
 */
export class Session {
  #key = null;
  /** @type {LibraryClient|null} */
  #bus = null;
  #ended = new AbortController(); // aborted (and replaced) at every sign-out
  #listeners = new Set();
  /** @type {TransportName[]|undefined} */
  #transports;

  /** @param {{transports?: TransportName[]}} [options] the library's transports, in order
   *  (default: all of them) */
  constructor({ transports } = {}) {
    this.identity = null;
    this.#transports = transports;
    /** What no retry mends (the key lacks `read`, says the server); the console shows it.
     *  @type {(error: Error) => void} */
    this.onFailure = (error) => console.error('cmdbus:', error);
  }

  get signedIn() { return this.identity !== null; }

  /**
   * Whether the signed-in key holds `scope` (submit, read, operate, admin).
   * @param {string} scope
   * @returns {boolean}
   */
  can(scope) { return Boolean(this.identity?.scopes?.includes(scope)); }

  /**
   * `listener(reason)` runs whenever the session ends (Sign out, the key refused or revoked).
   * @param {(reason: string) => void} listener
   */
  onSignedOut(listener) { this.#listeners.add(listener); }

  /**
   * Signs in with the key stored in this tab, or with none at all (a server that runs without
   * authentication answers anyway). Resolves to the identity, or to `{reason}` when there is no
   * usable key; rejects with an ApiError when the server cannot tell (unreachable, 5xx).
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
   * Checks `key` with GET /v1/whoami; on success keeps it for this tab and opens the library's
   * client with it.
   * @param {string|null} key
   * @returns {Promise<object>} the identity
   */
  async signIn(key) {
    const identity = await whoami(key);
    this.#key = key || null;
    this.identity = identity;
    if (key) storage()?.setItem(STORAGE_KEY, key);
    const ended = this.#ended.signal;
    let given = false;
    this.#bus = createClient({
      url: location.origin,
      // Asked once, then again only when the server refused the key (a 401, a socket closed
      // with 4401): then the key is checked, and a refused one signs out with the reason. A
      // server without authentication needs no key at all.
      token: key ? async () => {
        if (!given) { given = true; return key; }
        await this.#recheck(key, ended);
        return key;
      } : '',
      transports: this.#transports,
      onError: (error) => this.onFailure(error),
    });
    return identity;
  }

  /**
   * Forgets the key, abandons every request and live update of the session and tells the
   * listeners.
   * @param {string} [reason]
   */
  signOut(reason = '') {
    if (!this.signedIn) return;
    storage()?.removeItem(STORAGE_KEY);
    this.#key = null;
    this.identity = null;
    this.#bus?.close();
    this.#bus = null;
    this.#ended.abort();
    this.#ended = new AbortController();
    for (const listener of this.#listeners) listener(reason);
  }

  /**
   * Any call of the API, through the library: JSON in and out, problem+json errors as ApiError
   * with the server's `detail`. Answers that arrive after the session ended reject as aborted.
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, headers?: Record<string, string>, signal?: AbortSignal}} [options]
   * @returns {Promise<{status: number, data: any}>}
   */
  async request(method, path, { body, headers, signal } = {}) {
    const bus = this.#bus;
    if (!bus) throw signedOutError();
    const ended = this.#ended.signal;
    const joined = signal && AbortSignal.any ? AbortSignal.any([signal, ended]) : signal || ended;
    const answer = await bus.request(method, path, { body, headers, signal: joined });
    if (ended.aborted) throw signedOutError();
    return answer;
  }

  /**
   * Every command in the key's reach, live: `onChange(view)` with each newer view, `onReset()`
   * when changes were skipped (reload what you show), `onState(state)` with how changes arrive
   * (`live`, `reconnecting`, `polling`). Ends at sign-out, or with the returned close().
   * @param {{onChange: (view: object) => void, onReset: () => void,
   *   onState: (state: 'live'|'reconnecting'|'polling') => void}} handlers
   * @returns {() => void} close
   */
  followAll({ onChange, onReset, onState }) {
    const bus = this.#bus;
    if (!bus) return () => {};
    const stopState = bus.onState(onState);
    const watch = bus.watchMany({ all: true }, onChange, { onReset });
    onState(bus.state);
    return () => { stopState(); watch.close(); };
  }

  /** The server refused the key: if it still refuses it, sign out with its reason (and throw,
   *  so that the library gives up this try); else the key holds and is given again. */
  async #recheck(key, ended) {
    try {
      await whoami(key);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && !ended.aborted) this.signOut(err.message);
      throw err;
    }
    if (ended.aborted) throw signedOutError();
  }
}
