// One followed selection (some ids, or everything in reach) kept up to date through whichever
// transport works: the WebSocket first, the event stream when the socket fails to connect twice,
// the change feed when that fails twice too; back to the top when every one of them fails (the
// server is away), so that it returns to the best one that works. Each reconnect waits a
// jittered backoff and resumes from the cursor, which is kept in sessionStorage (per server and
// selection) so that a reload resumes too; every view goes through the version rule.

import { TRANSPORTS } from './transports.js';
import { Versions } from './versions.js';

/** @typedef {import('./types.js').CommandView} CommandView */
/** @typedef {import('./types.js').Selection} Selection */
/** @typedef {import('./types.js').ConnectionState} ConnectionState */
/** @typedef {keyof typeof TRANSPORTS} TransportName */
/** @typedef {import('./transports.js').Ending} Ending */

/**
 * What a stream needs from its client.
 * @typedef {object} Host
 * @property {string} base
 * @property {import('./credential.js').Credential} credential
 * @property {TransportName[]} transports the order to try them in
 * @property {(id: string) => Promise<CommandView|null>} read re-reads one command (null: gone)
 * @property {() => void} stateChanged
 * @property {(error: Error) => void} failed a failure no retry can mend (the credential lacks `read`)
 */

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
/** Failed connects in a row before the next transport is tried: a transport that never worked
 *  here is likely blocked; one that did is likely restarting, and gets more time. */
const TRIES_UNPROVEN = 2;
const TRIES_PROVEN = 4;
/** The most views a stream of every command (`all`) holds for the version rule: the commands
 *  changed last. One changed longer ago than that is forgotten, so that a page following
 *  everything for days stays bounded (a late, older view of it would be taken once more). */
const HELD_ALL = 10000;
/** A reconnect asked for by the server (1012) is spread over this much, so tabs do not stampede. */
const RESTART_SPREAD_MS = 250;

/** 0.5 s, 1 s, 2 s … capped at 10 s, each ±25%, so a fleet of tabs does not reconnect in step.
 *  @param {number} failures */
export function backoff(failures) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** @returns {Storage|null} */
function storage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage switched off
  }
}

export class Stream {
  /** @type {Host} */
  #host;
  /** @type {Selection} */
  #selection;
  /** @type {(view: CommandView) => void} */
  #onView;
  /** @type {() => void} */
  #onReset;
  /** @type {string} */
  #storageKey;
  /** @type {import('./transports.js').Connection|null} */
  #connection = null;
  #transport = 0;
  #failures = 0;
  /** @type {Set<number>} transports that subscribed at least once */
  #proven = new Set();
  #fresh = false; // ask the application for a new token before the next connect
  #timer = /** @type {ReturnType<typeof setTimeout>|undefined} */ (undefined);
  #closed = false;
  /** @type {Set<string>|null} ids to read once the next subscription is caught up (null: all) */
  #toRead = null;
  /** @type {ConnectionState} */
  state = 'reconnecting';
  /** The views held, newest version of each (with `all`, of the commands changed last). */
  versions;

  /**
   * @param {Host} host
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onView each newer view
   * @param {() => void} [onReset] changes were skipped (with `all`: reload what you show)
   * @param {string} [name] names the stored cursor (default: the selection)
   */
  constructor(host, selection, onView, onReset = () => {}, name) {
    this.#host = host;
    this.#selection = selection;
    this.#onView = onView;
    this.#onReset = onReset;
    this.versions = new Versions('ids' in selection ? Infinity : HELD_ALL);
    const key = name ?? ('ids' in selection ? `ids:${[...selection.ids].sort().join(',')}` : 'all');
    this.#storageKey = `cmdbus.cursor ${host.base} ${key}`;
  }

  /**
   * Follows `ids` from now on: reconnects at once with them, from the same cursor (still sound:
   * it covers what was followed, and a command followed anew is read once the new subscription
   * is caught up, so changes after the cursor reach it by the replay and the rest by the read).
   * @param {string[]} ids
   */
  update(ids) {
    const before = 'ids' in this.#selection ? new Set(this.#selection.ids) : new Set();
    this.#selection = { ids };
    if (this.#closed) return;
    if (this.#toRead) for (const id of ids) if (!before.has(id)) this.#toRead.add(id);
    if (this.#connection) {
      this.#connection.close();
      this.#connection = null;
      this.#retry(0);
    }
  }

  /** @returns {string|null} where the stream resumes from after a drop or a reload */
  get cursor() {
    return storage()?.getItem(this.#storageKey) ?? null;
  }

  /** @returns {TransportName} the transport in use or being tried */
  get transport() {
    return this.#host.transports[this.#transport];
  }

  start() {
    this.#connect();
  }

  /** Stops for good. `forget`: drop the stored cursor too (nothing more will be asked). */
  close(forget = false) {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#connection?.close();
    this.#connection = null;
    if (forget) storage()?.removeItem(this.#storageKey);
  }

  /** @param {string|null|undefined} cursor */
  #keep(cursor) {
    if (typeof cursor === 'string' && cursor && !this.#closed) storage()?.setItem(this.#storageKey, cursor);
  }

  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#host.stateChanged();
  }

  /** @param {unknown} view */
  #offer(view) {
    const newer = this.versions.offer(view);
    if (newer && !this.#closed) this.#onView(newer);
  }

  /** Re-reads the followed commands, or only `only` (after a reset, and once caught up the
   *  first time or after an update, so that a command with no change since the cursor is shown
   *  too). */
  async #reread(only = /** @type {Set<string>|null} */ (null)) {
    if (!('ids' in this.#selection)) return;
    await Promise.all(
      this.#selection.ids.filter((id) => !only || only.has(id)).map((id) =>
        this.#host.read(id).then(
          (view) => this.#offer(view),
          () => {}, // the stream brings its next change anyway
        ),
      ),
    );
  }

  async #connect() {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    let token;
    try {
      token = await this.#host.credential.get(this.#fresh);
      this.#fresh = false;
    } catch {
      // The application could not give a token now: try again later, never sign out.
      this.#failures++;
      this.#retry(backoff(this.#failures));
      return;
    }
    if (this.#closed) return;
    const index = this.#transport;
    const open = TRANSPORTS[this.#host.transports[index]];
    this.#connection = open(
      {
        base: this.#host.base,
        credential: this.#host.credential,
        token,
        selection: this.#selection,
        cursor: this.cursor,
      },
      {
        subscribed: (cursor) => {
          this.#keep(cursor);
          this.#failures = 0;
          this.#proven.add(index);
          this.#setState(this.#host.transports[index] === 'feed' ? 'polling' : 'live');
          const toRead = this.#toRead;
          this.#toRead = new Set();
          this.#reread(toRead);
        },
        command: (view, cursor) => {
          this.#offer(view);
          this.#keep(cursor);
        },
        moved: (cursor) => this.#keep(cursor),
        reset: (cursor) => {
          if (cursor === null) storage()?.removeItem(this.#storageKey);
          this.#keep(cursor);
          this.#reread();
          this.#onReset();
        },
        closed: (ending) => this.#ended(index, ending),
      },
    );
  }

  /**
   * @param {number} index
   * @param {Ending} ending
   */
  #ended(index, ending) {
    this.#connection = null;
    if (this.#closed) return;
    this.#setState('reconnecting');
    if (ending.forbidden) {
      this.close();
      this.#host.failed(new Error('this credential may not read commands'));
      return;
    }
    if (ending.unauthorized) this.#fresh = true;
    if (ending.connected && ending.now) {
      this.#failures = 0;
      this.#retry(Math.round(Math.random() * RESTART_SPREAD_MS));
      return;
    }
    if (ending.connected) {
      this.#failures = 0;
      this.#retry(backoff(1));
      return;
    }
    this.#failures++;
    const tries = this.#proven.has(index) ? TRIES_PROVEN : TRIES_UNPROVEN;
    if (this.#failures >= tries && this.#host.transports.length > 1) {
      // Try the next transport at once; after the last, start again from the first.
      this.#transport = (index + 1) % this.#host.transports.length;
      const lapped = this.#transport === 0;
      this.#failures = 0;
      this.#retry(lapped ? backoff(tries + 1) : 0);
      return;
    }
    this.#retry(backoff(this.#failures));
  }

  /** @param {number} delay */
  #retry(delay) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }
}
