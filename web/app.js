// cmdbus web UI: submit commands, watch them live, operate on failures, queues and types.
// Plain ES2020 modules, no framework and no build step; the Rust binary embeds them.
// The library @cmdbus/client (imported from /v1/client.js, the file every page gets) talks to
// the server: HTTP, live updates with their fallbacks, the version rule. bus.js holds the
// console's session on it (the pasted key, who is signed in, signing out when the key is
// refused); session.js draws the sign-in; console/ holds the pages and views, one concern a
// module. This module only wires them: it binds the controls, connects the views to each
// other, and starts and stops the console with the session. Each control shows only with the
// scope it needs.
//
// console/: router (the pages and their addresses), state (what the UI knows), held and store
// (views in, through the version rule, drawn once per frame), rows (which rows the table
// shows) and table (how a row looks, its keys), list, filters and totals, select and bulk (the
// selection and bulk actions), command, attempts and json (the command page), submit (with
// the types), actions and confirm (one command's retry/cancel/discard), overview and chart,
// queues (types with pause/resume, broker queues), workers, tables, notice, live (the
// connection indicator and the followed commands), schedules (the recurring commands' page),
// format and dom (helpers).

import { startSession } from './session.js';
import { $ } from './console/dom.js';
import { client, state } from './console/state.js';
import { dropPending, frameStats, onChange } from './console/store.js';
import { bindTable, paintRowTimes } from './console/table.js';
import { clearRows } from './console/rows.js';
import { resetList } from './console/list.js';
import { bindFilters, setFilter } from './console/filters.js';
import { bindCommand, openCommand, paintCommandTimes, renderCommand } from './console/command.js';
import { bindSubmit, loadTypes, setFormResult, stopTypes } from './console/submit.js';
import { runAction } from './console/actions.js';
import { bindBulk, forgetErrorCodes, rememberErrorCode, resetBulk } from './console/bulk.js';
import { bindSelection, clearSelection, onSelection, select } from './console/select.js';
import { startTotals, stopTotals, totalsChanged } from './console/totals.js';
import { definePage, startRouter, stopRouter } from './console/router.js';
import { noteChange } from './console/overview.js';
import './console/workers.js';
import { notify } from './console/notice.js';
import { setConn, startLive, stopLive } from './console/live.js';
import { startSchedules, stopSchedules } from './console/schedules.js';
import { currentSocket } from './bus.js';

window.cmdbus = {
  get ws() { return currentSocket(); },
  client,
  state,
  frames: frameStats,
};

/** Binds every control, and tells each view of the changes it shows. */
function bindEvents() {
  bindSubmit();
  bindFilters();
  bindTable({ open: openCommand, act: runAction, select });
  bindSelection();
  bindBulk();
  bindCommand({ act: runAction });
  definePage('commands', { show: startTotals, hide: stopTotals });
  onSelection(() => resetBulk());

  // A view that changed: the open command page shows it, a failure's code becomes a filter
  // suggestion, the totals are read again, the live charts count it.
  onChange((v) => { if (state.detailId === v.id) renderCommand(); });
  onChange((v) => { if (v.status === 'fail') rememberErrorCode(v); });
  onChange(totalsChanged);
  onChange(noteChange);

  // The skip link goes to the page shown, whichever it is.
  $('#skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    const page = [...document.querySelectorAll('#console > [id^="page-"]')].find((el) => !el.hidden);
    const target = page?.querySelector('[tabindex="-1"], h1, h2');
    if (target) { target.setAttribute('tabindex', '-1'); target.focus(); }
  });
}

/** Ages and running durations tick once a second. */
function tick() {
  const now = Date.now();
  paintRowTimes(now);
  if (state.detailId) paintCommandTimes(now);
}

/** Shows each part of the console only with its scope, then loads what the key may read. */
function startConsole() {
  const canRead = client.can('read');
  $('#submit-panel').hidden = !client.can('submit');
  $('#commands').hidden = !canRead;
  $('#no-read').hidden = canRead;
  $('#page-commands').classList.toggle('single', !client.can('submit'));
  $('#cmd-table').classList.toggle('can-operate', client.can('operate'));
  $('#bulk').hidden = !client.can('operate');
  for (const link of document.querySelectorAll('.pages a')) {
    /** @type {HTMLElement} */ (link).hidden = !canRead && link.getAttribute('data-page') !== 'commands';
  }
  loadTypes();
  startSchedules();
  if (!canRead) { startRouter(); return; }
  setFilter({}); // applies URL filters to the controls and loads the first page
  startLive();
  startRouter();
}

/** Signed out: stop every request and forget everything the last key could see, since the
 *  next one may belong to another tenant. */
function stopConsole() {
  stopRouter();
  stopLive();
  stopTypes();
  stopSchedules();
  stopTotals();
  resetList(); // answers still on their way are dropped
  dropPending();
  clearRows();
  clearSelection();
  state.commands.clear();
  state.payloads.clear();
  state.detailId = null;
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
