// Which commands the table shows, and in which order: newest first, at most `state.rowCap` rows
// (a burst pushes the oldest out; "Load more" brings them back from the server, from the oldest
// row kept). store.js calls placeRows() once per frame with every id that changed since the
// last one; this module decides which rows enter, stay and leave, moves the DOM once, and
// repaints only the rows whose view changed.

import { $ } from './dom.js';
import { parseTime } from './format.js';
import { ROW_CAP, state } from './state.js';
import { createRow, listStatus, rowEls, updateRow } from './table.js';

const tbody = $('#rows');

/** At most this many changed rows in a frame are highlighted; past it the highlight is noise. */
const FLASH_LIMIT = 12;

/** id -> creation time in ms, for the rows' order (parsed once per row). */
const createdMs = new Map();

/** Whether a view still matches the filters it carries the fields of. */
const matchesFilter = (v) =>
  (!state.filter.status || v.status === state.filter.status) &&
  (!state.filter.type || v.type === state.filter.type) &&
  (!state.filter.error_code || v.error?.code === state.filter.error_code) &&
  (!state.filter.ordering_key || v.ordering_key === state.filter.ordering_key);

/** Whether a command that arrived live may join the rows: filters the view does not carry
 *  (search, lane, idempotency key, time window) are the server's to apply, so with one of them
 *  only the rows the server listed are shown. */
const admitsLive = (v) => matchesFilter(v) && !serverOnly();

const serverOnly = () => {
  const f = state.filter;
  return Boolean(f.q || f.lane || f.idempotency_key || f.created_after || f.created_before);
};

function msOf(id) {
  let ms = createdMs.get(id);
  if (ms === undefined) {
    ms = parseTime(state.commands.get(id)?.created_at);
    if (Number.isNaN(ms)) ms = 0;
    createdMs.set(id, ms);
  }
  return ms;
}

/** Whether `a` comes before `b`: newer first, then the higher id (UUID v7 sorts by time). */
function before(a, b) {
  const ta = msOf(a);
  const tb = msOf(b);
  return ta !== tb ? ta > tb : a > b;
}

/** Where `id` goes in the rows, newest first (binary search). */
function slot(id) {
  let lo = 0;
  let hi = state.rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(state.rows[mid], id)) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** A live command belongs in the table only if it is not older than the rows loaded; older
 *  ones come with "Load more", in order. */
function withinLoadedWindow(id) {
  if (state.cursor === null || state.rows.length === 0) return true;
  return before(id, state.rows[state.rows.length - 1]);
}

/**
 * Brings the rows in step with the views that changed.
 * @param {Map<string, {listed: boolean, changed: boolean}>} batch
 * @param {boolean} quiet nothing changed for a while: the changes may be highlighted
 */
export function placeRows(batch, quiet) {
  const shown = new Set(state.rows);
  const repaint = [];
  let moved = false;
  for (const [id, { listed, changed }] of batch) {
    const view = state.commands.get(id);
    if (!view) continue;
    const fits = listed || admitsLive(view);
    if (shown.has(id)) {
      if (!listed && !matchesFilter(view)) { dropRow(id); moved = true; continue; }
      if (changed) repaint.push(id);
    } else if (fits && (listed || withinLoadedWindow(id))) {
      state.rows.splice(slot(id), 0, id);
      shown.add(id);
      repaint.push(id);
      moved = true;
    }
  }
  if (state.rows.length > state.rowCap) {
    // The oldest rows leave; Load more fetches them again from the oldest row kept.
    for (const id of state.rows.splice(state.rowCap)) dropRow(id, false);
    state.cursor = state.rows[state.rows.length - 1];
    moved = true;
  }
  const kept = moved ? new Set(state.rows) : shown;
  const flash = quiet && repaint.length <= FLASH_LIMIT;
  for (const id of repaint) {
    const view = state.commands.get(id);
    if (!view || !kept.has(id)) continue; // pushed out in this very frame
    let tr = rowEls.get(id);
    if (!tr) {
      tr = createRow(view);
      rowEls.set(id, tr);
      if (flash && state.pagesLoaded > 0) tr.classList.add('flash');
    } else {
      updateRow(tr, view, flash);
    }
  }
  if (moved) order();
  updateListChrome();
}

/** Puts the rows' elements in the order of state.rows, moving only those out of place. */
function order() {
  let node = tbody.firstElementChild;
  for (const id of state.rows) {
    const tr = rowEls.get(id);
    if (!tr) continue;
    if (tr === node) node = node.nextElementSibling;
    else tbody.insertBefore(tr, node);
  }
  if (!tbody.querySelector('tr[tabindex="0"]') && tbody.firstElementChild) {
    /** @type {HTMLElement} */ (tbody.firstElementChild).tabIndex = 0;
  }
}

/**
 * Takes the row of `id` out of the table, keeping keyboard focus in it.
 * @param {string} id
 * @param {boolean} [fromRows] also take it out of state.rows
 */
function dropRow(id, fromRows = true) {
  const tr = rowEls.get(id);
  if (fromRows) {
    const at = state.rows.indexOf(id);
    if (at >= 0) state.rows.splice(at, 1);
  }
  createdMs.delete(id);
  if (!tr) return;
  // Do not drop keyboard users into <body> when their row leaves the filter.
  if (tr.contains(document.activeElement) || tr.tabIndex === 0) {
    const next = /** @type {HTMLElement|null} */ (tr.nextElementSibling || tr.previousElementSibling);
    if (next) next.tabIndex = 0;
    if (tr.contains(document.activeElement)) (next || $('#commands')).focus();
  }
  tr.remove();
  rowEls.delete(id);
}

/** Removes every row. */
export function clearRows() {
  tbody.replaceChildren();
  rowEls.clear();
  createdMs.clear();
  state.rows = [];
}

/** Empty state, row count and the "Load more" button. */
export function updateListChrome() {
  const empty = $('#empty');
  const f = state.filter;
  const filtered = Object.values(f).some(Boolean);
  if (state.rows.length) {
    empty.hidden = true;
  } else {
    empty.hidden = false;
    empty.classList.toggle('error', Boolean(listStatus.error));
    empty.textContent = listStatus.error
      || (listStatus.loading ? 'Loading commands…'
        : filtered ? 'No commands match these filters.' : 'No commands yet. Submit one to see it here.');
  }
  const count = `${state.rows.length} shown${state.cursor ? ', more available' : ''}`;
  const el = $('#count');
  const text = state.rows.length ? count : '';
  if (el.textContent !== text) el.textContent = text;
  const more = $('#load-more');
  more.hidden = !state.cursor;
  more.disabled = listStatus.loading;
  more.textContent = listStatus.loading && state.pagesLoaded > 0 ? 'Loading…' : 'Load more';
}
