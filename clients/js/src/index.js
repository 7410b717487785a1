// @cmdbus/client: submit commands to a cmdbus server and follow them live from a browser, with no
// socket code in the page. Layout: index.js (this file: createClient and the handles it gives),
// watch.js (the handle of one watched command), stream.js (one followed selection: picks a transport, reconnects, resumes, de-duplicates),
// transports.js (WebSocket, Server-Sent Events, change feed), credential.js (the token and when
// to ask for another), http.js (requests, ApiError), versions.js (the version rule), types.js
// (the types, from wire.d.ts, which is generated from the server's OpenAPI description).

import { Credential } from './credential.js';
import { ApiError, request } from './http.js';
import { backoff, Stream } from './stream.js';
import { TRANSPORTS } from './transports.js';
import { commandWatch } from './watch.js';

export { ApiError } from './http.js';
export { Versions } from './versions.js';
export { CommandFailed, TERMINAL } from './watch.js';

/** @typedef {import('./types.js').CommandView} CommandView */
/** @typedef {import('./types.js').Page} Page */
/** @typedef {import('./types.js').ListFilter} ListFilter */
/** @typedef {import('./types.js').Selection} Selection */
/** @typedef {import('./types.js').ConnectionState} ConnectionState */
/** @typedef {import('./stream.js').TransportName} TransportName */

/** Ids one selection may name (the server's bound per subscribe). */
const MAX_IDS = 1000;

/** How many times a submit is sent (with the same idempotency key) before its error is thrown. */
const SUBMIT_TRIES = 5;

/**
 * @typedef {object} ClientOptions
 * @property {string} url the cmdbus server, e.g. `https://bus.example.com`
 * @property {string | (() => string | Promise<string>)} token a browser token (or API key), or a
 *   function giving one, asked again when the server says it expires or refuses it
 * @property {TransportName[]} [transports] the transports to use, in order (default: all:
 *   `websocket`, `sse`, `feed`)
 * @property {(error: Error) => void} [onError] a failure no retry mends (the token lacks `read`)
 */

/**
 * @typedef {object} SubmitOptions
 * @property {string} [idempotencyKey] default: a new random one, reused by this call's retries
 * @property {number} [priority] 0 (lowest) to 9
 * @property {string} [orderingKey] commands with one key run one at a time, in order
 * @property {number} [maxAttempts]
 * @property {string} [subject] the end user the command is for
 */

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A client of the cmdbus server at `url`.
 * @param {ClientOptions} options
 */
export function createClient(options) {
  return new Client(options);
}

export class Client {
  #base;
  #credential;
  /** @type {TransportName[]} */
  #transports;
  /** @type {Set<Stream>} */
  #streams = new Set();
  /** @type {Set<(state: ConnectionState) => void>} */
  #stateListeners = new Set();
  /** @type {(error: Error) => void} */
  #onError;
  /** @type {ConnectionState} */
  #state = 'reconnecting';
  /** @type {Map<string, Set<(view: CommandView) => void>>} watched id -> its watches */
  #watchers = new Map();
  /** @type {Stream|null} the one stream of every watch() */
  #watched = null;
  /** @type {import('./versions.js').Versions|null} the views it held, kept while it is idle */
  #lastVersions = null;
  #rewatching = false;

  /** @param {ClientOptions} options */
  constructor({ url, token, transports, onError }) {
    this.#base = String(url).replace(/\/+$/, '');
    this.#credential = new Credential(token);
    const names = /** @type {TransportName[]} */ (Object.keys(TRANSPORTS));
    this.#transports = (transports ?? names).filter((name) => names.includes(name));
    if (this.#transports.length === 0) throw new Error(`transports: choose among ${names.join(', ')}`);
    this.#onError = onError ?? ((error) => console.error('cmdbus:', error));
  }

  /** @returns {ConnectionState} how changes arrive now (over every followed selection) */
  get state() {
    return this.#state;
  }

  /**
   * Calls `fn` whenever `state` changes; returns the unsubscribe.
   * @param {(state: ConnectionState) => void} fn
   */
  onState(fn) {
    this.#stateListeners.add(fn);
    return () => {
      this.#stateListeners.delete(fn);
    };
  }

  /**
   * Any call of the API: JSON in and out, the token renewed on a 401.
   * @param {string} method
   * @param {string} path e.g. `/v1/types`
   * @param {import('./http.js').RequestOptions} [options]
   */
  request(method, path, options) {
    return request(this.#base, this.#credential, method, path, options);
  }

  /**
   * Submits a command; retried on network errors, 429 and 5xx with the same idempotency key, so
   * the server runs it once however often it is sent.
   * @param {string} type
   * @param {unknown} payload
   * @param {SubmitOptions} [options]
   * @returns {Promise<CommandView>}
   */
  async submit(type, payload, options = {}) {
    const { idempotencyKey = crypto.randomUUID(), priority, orderingKey, maxAttempts, subject } = options;
    /** @type {Record<string, unknown>} */
    const body = { type, payload };
    if (priority !== undefined) body.priority = priority;
    if (orderingKey !== undefined) body.ordering_key = orderingKey;
    if (maxAttempts !== undefined) body.max_attempts = maxAttempts;
    if (subject !== undefined) body.subject = subject;
    for (let attempt = 1; ; attempt++) {
      try {
        const { data } = await this.request('POST', '/v1/commands', {
          body,
          headers: { 'Idempotency-Key': idempotencyKey },
        });
        return data;
      } catch (error) {
        if (!(error instanceof ApiError) || !error.retryable || attempt >= SUBMIT_TRIES) throw error;
        await sleep(backoff(attempt));
      }
    }
  }

  /**
   * A command's view (`GET /v1/commands/{id}`).
   * @param {string} id
   * @returns {Promise<CommandView>}
   */
  async get(id) {
    const { data } = await this.request('GET', `/v1/commands/${encodeURIComponent(id)}`);
    return data;
  }

  /**
   * A page of commands, newest first (`GET /v1/commands`).
   * @param {ListFilter} [filter]
   * @returns {Promise<Page>}
   */
  async list(filter = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filter)) {
      if (value !== undefined && value !== null) query.set(name, String(value));
    }
    const { data } = await this.request('GET', `/v1/commands${query.size ? `?${query}` : ''}`);
    return data;
  }

  /**
   * Follows one command until it ends. Every command watched through one client shares one
   * connection, whatever the number of watches.
   * @param {string} id
   * @returns {import('./watch.js').CommandWatch}
   */
  watch(id) {
    return commandWatch(this.#watched?.versions.get(id), (take) => {
      this.#addWatch(id, take);
      return () => this.#unwatch(id, take);
    });
  }

  /**
   * Follows many commands (chosen ids, at most 1,000) or every command in reach; `onChange` gets
   * each newer view. With `all`, `onReset` is called when changes were skipped: reload what you
   * show (with `ids`, the library re-reads them itself).
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onChange
   * @param {{ onReset?: () => void }} [options]
   * @returns {{ close(): void, readonly cursor: string|null }}
   */
  watchMany(selection, onChange, { onReset } = {}) {
    if ('ids' in selection && selection.ids.length > MAX_IDS) {
      throw new RangeError(`watchMany: at most ${MAX_IDS} ids (split them over several calls)`);
    }
    const picked = 'ids' in selection ? { ids: [...selection.ids] } : { all: /** @type {const} */ (true) };
    const stream = this.#follow(picked, onChange, onReset ?? (() => {}));
    return {
      close: () => this.#drop(stream, false),
      get cursor() {
        return stream.cursor;
      },
    };
  }

  /** Stops following everything. */
  close() {
    for (const stream of this.#streams) stream.close();
    this.#streams.clear();
    this.#watchers.clear();
    this.#watched = null;
  }

  /**
   * @param {string} id
   * @param {(view: CommandView) => void} take
   */
  #addWatch(id, take) {
    const takers = this.#watchers.get(id) ?? new Set();
    takers.add(take);
    if (takers.size === 1) {
      this.#watchers.set(id, takers);
      this.#rewatch();
    }
  }

  /**
   * @param {string} id
   * @param {(view: CommandView) => void} take
   */
  #unwatch(id, take) {
    const takers = this.#watchers.get(id);
    if (!takers?.delete(take) || takers.size > 0) return;
    this.#watchers.delete(id);
    this.#rewatch();
  }

  /** The watched ids changed: follow the new set on the shared stream, once per tick (a page
   *  that watches ten commands at once reconnects once). */
  #rewatch() {
    if (this.#rewatching) return;
    this.#rewatching = true;
    queueMicrotask(() => {
      this.#rewatching = false;
      const ids = [...this.#watchers.keys()];
      const stream = this.#watched;
      if (ids.length === 0) {
        if (stream) this.#drop(stream, false);
        this.#watched = null;
      } else if (stream) {
        stream.update(ids);
      } else {
        const versions = this.#lastVersions;
        this.#watched = this.#follow(
          { ids },
          (view) => {
            for (const take of [...(this.#watchers.get(view.id) ?? [])]) take(view);
          },
          () => {},
          'watch',
        );
        if (versions) this.#watched.versions = versions;
      }
      if (this.#watched) this.#lastVersions = this.#watched.versions;
    });
  }

  /**
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onView
   * @param {() => void} onReset
   * @param {string} [name] names the stored cursor
   */
  #follow(selection, onView, onReset, name) {
    const stream = new Stream(
      {
        base: this.#base,
        credential: this.#credential,
        transports: this.#transports,
        read: async (id) => {
          try {
            return await this.get(id);
          } catch (error) {
            if (error instanceof ApiError && error.status === 404) return null;
            throw error;
          }
        },
        stateChanged: () => this.#stateChanged(),
        failed: (error) => this.#onError(error),
      },
      selection,
      onView,
      onReset,
      name,
    );
    this.#streams.add(stream);
    stream.start();
    this.#stateChanged();
    return stream;
  }

  /**
   * @param {Stream} stream
   * @param {boolean} finished the command ended: its stored cursor is no longer needed
   */
  #drop(stream, finished) {
    stream.close(finished);
    this.#streams.delete(stream);
    this.#stateChanged();
  }

  /** The worst state over the followed selections: reconnecting, then polling, then live. */
  #stateChanged() {
    if (this.#streams.size === 0) return;
    const states = [...this.#streams].map((stream) => stream.state);
    /** @type {ConnectionState} */
    const state = states.includes('reconnecting')
      ? 'reconnecting'
      : states.includes('polling')
        ? 'polling'
        : 'live';
    if (state === this.#state) return;
    this.#state = state;
    for (const fn of this.#stateListeners) fn(state);
  }
}
