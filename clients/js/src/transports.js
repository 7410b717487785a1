// The three ways changes reach the browser, each opened by a Stream (stream.js) and each
// telling it the same few things through a Link: caught up at a cursor, a command changed, a
// reset, and how the connection ended. The stream decides what to do next (reconnect, fall
// back); a transport never retries by itself.
//   websocket  /v1/ws: authenticate with the first message, subscribe with `since`, renew the
//              token on the same socket
//   sse        /v1/events: EventSource with the browser token in the query (it cannot send
//              headers; an API key never goes in a URL, so keys skip it), `since` on reconnect
//   feed       /v1/changes: long-polls of the HTTP change feed, many commands per request

import { isBrowserToken } from './credential.js';
import { request } from './http.js';

/** @typedef {import('./types.js').CommandView} CommandView */
/** @typedef {import('./types.js').Selection} Selection */
/** @typedef {import('./types.js').ServerMessage} ServerMessage */
/** @typedef {import('./credential.js').Credential} Credential */

/**
 * @typedef {object} Ending how a connection ended
 * @property {boolean} connected it was subscribed (so this is a drop, not a failure to connect)
 * @property {boolean} [now] reconnect at once: a graceful restart (1012), the end of an event
 *   stream that was open, a token refused (with a fresh one asked for)
 * @property {boolean} [unauthorized] the credential was refused: ask the application again
 * @property {boolean} [forbidden] the credential lacks `read`: give up
 */

/**
 * @typedef {object} Link what a transport tells its stream
 * @property {(cursor: string|null) => void} subscribed caught up (the replay, if any, was sent)
 * @property {(view: CommandView, cursor?: string) => void} command a command changed
 * @property {(cursor?: string) => void} moved the cursor moved with no change to show
 * @property {(cursor?: string|null) => void} reset changes were skipped: re-read, go on from
 *   `cursor` (null: the held cursor is refused, start from now)
 * @property {(ending: Ending) => void} closed the connection ended (called once)
 */

/**
 * @typedef {object} Session what a transport connects with
 * @property {string} base the server's URL
 * @property {Credential} credential
 * @property {string} token the credential to open with
 * @property {Selection} selection
 * @property {string|null} cursor where to resume from (null: from now)
 */

/** @typedef {{ close(): void }} Connection */
/** @typedef {(session: Session, link: Link) => Connection} Opener */

const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_RESTART = 1012;
/** How long one change-feed request waits for a change (the server allows up to 60). */
const FEED_WAIT_S = 25;

/**
 * Calls `link.closed` once, whoever ends the connection first.
 * @param {Link} link
 */
function once(link) {
  let ended = false;
  return {
    get ended() {
      return ended;
    },
    /** @param {Ending|null} ending null: closed by the stream, tell nobody */
    end(ending) {
      if (ended) return;
      ended = true;
      if (ending) link.closed(ending);
    },
  };
}

/** @param {Selection} selection */
function selectionQuery(selection) {
  const query = new URLSearchParams();
  if ('ids' in selection) query.set('ids', selection.ids.join(','));
  else query.set('all', 'true');
  return query;
}

/** @type {Opener} */
export function openWebSocket(session, link) {
  const state = once(link);
  /** @type {WebSocket} */
  let ws;
  try {
    ws = new WebSocket(`${session.base.replace(/^http/, 'ws')}/v1/ws`);
  } catch {
    queueMicrotask(() => state.end({ connected: false }));
    return { close: () => state.end(null) };
  }
  let authenticated = false;
  let subscribed = false;
  let since = session.cursor;
  /** @param {object} message */
  const send = (message) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  };
  const subscribe = () => send({ op: 'subscribe', ...session.selection, ...(since ? { since } : {}) });
  ws.addEventListener('open', () => send({ op: 'auth', token: session.token }));
  ws.addEventListener('message', (event) => {
    if (state.ended) return;
    /** @type {ServerMessage} */
    let msg;
    try {
      msg = JSON.parse(String(event.data));
    } catch {
      return;
    }
    switch (msg.op) {
      case 'authenticated':
        // A renewed token is answered too: subscribe once per socket.
        if (!authenticated) subscribe();
        authenticated = true;
        break;
      case 'renew':
        session.credential
          .get(true)
          .then((token) => send({ op: 'auth', token }))
          .catch(() => {}); // unrenewed, the socket closes with 4401 and we ask again then
        break;
      case 'subscribed':
        subscribed = true;
        link.subscribed(msg.cursor);
        break;
      case 'command':
        link.command(msg.command, msg.cursor);
        break;
      case 'reset':
        link.reset(msg.cursor);
        break;
      case 'error':
        // A resume point the server refuses: start over from now; the stream re-reads.
        if (msg.code === 'bad_cursor' && !subscribed && since) {
          since = null;
          link.reset(null);
          subscribe();
        }
        break;
      default:
    }
  });
  ws.addEventListener('close', (event) => {
    if (event.code === CLOSE_FORBIDDEN) state.end({ connected: subscribed, forbidden: true });
    else if (event.code === CLOSE_UNAUTHORIZED)
      state.end({ connected: subscribed, now: true, unauthorized: true });
    else state.end({ connected: subscribed, now: event.code === CLOSE_RESTART });
  });
  return {
    close() {
      state.end(null);
      ws.close(1000, 'done');
    },
  };
}

/** @type {Opener} */
export function openEventStream(session, link) {
  const state = once(link);
  if (typeof EventSource === 'undefined' || !isBrowserToken(session.token)) {
    queueMicrotask(() => state.end({ connected: false }));
    return { close: () => state.end(null) };
  }
  const query = selectionQuery(session.selection);
  if (session.cursor) query.set('since', session.cursor);
  query.set('access_token', session.token);
  const source = new EventSource(`${session.base}/v1/events?${query}`);
  let opened = false;
  let subscribed = false;
  /** @param {MessageEvent} event */
  const data = (event) => {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  };
  source.addEventListener('open', () => {
    opened = true;
  });
  source.addEventListener('subscribed', (event) => {
    subscribed = true;
    link.subscribed(data(event)?.cursor ?? event.lastEventId);
  });
  source.addEventListener('command', (event) => {
    const view = data(event);
    if (view) link.command(view, event.lastEventId || undefined);
  });
  source.addEventListener('reset', (event) => link.reset(data(event)?.cursor ?? event.lastEventId));
  // The stream ends at the token's expiry: have a fresh one ready for the reconnect.
  source.addEventListener('renew', () => {
    session.credential.get(true).catch(() => {});
  });
  source.addEventListener('error', () => {
    // EventSource would reconnect by itself, with the old token in its URL: reconnect here
    // instead, with a fresh token and the cursor. A stream that was open and ended (a token's
    // expiry, a graceful stop) is not a failure; one that never opened may be a refused token.
    source.close();
    state.end({ connected: subscribed, now: opened, unauthorized: !opened });
  });
  return {
    close() {
      state.end(null);
      source.close();
    },
  };
}

/** @type {Opener} */
export function openChangeFeed(session, link) {
  const state = once(link);
  const abort = new AbortController();
  let cursor = session.cursor;
  let subscribed = false;
  const poll = async () => {
    while (!state.ended) {
      const query = 'ids' in session.selection ? selectionQuery(session.selection) : new URLSearchParams();
      if (cursor) query.set('since', cursor);
      query.set('wait', subscribed ? String(FEED_WAIT_S) : '0');
      const { status, data } = await request(session.base, session.credential, 'GET', `/v1/changes?${query}`, {
        signal: abort.signal,
        accept: [400, 409, 410],
      });
      if (state.ended) return;
      if (status === 400) {
        // Only a cursor the server cannot read is ours to mend: start from now.
        if (data?.code !== 'bad_cursor' || !cursor) throw new Error(data?.detail ?? 'bad request');
        cursor = null;
        link.reset(null);
        continue;
      }
      if (status === 409 || status === 410) {
        // A cursor from the future, or older than the server keeps: re-read, go on from its cursor.
        cursor = typeof data?.cursor === 'string' ? data.cursor : null;
        link.reset(cursor);
        continue;
      }
      /** @type {import('./types.js').Changes} */
      const changes = data;
      for (const view of changes.changes) link.command(view);
      cursor = changes.cursor;
      if (!subscribed) {
        subscribed = true;
        link.subscribed(cursor);
      } else {
        link.moved(cursor);
      }
    }
  };
  poll().catch(() => state.end({ connected: subscribed }));
  return {
    close() {
      state.end(null);
      abort.abort();
    },
  };
}

/** The transports by name, in the order they are tried. */
export const TRANSPORTS = /** @type {const} */ ({
  websocket: openWebSocket,
  sse: openEventStream,
  feed: openChangeFeed,
});
