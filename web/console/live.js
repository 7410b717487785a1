// Live updates of the console: the connection indicator in the top bar, and every command in
// the key's reach followed through the library (bus.js: the WebSocket when it works, else
// Server-Sent Events, else the HTTP change feed, with reconnects and resume), each newer view
// shown in the table.

import { $ } from './dom.js';
import { client, state } from './state.js';
import { ingest } from './store.js';
import { loadList } from './list.js';
import { notify } from './notice.js';

const CONN_TITLES = {
  live: 'Live: updates arrive as they happen.',
  reconnecting: 'The live connection dropped; reconnecting…',
  polling: 'Live connections unavailable; following the change feed over HTTP.',
};

/** @type {(() => void)|null} stops following, for the signed-in session */
let stop = null;
/** Whether the list was merged again since the first subscription of this session. */
let caughtUp = false;

/**
 * Shows how updates arrive now.
 * @param {'live'|'reconnecting'|'polling'} next
 */
export function setConn(next) {
  state.conn = next;
  const box = $('#conn');
  box.dataset.state = next;
  box.title = next === 'polling' && state.forcedPolling
    ? 'Polling, as requested by ?transport=polling.' : CONN_TITLES[next];
  const text = $('#conn-state');
  if (text.textContent !== next) text.textContent = next; // exact text: live | reconnecting | polling
}

/** How changes arrive changed. The first time they do, the list is merged again: what changed
 *  between the first page and the subscription is not in the stream. Later reconnects resume
 *  from the cursor, and a gap the server cannot replay comes as a reset. */
function onState(next) {
  setConn(next);
  if (next !== 'reconnecting' && !caughtUp) {
    caughtUp = true;
    loadList('refresh');
  }
}

/** Starts following the session's commands (only the change feed with ?transport=polling). */
export function startLive() {
  caughtUp = false;
  client.onFailure = (error) => notify(`Live updates refused: ${error.message}`, 'error');
  stop = client.followAll({
    onChange: (view) => ingest(view),
    onReset: () => loadList('refresh'),
    onState,
  });
}

/** Stops following: no socket, no request left. */
export function stopLive() {
  stop?.();
  stop = null;
}
