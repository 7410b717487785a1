// Watching the tenant's commands with whatever works: the WebSocket stream (live.js) while it
// does, and polling while it does not (the view re-read every 2 s, plus long polls on the few
// commands the page cares about most), every view passed through the version rule (versions.js).
// No DOM: the page says what to re-read and which commands matter through its handlers.

import { Versions } from './versions.js';

const TERMINAL = new Set(['success', 'fail', 'cancelled']);

const POLL_MS = 2000;            // polling mode: how often onPoll re-reads the page's view
const LONG_POLL_WAIT_S = 25;     // polling mode: GET /v1/commands/{id}?wait=
// Browsers allow ~6 HTTP/1.1 connections per host; leave room for list refreshes and submits.
const MAX_LONG_POLLS = 4;
const SYNC_DELAY_MS = 150;       // gather a burst of changes into one re-pick of the long polls

const isTerminal = (v) => TERMINAL.has(v.status);

const commandPath = (id, suffix = '') => `/v1/commands/${encodeURIComponent(id)}${suffix}`;

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * @typedef {import('./versions.js').Offered} Offered
 * @typedef {'live'|'reconnecting'|'polling'|'forbidden'} WatchStatus
 *
 * @typedef {object} WatchHandlers
 * @property {(offered: Offered) => void} [onCommand] every view the stream or a long poll
 *   brought, after the version rule: `changed` says whether it was newer than the one held
 * @property {() => void} [onResync] reload what you show: a fresh subscription started, or the
 *   server could not replay everything that was missed
 * @property {() => (Promise<void>|void)} [onPoll] polling mode, every 2 s: re-read what you show
 *   (a slow answer is not stacked: the next call waits until this one settles)
 * @property {(status: WatchStatus, reason?: string) => void} [onStatus] how updates arrive now:
 *   'live' (WebSocket), 'reconnecting', 'polling' (the stream keeps retrying behind it), or
 *   'forbidden' (the credential lacks `read`, with the server's reason; no retries)
 * @property {() => Iterable<string>} [watched] polling mode: the ids worth a long poll, most
 *   wanted first; finished and unknown ones are skipped, at most four are polled at once
 *
 * @typedef {object} WatchOptions
 * @property {Versions} [versions] the views held, to de-duplicate against; share it with the
 *   page's other sources of views (list pages, POST answers) so that one rule orders them all
 * @property {boolean} [polling] poll from the start, never open a WebSocket
 * @property {string|null} [since] a cursor to resume the stream from (null: a fresh subscription)
 */

/** The tenant's commands, live when possible and polled when not; build it with client.watch(). */
export class Watch {
  #client;
  #handlers;
  #versions;
  #polling;
  #since;
  #live = null;            // the LiveStream, unless polling was asked for
  #pollTimer = 0;
  #refreshing = false;
  #longPolls = new Map();  // id -> AbortController
  #syncTimer = 0;

  /**
   * @param {import('../client.js').Client} client the signed-in session
   * @param {WatchHandlers} handlers
   * @param {WatchOptions} [options]
   */
  constructor(client, handlers, { versions = new Versions(), polling = false, since = null } = {}) {
    this.#client = client;
    this.#handlers = handlers;
    this.#versions = versions;
    this.#polling = polling;
    this.#since = since;
    /** @type {'live'|'reconnecting'|'polling'|'stopped'} */
    this.mode = 'reconnecting';
  }

  /** @returns {Versions} the views held, newest version of each */
  get versions() { return this.#versions; }

  /** @returns {WebSocket|null} the stream's socket, for tests and debugging */
  get socket() { return this.#live?.socket ?? null; }

  /** @returns {string|null} where the stream would resume from after a drop */
  get cursor() { return this.#live?.cursor ?? this.#since; }

  /** Starts watching: the WebSocket, or straight to polling without one. */
  start() {
    if (this.#polling || !('WebSocket' in globalThis)) { this.#enterPolling(); return; }
    this.#live = this.#client.live({
      onCommand: (view) => this.#take(view),
      // A fresh stream started: close the gap between what the page holds and that moment.
      onSubscribed: (fresh) => { if (fresh) this.#handlers.onResync?.(); },
      onReset: () => this.#handlers.onResync?.(),
      onStatus: (status, reason) => this.#onLiveStatus(status, reason),
    }, { since: this.#since });
    this.#live.start();
  }

  /** Stops the stream, the polling and every long poll, for good. */
  stop() {
    this.#live?.stop();
    this.#live = null;
    this.#stopPolling();
    clearTimeout(this.#syncTimer);
    this.#syncTimer = 0;
    this.mode = 'stopped';
  }

  /** The network came back: do not wait out the backoff. */
  reconnectNow() {
    this.#live?.reconnectNow();
  }

  /** What `watched` yields may have changed (a view changed, rows scrolled into sight): re-pick
   *  the long polls soon. Nothing to do unless polling. */
  rewatch() {
    if (this.mode !== 'polling' || this.#syncTimer) return;
    this.#syncTimer = setTimeout(() => { this.#syncTimer = 0; this.#syncLongPolls(); }, SYNC_DELAY_MS);
  }

  /** A view from the stream or a long poll: through the version rule, then to the page. */
  #take(view) {
    const offered = this.#versions.offer(view);
    if (!offered) return false;
    this.#handlers.onCommand?.(offered);
    return offered.changed;
  }

  #setMode(mode) {
    this.mode = mode;
    this.#handlers.onStatus?.(mode);
  }

  #onLiveStatus(status, reason) {
    switch (status) {
      case 'live':
        this.#stopPolling();
        this.#setMode('live');
        break;
      case 'reconnecting':
        // Once polling, stay polling until the socket is back: the page must keep moving.
        if (this.mode !== 'polling') this.#setMode('reconnecting');
        break;
      case 'unavailable':
        this.#enterPolling(); // the stream keeps retrying in the background
        break;
      case 'forbidden':
        this.#handlers.onStatus?.('forbidden', reason);
        break;
      default:
    }
  }

  #enterPolling() {
    if (this.mode === 'polling' && this.#pollTimer) return;
    this.#setMode('polling');
    clearTimeout(this.#pollTimer);
    this.#pollLoop();
    this.rewatch();
  }

  #stopPolling() {
    clearTimeout(this.#pollTimer);
    this.#pollTimer = 0;
    for (const ctrl of this.#longPolls.values()) ctrl.abort();
    this.#longPolls.clear();
  }

  async #pollLoop() {
    this.#pollTimer = setTimeout(() => this.#pollLoop(), POLL_MS); // mark running before awaiting
    if (this.#refreshing) return; // a slow server: do not stack requests
    this.#refreshing = true;
    try { await this.#handlers.onPoll?.(); } finally { this.#refreshing = false; }
  }

  /** Which commands deserve one of the few long-poll slots, in the page's order. */
  #candidates() {
    const ids = [];
    for (const id of this.#handlers.watched?.() ?? []) {
      if (ids.length >= MAX_LONG_POLLS) break;
      const v = this.#versions.get(id);
      if (v && !isTerminal(v) && !ids.includes(id)) ids.push(id);
    }
    return ids;
  }

  #syncLongPolls() {
    if (this.mode !== 'polling') return;
    const wanted = new Set(this.#candidates());
    for (const [id, ctrl] of this.#longPolls) {
      if (!wanted.has(id)) { ctrl.abort(); this.#longPolls.delete(id); }
    }
    for (const id of wanted) {
      if (!this.#longPolls.has(id)) {
        const ctrl = new AbortController();
        this.#longPolls.set(id, ctrl);
        this.#longPoll(id, ctrl);
      }
    }
  }

  /** GET ?wait= with If-None-Match until the command finishes or the slot is taken away. */
  async #longPoll(id, ctrl) {
    const { signal } = ctrl;
    while (!signal.aborted) {
      const held = this.#versions.get(id);
      if (!held || isTerminal(held)) break;
      const started = Date.now();
      try {
        const r = await this.#client.request('GET', commandPath(id, `?wait=${LONG_POLL_WAIT_S}`), {
          headers: { 'If-None-Match': `"${held.version}"` },
          signal,
        });
        const changed = r.status === 200 && this.#take(r.data);
        // A server that ignores ?wait (or the ETag) would make this spin; pace it.
        if (!changed && Date.now() - started < 1000) await sleep(1000, signal);
      } catch (err) {
        if (signal.aborted) break;
        if (err.status === 404 || err.status === 400) break; // gone, or not a command id
        await sleep(2000, signal);
      }
    }
    if (this.#longPolls.get(id) === ctrl) {
      this.#longPolls.delete(id);
      this.rewatch(); // hand the free slot to another command
    }
  }
}
