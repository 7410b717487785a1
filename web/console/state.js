// Everything the console knows, in one object, and the one session it talks to the server
// through (bus.js, on the library @cmdbus/client). The views read and write `state`; the views
// of commands themselves are held in a Held store (store.js), whose gate is the library's
// version rule.

import { Session, isAbort } from '../bus.js';
import { Held } from './held.js';

export const STATUSES = ['scheduled', 'new', 'queue', 'running', 'success', 'fail', 'cancelled', 'discarded'];
export const CANCELLABLE = new Set(['scheduled', 'new', 'queue', 'running']);

export const PAGE_SIZE = 50;
/** Rows the table shows at most before "Load more" (a burst pushes the oldest out). */
export const ROW_CAP = 100;
export const MAX_STORED = 20000;      // prune views that are not on screen past this many

/** The list's filters, in the address bar and in GET /v1/commands. */
export const FILTER_KEYS = ['status', 'type', 'q', 'error_code', 'lane', 'ordering_key',
  'idempotency_key', 'created_after', 'created_before'];

const params = new URLSearchParams(location.search);

/** Everything the UI knows. Exposed as window.cmdbus.state for debugging and tests. */
export const state = {
  conn: 'reconnecting',                   // 'live' | 'reconnecting' | 'polling'
  forcedPolling: params.get('transport') === 'polling',
  types: [],                              // items of GET /v1/types
  commands: new Held(),                   // id -> newest view we hold
  payloads: new Map(),                    // id -> payload submitted from this page (the view has none)
  rows: [],                               // ids shown in the table, newest first
  rowCap: ROW_CAP,                        // rows shown at most; Load more raises it
  selected: new Set(),                    // ids selected for a bulk action
  /** @type {Record<string, string>} */
  filter: Object.fromEntries(FILTER_KEYS.map((k) => [k, params.get(k) || ''])),
  cursor: null,                           // next_cursor of the deepest page loaded; null = nothing more
  pagesLoaded: 0,
  listEpoch: 0,                           // bumped on filter change so stale list answers are dropped
  detailId: null,                         // command shown on the command page
  cameFromList: false,                    // it was opened from the list: Back returns there
};

/** The signed-in session (session.js signs it in and out); `?transport=polling` keeps the
 *  library to its HTTP change feed. */
if (!STATUSES.includes(state.filter.status)) state.filter.status = '';

export const client = new Session({ transports: params.get('transport') === 'polling' ? ['feed'] : undefined });

/**
 * Every call goes through the session's library client: it sends the key, and a key the server
 * refuses signs out.
 * @type {(method: string, path: string, options?: object) => Promise<{status: number, data: any}>}
 */
export const api = (method, path, options) => client.request(method, path, options);

/**
 * The request failed because the session ended (signed out, or a 401 that signed out): the
 * sign-in form says why, and nothing of the old session is shown any more.
 * @type {(err: unknown) => boolean}
 */
export const sessionEnded = (err) => isAbort(err) || !client.signedIn;

/**
 * The path of one command, or of one of its actions.
 * @type {(id: string, suffix?: string) => string}
 */
export const commandPath = (id, suffix = '') => `/v1/commands/${encodeURIComponent(id)}${suffix}`;
