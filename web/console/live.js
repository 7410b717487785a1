// Live updates of the console: the connection indicator in the top bar, and the client's
// watch (client.js: the WebSocket when it works, polling when it does not) wired to the
// table. Which commands get a long poll while polling is decided here: the open one, then the
// rows on screen.

import { $ } from './dom.js';
import { client, state } from './state.js';
import { show } from './store.js';
import { loadList } from './list.js';
import { onScreen, tracksVisibility } from './table.js';
import { notify } from './notice.js';

const CONN_TITLES = {
  live: 'Live: updates arrive over a WebSocket.',
  reconnecting: 'The live connection dropped; reconnecting…',
  polling: 'Live updates unavailable; refreshing every 2 seconds.',
};

/** @type {import('../client.js').Watch|null} the watch of the signed-in session */
let watch = null;

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

/** The commands worth a long poll while polling, most wanted first. */
function* watched() {
  if (state.detailId) yield state.detailId;
  for (const id of state.rows) { // newest first
    if (onScreen.has(id) || !tracksVisibility()) yield id;
  }
}

function onStatus(status, reason) {
  if (status === 'forbidden') { // the console only streams with `read`; a server that disagrees says why
    notify(`Live updates refused: ${reason}`, 'error');
    return;
  }
  setConn(status);
}

/** Starts watching the session's commands (polling from the start with ?transport=polling). */
export function startLive() {
  watch = client.watch({
    onCommand: (offered) => show(offered),
    onResync: () => loadList('refresh'),
    onPoll: () => loadList('refresh'),
    onStatus,
    watched,
  }, { versions: state.commands, polling: state.forcedPolling });
  watch.start();
}

/** Stops the watch: no socket, no polling, no long poll left. */
export function stopLive() {
  watch?.stop();
  watch = null;
}

/** What deserves a long poll may have changed (a view changed, rows moved, the dialog closed). */
export function rewatch() {
  watch?.rewatch();
}

/** The network came back: do not wait out the backoff. */
export function onOnline() {
  watch?.reconnectNow();
}

/**
 * The socket of the watch, for tests and debugging (window.cmdbus.ws).
 * @returns {WebSocket|null}
 */
export const currentSocket = () => watch?.socket ?? null;
