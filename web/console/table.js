// The commands table: one row per command shown, newest first, painted from the view held;
// its keyboard moves, its action buttons, its empty state and count, and which rows are on
// screen. It draws only: store.js decides which views enter and leave it.

import { $, h, shortId } from './dom.js';
import {
  compareNewestFirst, fmtAge, fmtDate, fmtDuration, parseTime, progressPercent, runDuration,
} from './format.js';
import { CANCELLABLE, client, state } from './state.js';

/** id -> its <tr>, for every row shown. */
export const rowEls = new Map();
/** ids whose rows intersect the viewport (polling mode long-polls only those). */
export const onScreen = new Set();
/** The list's loading state, shown in place of an empty table. list.js sets it. */
export const listStatus = { loading: false, error: '' };

const tbody = $('#rows');
let visibilityListener = () => {};

const ROW_TEMPLATE = `
  <td class="c-id" data-label="ID"><code></code></td>
  <td class="c-type" data-label="Type"></td>
  <td class="c-status" data-label="Status"><span class="badge" data-testid="status"></span></td>
  <td class="c-progress" data-label="Progress">
    <div class="progress" role="progressbar" data-testid="progress" aria-label="Progress"
         aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><div class="progress-fill"></div></div>
    <span class="progress-note"></span>
  </td>
  <td class="c-attempt" data-label="Attempt"></td>
  <td class="c-age" data-label="Age"><time></time></td>
  <td class="c-duration" data-label="Took"></td>
  <td class="c-actions"></td>`;

function createRow(v) {
  const tr = document.createElement('tr');
  tr.tabIndex = 0;
  tr.dataset.testid = 'row';
  tr.dataset.id = v.id;
  tr.innerHTML = ROW_TEMPLATE; // static markup only; values go in via textContent below
  updateRow(tr, v, null);
  return tr;
}

/**
 * Progress bar + note; shared by table rows and the detail view.
 * @param {HTMLElement} bar the .progress element
 * @param {HTMLElement|null} noteEl
 * @param {object} v a command view
 */
export function paintProgress(bar, noteEl, v) {
  const pct = progressPercent(v);
  // A running command that has not reported progress yet gets an indeterminate bar.
  const indeterminate = v.status === 'running' && typeof v.progress !== 'number';
  bar.setAttribute('aria-valuenow', String(pct));
  bar.setAttribute('aria-valuetext', indeterminate ? 'running, no progress reported yet'
    : `${pct}%${v.progress_note ? `, ${v.progress_note}` : ''}`);
  bar.dataset.status = v.status;
  bar.classList.toggle('indeterminate', indeterminate);
  bar.firstElementChild.style.width = `${indeterminate ? 100 : pct}%`;
  if (noteEl) {
    // A failed row says why; that is what an operator scans the Failed view for.
    const failure = v.status === 'fail' && v.error ? (v.error.code || v.error.message || '') : '';
    const text = failure || v.progress_note || (pct > 0 && !indeterminate ? `${pct}%` : '');
    noteEl.textContent = text;
    noteEl.title = failure && v.error.message ? v.error.message : text;
    noteEl.classList.toggle('is-error', Boolean(failure));
  }
}

/**
 * The status badge: its class and its exact status text.
 * @param {HTMLElement} badge
 * @param {string} status
 */
export function paintBadge(badge, status) {
  badge.className = `badge s-${status}`;
  badge.textContent = status; // exact status string: tests and screen readers rely on it
}

/**
 * Repaints a row for `v`; flashes it when the status moved on from `previous`.
 * @param {HTMLTableRowElement} tr
 * @param {object} v the view now held
 * @param {object|null|undefined} previous the view the row showed before
 */
export function updateRow(tr, v, previous) {
  tr.dataset.status = v.status;
  const code = tr.querySelector('.c-id code');
  code.textContent = shortId(v.id);
  code.title = v.id;
  tr.querySelector('.c-type').textContent = v.type;
  paintBadge(tr.querySelector('.badge'), v.status);
  paintProgress(tr.querySelector('.progress'), tr.querySelector('.progress-note'), v);
  tr.querySelector('.c-attempt').textContent = `${v.attempt}/${v.max_attempts}`;
  const time = tr.querySelector('.c-age time');
  time.dateTime = v.created_at;
  time.title = fmtDate(v.created_at);
  paintTimes(tr, v);
  paintActions(tr.querySelector('.c-actions'), v);
  const pct = v.status === 'running' && typeof v.progress === 'number' ? `, ${progressPercent(v)}%` : '';
  tr.setAttribute('aria-label', `${v.type} ${shortId(v.id)}, ${v.status}${pct}`);
  if (previous && previous.status !== v.status) flash(tr);
}

/** Age and duration change every second; the ticker calls this for every row. */
function paintTimes(tr, v, now = Date.now()) {
  const age = fmtAge(now - parseTime(v.created_at));
  const time = tr.querySelector('.c-age time');
  if (time.textContent !== age) time.textContent = age;
  const d = runDuration(v, now);
  const text = d === null ? '—' : fmtDuration(d);
  const cell = tr.querySelector('.c-duration');
  if (cell.textContent !== text) cell.textContent = text;
}

/** Rebuild the action buttons only when the set of allowed actions changes (keeps focus). */
function paintActions(cell, v) {
  const actions = operations(v);
  const key = actions.join(',');
  if (cell.dataset.actions === key) return;
  const hadFocus = cell.contains(document.activeElement);
  cell.dataset.actions = key;
  cell.replaceChildren(...actions.map((a) => actionButton(a, v.id)));
  if (hadFocus) cell.closest('tr')?.focus();
}

/**
 * What the signed-in key may do to `v` now: retry and cancel need the operate scope.
 * @param {object} v a command view
 * @returns {Array<'retry'|'cancel'>}
 */
export function operations(v) {
  if (!client.can('operate')) return [];
  if (v.status === 'fail') return ['retry'];
  return CANCELLABLE.has(v.status) ? ['cancel'] : [];
}

/**
 * A Retry or Cancel button for command `id` (small in a row, large in the detail dialog).
 * @param {'retry'|'cancel'} action
 * @param {string} id
 * @param {{large?: boolean}} [options]
 * @returns {HTMLButtonElement}
 */
export function actionButton(action, id, { large = false } = {}) {
  const label = action === 'retry' ? 'Retry' : 'Cancel';
  return h('button', {
    type: 'button',
    class: `btn ${large ? '' : 'small'} ${action === 'cancel' ? 'ghost-danger' : ''}`.trim(),
    'data-action': action,
    'data-testid': action,
    'data-id': id,
    'aria-label': large ? null : `${label} command ${shortId(id)}`,
  }, label);
}

/**
 * Brief highlight so a status change is noticed without reading every row.
 * @param {HTMLTableRowElement} tr
 */
export function flash(tr) {
  tr.classList.remove('flash');
  void tr.offsetWidth; // restart the CSS animation
  tr.classList.add('flash');
}

/**
 * Adds a row for `v` in its place, newest first.
 * @param {object} v a command view
 * @returns {HTMLTableRowElement}
 */
export function insertRow(v) {
  const tr = createRow(v);
  // rows are newest first; find the first one older than v
  let i = 0;
  while (i < state.rows.length && compareNewestFirst(state.commands.get(state.rows[i]), v) <= 0) i++;
  const before = i < state.rows.length ? rowEls.get(state.rows[i]) : null;
  tbody.insertBefore(tr, before);
  state.rows.splice(i, 0, v.id);
  rowEls.set(v.id, tr);
  visibility?.observe(tr);
  updateListChrome();
  return tr;
}

/**
 * Removes the row of `id`, keeping keyboard focus in the table.
 * @param {string} id
 */
export function removeRow(id) {
  const tr = rowEls.get(id);
  if (!tr) return;
  // Do not drop keyboard users into <body> when their row leaves the filter.
  if (tr.contains(document.activeElement)) {
    const next = tr.nextElementSibling || tr.previousElementSibling;
    (next || $('#list-h').closest('section')).focus();
  }
  visibility?.unobserve(tr);
  onScreen.delete(id);
  tr.remove();
  rowEls.delete(id);
  state.rows.splice(state.rows.indexOf(id), 1);
  updateListChrome();
}

/** Removes every row. */
export function clearRows() {
  for (const tr of rowEls.values()) visibility?.unobserve(tr);
  tbody.replaceChildren();
  rowEls.clear();
  onScreen.clear();
  state.rows = [];
}

/** Empty state, row count and the "Load more" button. */
export function updateListChrome() {
  const empty = $('#empty');
  const filtered = state.filter.status || state.filter.type;
  if (state.rows.length) {
    empty.hidden = true;
  } else {
    empty.hidden = false;
    empty.classList.toggle('error', Boolean(listStatus.error));
    empty.textContent = listStatus.error
      || (listStatus.loading ? 'Loading commands…'
        : filtered ? 'No commands match these filters.' : 'No commands yet. Submit one to see it here.');
  }
  $('#count').textContent = state.rows.length
    ? `${state.rows.length} shown${state.cursor ? ', more available' : ''}` : '';
  const more = $('#load-more');
  more.hidden = !state.cursor;
  more.disabled = listStatus.loading;
  more.textContent = listStatus.loading && state.pagesLoaded > 0 ? 'Loading…' : 'Load more';
}

function focusRow(tr) {
  if (!tr) return;
  tr.focus();
  tr.scrollIntoView({ block: 'nearest' });
}

/**
 * Clicks and keys on the table: an action button runs `act`, a row (Enter, Space, a click)
 * opens with `open`, arrow keys, Home and End move between rows.
 * @param {{open: (id: string) => void, act: (action: string, id: string, btn: HTMLButtonElement) => void}} handlers
 */
export function bindTable({ open, act }) {
  tbody.addEventListener('click', (event) => {
    const btn = event.target.closest('button[data-action]');
    if (btn) { act(btn.dataset.action, btn.dataset.id, btn); return; }
    const tr = event.target.closest('tr[data-id]');
    // Let people select text (e.g. to copy an id) without opening the dialog.
    if (tr && !window.getSelection()?.toString()) open(tr.dataset.id);
  });
  tbody.addEventListener('keydown', (event) => onTableKeydown(event, open));
}

function onTableKeydown(event, openDetail) {
  const tr = event.target;
  if (!(tr instanceof HTMLTableRowElement) || !tr.dataset.id) return;
  switch (event.key) {
    case 'Enter':
    case ' ':
      event.preventDefault();
      openDetail(tr.dataset.id);
      break;
    case 'ArrowDown': event.preventDefault(); focusRow(tr.nextElementSibling); break;
    case 'ArrowUp': event.preventDefault(); focusRow(tr.previousElementSibling); break;
    case 'Home': event.preventDefault(); focusRow(tbody.firstElementChild); break;
    case 'End': event.preventDefault(); focusRow(tbody.lastElementChild); break;
    default:
  }
}

/** Track which rows are on screen: polling mode long-polls only those. */
const visibility = 'IntersectionObserver' in window
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.id;
      if (e.isIntersecting) onScreen.add(id); else onScreen.delete(id);
    }
    visibilityListener();
  })
  : null;

/**
 * Whether rows can be told on screen from off screen (else every row counts as on screen).
 * @returns {boolean}
 */
export const tracksVisibility = () => visibility !== null;

/**
 * `listener()` runs whenever rows scroll into or out of sight.
 * @param {() => void} listener
 */
export function onVisibilityChange(listener) { visibilityListener = listener; }

/**
 * Ages and running durations of every row, as of `now` (the ticker calls this every second).
 * @param {number} now
 */
export function paintRowTimes(now) {
  for (const [id, tr] of rowEls) {
    const v = state.commands.get(id);
    if (v) paintTimes(tr, v, now);
  }
}
