// The commands table's rows, painted from the view held: status, progress, attempt, times, the
// selection box and the action buttons; and the table's clicks and keys (one tab stop for the
// whole table, arrow keys between rows). It draws only: rows.js decides which rows are shown.

import { $, h, shortId } from './dom.js';
import { fmtAge, fmtDate, fmtDuration, parseTime, progressPercent, runDuration } from './format.js';
import { CANCELLABLE, client, state } from './state.js';

/** id -> its <tr>, for every row shown. */
export const rowEls = new Map();
/** The list's loading state, shown in place of an empty table. list.js sets it. */
export const listStatus = { loading: false, error: '' };

const tbody = $('#rows');

const ROW_TEMPLATE = `
  <td class="c-select"><input type="checkbox" data-testid="select" tabindex="-1"></td>
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

/**
 * A new row for `v` (not yet in the table).
 * @param {object} v a command view
 * @returns {HTMLTableRowElement}
 */
export function createRow(v) {
  const tr = document.createElement('tr');
  tr.tabIndex = -1; // the table is one tab stop: arrow keys move between rows
  tr.dataset.testid = 'row';
  tr.dataset.id = v.id;
  tr.innerHTML = ROW_TEMPLATE; // static markup only; values go in via textContent below
  const box = /** @type {HTMLInputElement} */ (tr.querySelector('.c-select input'));
  box.setAttribute('aria-label', `Select command ${shortId(v.id)}`);
  box.checked = state.selected.has(v.id);
  if (box.checked) tr.classList.add('selected');
  updateRow(tr, v, false);
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
 * Repaints a row for `v`; with `flash`, highlights it when its status moved on.
 * @param {HTMLTableRowElement} tr
 * @param {object} v the view now held
 * @param {boolean} flash
 */
export function updateRow(tr, v, flash) {
  const moved = tr.dataset.status !== undefined && tr.dataset.status !== v.status;
  tr.dataset.status = v.status;
  const code = tr.querySelector('.c-id code');
  code.textContent = shortId(v.id);
  code.title = v.id;
  tr.querySelector('.c-type').textContent = v.type;
  paintBadge(tr.querySelector('.badge'), v.status);
  paintProgress(tr.querySelector('.progress'), tr.querySelector('.progress-note'), v);
  const waiting = v.status === 'queue' && v.next_attempt_at;
  tr.querySelector('.c-attempt').textContent = `${v.attempt}/${v.max_attempts}${waiting ? ' ⟳' : ''}`;
  tr.querySelector('.c-attempt').title = waiting ? `next attempt ${fmtDate(v.next_attempt_at)}` : '';
  const time = tr.querySelector('.c-age time');
  time.dateTime = v.created_at;
  time.title = fmtDate(v.created_at);
  paintTimes(tr, v);
  paintActions(tr.querySelector('.c-actions'), v);
  const pct = v.status === 'running' && typeof v.progress === 'number' ? `, ${progressPercent(v)}%` : '';
  tr.setAttribute('aria-label', `${v.type} ${shortId(v.id)}, ${v.status}${pct}`);
  // A highlight that is already playing is left to finish: restarting it needs a forced
  // layout, and one per change froze the page under a burst.
  if (flash && moved) tr.classList.add('flash');
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
 * What the signed-in key may do to `v` now (the operate scope): retry a failed or cancelled
 * command, cancel an unfinished one.
 * @param {object} v a command view
 * @returns {Array<'retry'|'cancel'>}
 */
export function operations(v) {
  if (!client.can('operate')) return [];
  if (v.status === 'fail' || v.status === 'cancelled') return ['retry'];
  return CANCELLABLE.has(v.status) ? ['cancel'] : [];
}

/**
 * A Retry or Cancel button for command `id` (small in a row, large on the command page). A
 * row's buttons are not tab stops: the keyboard reaches them on the command page, or through
 * the selection.
 * @param {'retry'|'cancel'|'discard'} action
 * @param {string} id
 * @param {{large?: boolean}} [options]
 * @returns {HTMLButtonElement}
 */
export function actionButton(action, id, { large = false } = {}) {
  const label = { retry: 'Retry', cancel: 'Cancel', discard: 'Discard' }[action];
  return h('button', {
    type: 'button',
    class: `btn ${large ? '' : 'small'} ${action === 'retry' ? '' : 'ghost-danger'}`.trim(),
    'data-action': action,
    'data-testid': action,
    'data-id': id,
    tabindex: large ? null : '-1',
    'aria-label': large ? null : `${label} command ${shortId(id)}`,
  }, label);
}

/** Moves the table's one tab stop to `tr` and focuses it. */
function focusRow(tr) {
  if (!tr) return;
  for (const other of tbody.querySelectorAll('tr[tabindex="0"]')) other.tabIndex = -1;
  tr.tabIndex = 0;
  tr.focus();
  tr.scrollIntoView({ block: 'nearest' });
}

/**
 * Clicks and keys on the table: an action button runs `act`, a row (Enter, a click) opens
 * with `open`, its box (Space, x, a click) selects it with `select`; arrow keys, Home and End
 * move between rows.
 * @param {{open: (id: string) => void, act: (action: string, id: string, btn: HTMLButtonElement) => void,
 *   select: (id: string, on: boolean, range: boolean) => void}} handlers
 */
export function bindTable({ open, act, select }) {
  tbody.addEventListener('click', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const btn = target.closest('button[data-action]');
    if (btn) { act(btn.dataset.action, btn.dataset.id, btn); return; }
    const tr = target.closest('tr[data-id]');
    if (!tr) return;
    if (target.closest('.c-select')) {
      const box = tr.querySelector('.c-select input');
      if (target !== box) box.checked = !box.checked;
      select(tr.dataset.id, box.checked, event.shiftKey);
      focusRow(tr);
      return;
    }
    // Let people select text (e.g. to copy an id) without opening the command.
    if (!window.getSelection()?.toString()) open(tr.dataset.id);
  });
  tbody.addEventListener('keydown', (event) => onTableKeydown(event, open, select));
  tbody.addEventListener('animationend', (event) => {
    /** @type {HTMLElement} */ (event.target).classList.remove('flash');
  });
}

function onTableKeydown(event, openCommand, select) {
  const tr = event.target;
  if (!(tr instanceof HTMLTableRowElement) || !tr.dataset.id) return;
  switch (event.key) {
    case 'Enter': event.preventDefault(); openCommand(tr.dataset.id); break;
    case ' ':
    case 'x': {
      if (!client.can('operate')) return;
      event.preventDefault();
      const box = tr.querySelector('.c-select input');
      box.checked = !box.checked;
      select(tr.dataset.id, box.checked, event.shiftKey);
      break;
    }
    case 'ArrowDown': event.preventDefault(); focusRow(tr.nextElementSibling); break;
    case 'ArrowUp': event.preventDefault(); focusRow(tr.previousElementSibling); break;
    case 'Home': event.preventDefault(); focusRow(tbody.firstElementChild); break;
    case 'End': event.preventDefault(); focusRow(tbody.lastElementChild); break;
    default:
  }
}

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
