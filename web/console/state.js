// Everything the console knows, in one object, and the one session it talks to the server
// through. The views read and write `state`; the views of commands themselves are held in a
// Versions store (client.js), so that the version rule decides what is newest.

import { Client, Versions, isAbort } from '../client.js';

export const STATUSES = ['new', 'queue', 'running', 'success', 'fail', 'cancelled'];
export const CANCELLABLE = new Set(['new', 'queue', 'running']);

export const PAGE_SIZE = 50;
export const MAX_STORED = 5000;       // prune views that are not on screen past this many

const params = new URLSearchParams(location.search);

/** Everything the UI knows. Exposed as window.cmdbus.state for debugging and tests. */
export const state = {
  conn: 'reconnecting',                   // 'live' | 'reconnecting' | 'polling'
  forcedPolling: params.get('transport') === 'polling',
  types: [],                              // items of GET /v1/types
  commands: new Versions(),               // id -> newest view we hold
  payloads: new Map(),                    // id -> payload submitted from this page (the view has none)
  rows: [],                               // ids shown in the table, newest first
  filter: {
    status: STATUSES.includes(params.get('status')) ? params.get('status') : '',
    type: params.get('type') || '',
  },
  cursor: null,                           // next_cursor of the deepest page loaded; null = nothing more
  pagesLoaded: 0,
  listEpoch: 0,                           // bumped on filter change so stale list answers are dropped
  detailId: null,                         // command shown in the detail dialog
};

/** The signed-in session (session.js signs it in and out). */
export const client = new Client();

/**
 * Every call goes through the session's client: it sends the key and signs out on a 401.
 * @type {(method: string, path: string, options?: object) => Promise<{status: number, data: any, res: Response}>}
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
