// The detail dialog of one command: its ids, progress, actions, timestamps, error, result and
// payload, kept in step with the view held while it is open.

import { $, h } from './dom.js';
import { fmtAge, fmtDate, fmtDuration, parseTime, pretty, runDuration } from './format.js';
import { api, commandPath, state } from './state.js';
import { ingest } from './store.js';
import { actionButton, operations, paintBadge, paintProgress, rowEls } from './table.js';

const dialog = $('#detail');
let detailReturnFocus = null;
let closedListener = () => {};

/**
 * Opens the detail dialog on command `id` and fetches a fresh copy of it.
 * @param {string} id
 */
export function openDetail(id) {
  if (!state.commands.has(id)) return;
  state.detailId = id;
  detailReturnFocus = rowEls.get(id) || document.activeElement;
  renderDetail();
  if (!dialog.open) dialog.showModal();
  $('#detail-close').focus();
  // Fetch a fresh copy: the row may be stale in polling mode, and a server may add fields.
  api('GET', commandPath(id)).then(({ data }) => {
    if (data && 'payload' in data) state.payloads.set(id, data.payload);
    if (!ingest(data) && state.detailId === id) renderDetail();
  }).catch(() => { /* the view we hold is still worth showing */ });
}

/** Closes the detail dialog, if open. */
export function closeDetail() {
  if (dialog.open) dialog.close();
}

function onDetailClosed() {
  const id = state.detailId;
  state.detailId = null;
  const back = (id && rowEls.get(id)) || detailReturnFocus;
  if (back?.isConnected) back.focus();
  closedListener();
}

function kv(label, value, attrs = {}) {
  return [h('dt', {}, label), h('dd', attrs, value ?? '—')];
}

function jsonBlock(title, value, note) {
  const body = value === undefined
    ? h('p', { class: 'hint' }, note)
    : h('pre', { class: 'json', tabindex: '0', 'aria-label': title }, pretty(value));
  return h('section', { class: 'detail-section' }, h('h3', {}, title), body);
}

/** Paints the dialog anew from the view held for the open command. */
export function renderDetail() {
  const v = state.commands.get(state.detailId);
  if (!v) return;
  $('#detail-title').textContent = v.type;
  paintBadge($('#detail-badge'), v.status);

  const bar = h('div', {
    class: 'progress large', role: 'progressbar', 'aria-label': 'Progress',
    'aria-valuemin': '0', 'aria-valuemax': '100',
  }, h('div', { class: 'progress-fill' }));
  const note = h('span', { class: 'progress-note' });
  paintProgress(bar, note, v);

  const actions = operations(v).map((action) => actionButton(action, v.id, { large: true }));

  const copyBtn = h('button', { type: 'button', class: 'link-btn', onclick: () => copyId(v.id, copyBtn) }, 'Copy');

  const payload = state.payloads.has(v.id) ? state.payloads.get(v.id)
    : ('payload' in v ? v.payload : undefined);

  const times = h('dl', { class: 'kv times' },
    kv('Created', fmtDate(v.created_at), { title: v.created_at }),
    kv('Queued', fmtDate(v.queued_at), { title: v.queued_at || '' }),
    kv('Started', fmtDate(v.started_at), { title: v.started_at || '' }),
    kv('Finished', fmtDate(v.finished_at), { title: v.finished_at || '' }),
    kv('Duration', '—', { 'data-duration': '' }),
    kv('Age', '—', { 'data-age': '' }));

  const body = $('#detail-body');
  const hadFocus = body.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  body.replaceChildren(...[
    h('p', { class: 'detail-id' }, h('code', {}, v.id), ' ', copyBtn),
    h('div', { class: 'detail-progress' }, bar, note),
    actions.length ? h('div', { class: 'detail-actions' }, actions) : null,
    h('dl', { class: 'kv' },
      kv('Priority', String(v.priority)),
      kv('Ordering key', v.ordering_key || '—'),
      kv('Attempt', `${v.attempt} of ${v.max_attempts}`),
      kv('Version', String(v.version))),
    h('section', { class: 'detail-section' }, h('h3', {}, 'Timestamps'), times),
    v.error ? jsonBlock(v.status === 'fail' ? 'Error' : 'Last error', v.error) : null,
    v.result !== null && v.result !== undefined ? jsonBlock('Result', v.result) : null,
    jsonBlock('Payload', payload, 'The server does not include the payload in the command view.'),
  ].filter(Boolean));
  paintDetailTimes(Date.now());
  // Re-rendering replaced the buttons; keep keyboard focus where it was.
  if (hadFocus) body.querySelector(`[data-action="${hadFocus}"]`)?.focus();
}

/**
 * Duration and age of the open command, as of `now` (the ticker calls this every second).
 * @param {number} now
 */
export function paintDetailTimes(now) {
  const v = state.commands.get(state.detailId);
  const body = $('#detail-body');
  if (!v) return;
  const d = runDuration(v, now);
  const dur = body.querySelector('[data-duration]');
  const age = body.querySelector('[data-age]');
  if (dur) dur.textContent = d === null ? '—' : fmtDuration(d);
  if (age) age.textContent = fmtAge(now - parseTime(v.created_at));
}

async function copyId(id, btn) {
  try {
    await navigator.clipboard.writeText(id);
    btn.textContent = 'Copied';
  } catch {
    // No clipboard outside secure contexts: select the text so Ctrl+C works.
    const code = btn.parentElement.querySelector('code');
    window.getSelection().selectAllChildren(code);
    btn.textContent = 'Selected';
  }
  setTimeout(() => { if (btn.isConnected) btn.textContent = 'Copy'; }, 1500);
}

/**
 * Hooks the dialog up: its action buttons run `act`; `onClosed()` runs once it is closed.
 * @param {{act: (action: string, id: string, btn: HTMLButtonElement) => void, onClosed: () => void}} handlers
 */
export function bindDetail({ act, onClosed }) {
  closedListener = onClosed;
  $('#detail-close').addEventListener('click', closeDetail);
  dialog.addEventListener('close', onDetailClosed);
  // A click on the backdrop (outside the panel) closes the dialog.
  dialog.addEventListener('click', (e) => { if (e.target === dialog) closeDetail(); });
  $('#detail-body').addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-action]');
    if (btn) act(btn.dataset.action, btn.dataset.id, btn);
  });
}
