// cmdbus web UI: submit commands, watch them live, operate on failures.
// Plain ES2020 modules, no framework and no build step; the Rust binary embeds them.
// client.js talks to the server (credential, HTTP, the live watch with its polling fallback
// and the version rule); session.js signs in and out; console/ holds the views, one concern a
// module. This module only wires them: it binds the controls, connects the views to each
// other, and starts and stops the console with the session. Each control shows only with the
// scope it needs.
//
// console/: state (what the UI knows), store (views in, through the version rule), table,
// list, filters, detail, submit (with the types), actions (retry/cancel), bulk, notice,
// live (the connection indicator and the watch), format and dom (helpers).

import { startSession } from './session.js';
import { $ } from './console/dom.js';
import { client, state } from './console/state.js';
import { onChange } from './console/store.js';
import { bindTable, clearRows, onVisibilityChange, paintRowTimes } from './console/table.js';
import { resetList } from './console/list.js';
import { bindFilters, setFilter } from './console/filters.js';
import { bindDetail, closeDetail, openDetail, paintDetailTimes, renderDetail } from './console/detail.js';
import { bindSubmit, loadTypes, setFormResult, stopTypes } from './console/submit.js';
import { runAction } from './console/actions.js';
import { bindBulk, forgetErrorCodes, rememberErrorCode, resetBulk } from './console/bulk.js';
import { notify } from './console/notice.js';
import { currentSocket, onOnline, rewatch, setConn, startLive, stopLive } from './console/live.js';

window.cmdbus = {
  get ws() { return currentSocket(); },
  client,
  state,
};

/** Binds every control, and tells each view of the changes it shows. */
function bindEvents() {
  bindSubmit();
  bindFilters();
  bindTable({ open: openDetail, act: runAction });
  bindBulk();
  bindDetail({ act: runAction, onClosed: rewatch });
  window.addEventListener('online', onOnline);

  // A view that changed: the open dialog shows it, a failure's code becomes a bulk-retry
  // suggestion, and while polling the long polls may go to other commands.
  onChange((v) => { if (state.detailId === v.id) renderDetail(); });
  onChange((v) => { if (v.status === 'fail') rememberErrorCode(v); });
  onChange(rewatch);
  onVisibilityChange(rewatch);
}

/** Ages and running durations tick once a second. */
function tick() {
  const now = Date.now();
  paintRowTimes(now);
  if (state.detailId) paintDetailTimes(now);
}

/** Shows each part of the console only with its scope, then loads what the key may read. */
function startConsole() {
  const canRead = client.can('read');
  $('#submit-panel').hidden = !client.can('submit');
  $('#commands').hidden = !canRead;
  $('#no-read').hidden = canRead;
  $('#console').classList.toggle('single', !client.can('submit'));
  loadTypes();
  if (!canRead) return;
  setFilter({}); // applies URL filters to the controls and loads the first page
  startLive();
}

/** Signed out: stop every request and forget everything the last key could see, since the
 *  next one may belong to another tenant. */
function stopConsole() {
  stopLive();
  stopTypes();
  resetList(); // answers still on their way are dropped
  closeDetail();
  clearRows();
  state.commands.clear();
  state.payloads.clear();
  state.cursor = null;
  state.pagesLoaded = 0;
  state.types = [];
  forgetErrorCodes();
  notify('');
  resetBulk();
  setFormResult('');
  setConn('reconnecting');
}

function init() {
  bindEvents();
  setInterval(tick, 1000);
  startSession(client, { onSignedIn: startConsole, onSignedOut: stopConsole });
}

init();
