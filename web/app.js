// cmdbus web UI: submit commands, watch them live, operate on failures.
// Plain ES2020 modules, no framework and no build step; the Rust binary embeds them.
// client.js talks to the server (credential, HTTP, WebSocket); session.js signs in and out;
// this module is the console's views. Each control shows only with the scope it needs.
//
// Data flow: every command view we learn about (POST answer, list page, WebSocket event,
// long-poll answer) goes through ingest(), which keeps it only if its version is higher than
// the one we hold (versions order every change) and then adds, updates or removes its table row.

import { Client, isAbort } from './client.js';
import { startSession } from './session.js';

const STATUSES = ['new', 'queue', 'running', 'success', 'fail', 'cancelled'];
const TERMINAL = new Set(['success', 'fail', 'cancelled']);
const CANCELLABLE = new Set(['new', 'queue', 'running']);

const PAGE_SIZE = 50;
const POLL_LIST_MS = 2000;            // polling mode: list refresh period
const LONG_POLL_WAIT_S = 25;          // polling mode: GET /v1/commands/{id}?wait=
// Browsers allow ~6 HTTP/1.1 connections per host; leave room for list refreshes and submits.
const MAX_LONG_POLLS = 4;
const MAX_STORED = 5000;              // prune views that are not on screen past this many

const params = new URLSearchParams(location.search);

/** Everything the UI knows. Exposed as window.cmdbus.state for debugging and tests. */
const state = {
  conn: 'reconnecting',                   // 'live' | 'reconnecting' | 'polling'
  forcedPolling: params.get('transport') === 'polling',
  types: [],                              // items of GET /v1/types
  commands: new Map(),                    // id -> newest view we hold
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

/** Transport internals (not part of the public state). */
const transport = {
  live: null,           // the LiveStream of the signed-in session
  pollTimer: 0,
  refreshing: false,
  longPolls: new Map(), // id -> AbortController
  onScreen: new Set(),  // ids whose rows intersect the viewport
};

const client = new Client();

window.cmdbus = {
  get ws() { return transport.live?.socket ?? null; },
  client,
  state,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (sel) => document.querySelector(sel);

/** Create an element: h('button', {class: 'btn', type: 'button'}, 'Text', childNode). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** UUID v7 starts with a millisecond timestamp, so commands made together share a prefix:
 *  the tail (random bits) tells them apart. */
const shortId = (id) => String(id).replace(/-/g, '').slice(-8);

const isTerminal = (v) => TERMINAL.has(v.status);

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------------------------------------
// Formatting

const parseTime = (s) => (s ? Date.parse(s) : NaN);

function fmtAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

function fmtDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});
const fmtDate = (s) => (s && !Number.isNaN(parseTime(s)) ? dateFmt.format(parseTime(s)) : '—');

/** How long the current/last attempt ran; null when it has not started. */
function runDuration(v, now = Date.now()) {
  const start = parseTime(v.started_at);
  if (Number.isNaN(start)) return null;
  const end = v.finished_at ? parseTime(v.finished_at) : (v.status === 'running' ? now : NaN);
  return Number.isNaN(end) ? null : end - start;
}

/** 0–100 for the progress bar. A finished success is complete even if the handler never said so. */
function progressPercent(v) {
  if (v.status === 'success') return 100;
  if (typeof v.progress !== 'number' || Number.isNaN(v.progress)) return 0;
  return Math.round(Math.min(1, Math.max(0, v.progress)) * 100);
}

const pretty = (value) => JSON.stringify(value, null, 2);

// ---------------------------------------------------------------------------------------------
// HTTP

/** Every call goes through the session's client: it sends the key and signs out on a 401. */
const api = (method, path, options) => client.request(method, path, options);

/** The request failed because the session ended (signed out, or a 401 that signed out): the
 *  sign-in form says why, and nothing of the old session is shown any more. */
const sessionEnded = (err) => isAbort(err) || !client.signedIn;

const commandPath = (id, suffix = '') => `/v1/commands/${encodeURIComponent(id)}${suffix}`;

// ---------------------------------------------------------------------------------------------
// Store: the only way views enter the UI

const matchesFilter = (v) =>
  (!state.filter.status || v.status === state.filter.status) &&
  (!state.filter.type || v.type === state.filter.type);

/** Newest first: creation time, then id (UUID v7 sorts by time too). */
function compareNewestFirst(a, b) {
  const ta = parseTime(a.created_at);
  const tb = parseTime(b.created_at);
  if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** A live command belongs in the table only if it is not older than the pages we loaded;
 *  older ones will come with "Load more", in order. */
function withinLoadedWindow(v) {
  if (state.cursor === null || state.rows.length === 0) return true;
  const oldest = state.commands.get(state.rows[state.rows.length - 1]);
  return !oldest || compareNewestFirst(v, oldest) <= 0;
}

/**
 * Take a view from any source. Keeps it only if newer than what we hold, then syncs the table.
 * `listed`: it came from a list page for the current filter, so it belongs in the table
 * even if older than the rows we have.
 */
function ingest(view, { listed = false } = {}) {
  if (!view || typeof view.id !== 'string' || typeof view.version !== 'number') return false;
  const held = state.commands.get(view.id);
  const changed = !held || view.version > held.version;
  if (changed) state.commands.set(view.id, view);
  const current = changed ? view : held;

  if (matchesFilter(current)) {
    if (rowEls.has(current.id)) {
      if (changed) updateRow(rowEls.get(current.id), current, held);
    } else if (listed || withinLoadedWindow(current)) {
      const tr = insertRow(current);
      if (!listed) flash(tr); // arrived live: draw the eye to it
    }
  } else if (rowEls.has(current.id)) {
    removeRow(current.id);
  }

  if (changed && state.detailId === current.id) renderDetail();
  if (changed && current.status === 'fail') rememberErrorCode(current);
  if (changed) scheduleLongPollSync();
  if (state.commands.size > MAX_STORED) pruneStore();
  return changed;
}

/** Forget views that are not on screen so a long-open page does not grow without bound. */
function pruneStore() {
  const keep = new Set(state.rows);
  if (state.detailId) keep.add(state.detailId);
  for (const id of state.commands.keys()) {
    if (!keep.has(id)) { state.commands.delete(id); state.payloads.delete(id); }
    if (state.commands.size <= MAX_STORED * 0.8) break;
  }
}

// ---------------------------------------------------------------------------------------------
// Table

const rowEls = new Map(); // id -> <tr>
const tbody = $('#rows');

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

/** Progress bar + note; shared by table rows and the detail view. */
function paintProgress(bar, noteEl, v) {
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

function paintBadge(badge, status) {
  badge.className = `badge s-${status}`;
  badge.textContent = status; // exact status string: tests and screen readers rely on it
}

function updateRow(tr, v, previous) {
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

/** What the signed-in key may do to `v` now: retry and cancel need the operate scope. */
function operations(v) {
  if (!client.can('operate')) return [];
  if (v.status === 'fail') return ['retry'];
  return CANCELLABLE.has(v.status) ? ['cancel'] : [];
}

function actionButton(action, id, { large = false } = {}) {
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

/** Brief highlight so a status change is noticed without reading every row. */
function flash(tr) {
  tr.classList.remove('flash');
  void tr.offsetWidth; // restart the CSS animation
  tr.classList.add('flash');
}

function insertRow(v) {
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

function removeRow(id) {
  const tr = rowEls.get(id);
  if (!tr) return;
  // Do not drop keyboard users into <body> when their row leaves the filter.
  if (tr.contains(document.activeElement)) {
    const next = tr.nextElementSibling || tr.previousElementSibling;
    (next || $('#list-h').closest('section')).focus();
  }
  visibility?.unobserve(tr);
  transport.onScreen.delete(id);
  tr.remove();
  rowEls.delete(id);
  state.rows.splice(state.rows.indexOf(id), 1);
  updateListChrome();
}

function clearRows() {
  for (const tr of rowEls.values()) visibility?.unobserve(tr);
  tbody.replaceChildren();
  rowEls.clear();
  transport.onScreen.clear();
  state.rows = [];
}

let listLoading = false;
let listError = '';

/** Empty state, row count and the "Load more" button. */
function updateListChrome() {
  const empty = $('#empty');
  const filtered = state.filter.status || state.filter.type;
  if (state.rows.length) {
    empty.hidden = true;
  } else {
    empty.hidden = false;
    empty.classList.toggle('error', Boolean(listError));
    empty.textContent = listError
      || (listLoading ? 'Loading commands…'
        : filtered ? 'No commands match these filters.' : 'No commands yet. Submit one to see it here.');
  }
  $('#count').textContent = state.rows.length
    ? `${state.rows.length} shown${state.cursor ? ', more available' : ''}` : '';
  const more = $('#load-more');
  more.hidden = !state.cursor;
  more.disabled = listLoading;
  more.textContent = listLoading && state.pagesLoaded > 0 ? 'Loading…' : 'Load more';
}

function focusRow(tr) {
  if (!tr) return;
  tr.focus();
  tr.scrollIntoView({ block: 'nearest' });
}

function onTableClick(event) {
  const btn = event.target.closest('button[data-action]');
  if (btn) { runAction(btn.dataset.action, btn.dataset.id, btn); return; }
  const tr = event.target.closest('tr[data-id]');
  // Let people select text (e.g. to copy an id) without opening the dialog.
  if (tr && !window.getSelection()?.toString()) openDetail(tr.dataset.id);
}

function onTableKeydown(event) {
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
      if (e.isIntersecting) transport.onScreen.add(id); else transport.onScreen.delete(id);
    }
    scheduleLongPollSync();
  })
  : null;

/** Ages and running durations tick once a second. */
function tick() {
  const now = Date.now();
  for (const [id, tr] of rowEls) {
    const v = state.commands.get(id);
    if (v) paintTimes(tr, v, now);
  }
  if (state.detailId) paintDetailTimes(now);
}

// ---------------------------------------------------------------------------------------------
// Loading the list

function listQuery(cursor) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter.status) q.set('status', state.filter.status);
  if (state.filter.type) q.set('type', state.filter.type);
  if (cursor) q.set('cursor', cursor);
  return `/v1/commands?${q}`;
}

/**
 * mode 'reset': filters changed, start over. 'more': next page. 'refresh': merge page one again
 * (after a fresh subscription, and every POLL_LIST_MS in polling mode).
 */
async function loadList(mode) {
  if (mode === 'reset') {
    state.listEpoch++;
    state.cursor = null;
    state.pagesLoaded = 0;
    clearRows();
  }
  const epoch = state.listEpoch;
  const cursor = mode === 'more' ? state.cursor : null;
  if (mode === 'more' && !cursor) return;
  listLoading = true;
  updateListChrome();
  try {
    const { data } = await api('GET', listQuery(cursor));
    if (epoch !== state.listEpoch) return; // the filters changed while we waited
    listError = '';
    const items = Array.isArray(data?.items) ? data.items : [];
    if (mode === 'refresh' && state.pagesLoaded > 0) dropRowsMissingFrom(items, data.next_cursor);
    for (const v of items) ingest(v, { listed: true });
    // A refresh re-reads page one only; keep the cursor of the deepest page already loaded.
    if (mode !== 'refresh' || state.pagesLoaded === 0) {
      state.cursor = data?.next_cursor ?? null;
      state.pagesLoaded++;
    }
  } catch (err) {
    if (epoch !== state.listEpoch) return;
    // Keep showing what we have; only an empty table needs the error in its place.
    listError = `Could not load commands: ${err.message}`;
    if (mode !== 'refresh') notify(listError, 'error');
  } finally {
    if (epoch === state.listEpoch) listLoading = false;
    updateListChrome();
  }
}

/**
 * In polling mode nobody tells us when a row stops matching the server-side filter
 * (e.g. "running" -> "success" under status=running). Rows inside the range page one covers
 * that page one no longer contains have left the filter.
 */
function dropRowsMissingFrom(items, nextCursor) {
  if (state.conn !== 'polling') return;
  const present = new Set(items.map((v) => v.id));
  const oldest = items[items.length - 1];
  for (const id of [...state.rows]) {
    const v = state.commands.get(id);
    if (present.has(id) || !v) continue;
    const covered = !nextCursor || (oldest && compareNewestFirst(v, oldest) <= 0);
    if (covered) removeRow(id);
  }
}

function setFilter(patch) {
  Object.assign(state.filter, patch);
  $('#filter-status').value = state.filter.status;
  $('#filter-type').value = state.filter.type;
  const failed = state.filter.status === 'fail';
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    const pressed = b.dataset.view === 'failed' ? failed : !state.filter.status;
    b.setAttribute('aria-pressed', String(pressed));
  }
  $('#bulk').hidden = !failed || !client.can('operate');
  if (failed) $('#bulk-type').value = state.filter.type;
  resetBulk();
  syncUrl();
  loadList('reset');
}

/** Keep filters in the address bar so a reload or a shared link shows the same view. */
function syncUrl() {
  const q = new URLSearchParams(location.search);
  for (const k of ['status', 'type']) {
    if (state.filter[k]) q.set(k, state.filter[k]); else q.delete(k);
  }
  const qs = q.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}${location.hash}`);
}

// ---------------------------------------------------------------------------------------------
// Notices (per-row action results, list errors)

let noticeTimer = 0;

function notify(message, kind = 'info') {
  const el = $('#notice'); // live region: always rendered, only its content changes
  clearTimeout(noticeTimer);
  if (!message) { el.replaceChildren(); return; }
  el.replaceChildren(h('div', { class: `notice-box ${kind}` },
    h('span', {}, message),
    h('button', { type: 'button', class: 'link-btn', onclick: () => notify('') }, 'Dismiss')));
  noticeTimer = setTimeout(() => notify(''), kind === 'error' ? 15000 : 6000);
}

// ---------------------------------------------------------------------------------------------
// Retry / cancel

const ACTION_LABEL = { retry: 'Retry', cancel: 'Cancel' };

async function runAction(action, id, btn) {
  if (btn) btn.disabled = true;
  try {
    const { data } = await api('POST', commandPath(id, `/${action}`));
    ingest(data);
    notify(action === 'retry'
      ? `Retry requested for ${shortId(id)}.`
      : `Cancel requested for ${shortId(id)}.`);
  } catch (err) {
    if (sessionEnded(err)) return;
    // A missing feature is information, not a failure.
    notify(actionErrorMessage(ACTION_LABEL[action], err), err.notAvailable ? 'info' : 'error');
  } finally {
    if (btn?.isConnected) btn.disabled = false;
  }
}

function actionErrorMessage(label, err) {
  if (err.notAvailable) return `${label} is not available on this server.`;
  return `${label} failed: ${err.message}`;
}

// ---------------------------------------------------------------------------------------------
// Detail dialog

const dialog = $('#detail');
let detailReturnFocus = null;

function openDetail(id) {
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

function closeDetail() {
  if (dialog.open) dialog.close();
}

function onDetailClosed() {
  const id = state.detailId;
  state.detailId = null;
  const back = (id && rowEls.get(id)) || detailReturnFocus;
  if (back?.isConnected) back.focus();
  scheduleLongPollSync();
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

function renderDetail() {
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

function paintDetailTimes(now) {
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

// ---------------------------------------------------------------------------------------------
// Submit form

const form = $('#submit-form');
const typeSelect = $('#type-select');
const payloadEl = $('#payload');
const drafts = new Map(); // type -> payload text the user typed, restored when they switch back
let currentType = '';

function setFieldError(input, errorEl, message) {
  errorEl.textContent = message || '';
  errorEl.hidden = !message;
  if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
}

/** The live region itself stays rendered (regions that appear from display:none are often not
 *  announced); the styled box inside it comes and goes. */
function setFormResult(content, kind) {
  const el = $('#form-result');
  if (!content) { el.replaceChildren(); return; }
  const parts = (Array.isArray(content) ? content : [content]).filter(Boolean);
  el.replaceChildren(h('div', { class: `result-box ${kind || ''}`.trim() }, parts));
}

/** Line/column for a JSON.parse position, because engines phrase errors differently. */
function lineCol(text, pos) {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return { line, col: pos - before.lastIndexOf('\n') };
}

/** null when the payload is valid JSON, else a human message. */
function payloadProblem(text) {
  if (!text.trim()) return 'Enter a JSON value, for example {} or null.';
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    let msg = String(err.message).replace(/^JSON\.parse:\s*/, '');
    const m = /position (\d+)/.exec(msg);
    if (m && !/line \d+/.test(msg)) {
      const { line, col } = lineCol(text, Number(m[1]));
      msg += ` (line ${line}, column ${col})`;
    }
    return `Invalid JSON: ${msg}`;
  }
}

function validatePayload() {
  const problem = payloadProblem(payloadEl.value);
  setFieldError(payloadEl, $('#payload-error'), problem);
  return !problem;
}

function exampleText(type) {
  const t = state.types.find((x) => x.name === type);
  return t && t.example !== null && t.example !== undefined ? pretty(t.example) : '{}';
}

function onTypeChange() {
  if (currentType) drafts.set(currentType, payloadEl.value);
  currentType = typeSelect.value;
  const t = state.types.find((x) => x.name === currentType);
  $('#type-desc').textContent = t?.description || '';
  $('#max-attempts').placeholder = t ? `default ${t.max_attempts}` : 'type default';
  payloadEl.value = drafts.get(currentType) ?? exampleText(currentType);
  setFieldError(typeSelect, $('#type-error'), '');
  validatePayload();
}

function readInt(input, errorEl, { min, max, optional, name }) {
  const raw = input.value.trim();
  if (!raw && optional) { setFieldError(input, errorEl, ''); return { ok: true, value: null }; }
  const n = Number(raw);
  const bad = !raw || !Number.isInteger(n) || n < min || (max !== undefined && n > max);
  const range = max !== undefined ? `${min} to ${max}` : `${min} or more`;
  setFieldError(input, errorEl, bad ? `${name} must be a whole number from ${range}.` : '');
  return { ok: !bad, value: n };
}

let submitting = false;

async function onSubmit(event) {
  event.preventDefault();
  if (submitting) return;
  const type = typeSelect.value;
  setFieldError(typeSelect, $('#type-error'), type ? '' : 'Choose a command type.');
  const payloadOk = validatePayload();
  const priority = readInt($('#priority'), $('#priority-error'), { min: 0, max: 9, name: 'Priority' });
  const maxAttempts = readInt($('#max-attempts'), $('#max-attempts-error'),
    { min: 1, optional: true, name: 'Max attempts' });
  if (!type || !payloadOk || !priority.ok || !maxAttempts.ok) {
    form.querySelector('[aria-invalid="true"]')?.focus();
    setFormResult('Fix the highlighted fields and submit again.', 'error');
    return;
  }

  const payloadText = payloadEl.value.trim();
  const orderingKey = $('#ordering-key').value.trim() || null;
  const idemKey = $('#idem-key').value.trim();
  // Splice the user's JSON in verbatim: re-serialising would round big integers.
  const rest = JSON.stringify({ priority: priority.value, ordering_key: orderingKey, max_attempts: maxAttempts.value });
  const rawBody = `{"type":${JSON.stringify(type)},"payload":${payloadText},${rest.slice(1)}`;

  submitting = true;
  const btn = $('#submit');
  btn.disabled = true;
  btn.textContent = 'Submitting…';
  try {
    const { status, data } = await api('POST', '/v1/commands', {
      rawBody,
      headers: idemKey ? { 'Idempotency-Key': idemKey } : {},
    });
    if (!data || typeof data.id !== 'string') {
      setFormResult(`Accepted (${status}), but the answer carried no command.`, 'error');
      return;
    }
    if (!state.payloads.has(data.id)) state.payloads.set(data.id, JSON.parse(payloadText));
    showSubmitted(data, status);
  } catch (err) {
    if (!sessionEnded(err)) showSubmitError(err);
  } finally {
    submitting = false;
    btn.disabled = false;
    btn.textContent = 'Submit command';
  }
}

function showSubmitted(view, status) {
  if (!client.can('read')) {
    // Nothing to watch it with: give the whole id, for whoever can read it.
    setFormResult(h('span', {}, 'Submitted ', h('code', {}, view.id),
      '. This key cannot read commands, so its progress is not shown here.'), 'ok');
    return;
  }
  ingest(view, { listed: true });
  const shown = rowEls.get(view.id);
  if (shown) flash(shown);
  const open = h('button', { type: 'button', class: 'link-btn', onclick: () => openDetail(view.id) }, 'View details');
  const what = status === 200
    ? 'Already submitted with this idempotency key; showing the existing command'
    : 'Submitted';
  const hidden = shown ? '' : ' (hidden by the current filters)';
  setFormResult([h('span', {}, `${what} `, h('code', {}, shortId(view.id)), `${hidden}. `), open], 'ok');
}

function showSubmitError(err) {
  const code = err.code;
  if (code === 'unknown_type') setFieldError(typeSelect, $('#type-error'), err.message);
  if (code === 'malformed_json' || code === 'payload_too_large') {
    setFieldError(payloadEl, $('#payload-error'), err.message);
  }
  const prefix = err.status ? `Not accepted (${err.status}${code ? ` ${code}` : ''}): ` : '';
  setFormResult(`${prefix}${err.message}`, 'error');
}

function formatPayload() {
  if (!validatePayload()) { payloadEl.focus(); return; }
  payloadEl.value = pretty(JSON.parse(payloadEl.value));
}

/** Validate while typing, but only after a short pause so errors do not flicker. An error
 *  already shown is re-checked at once: it must go the moment the JSON is fixed, or it is
 *  stale, and its removal on blur moves the Submit button away from a pointer mid-click. */
let payloadTimer = 0;
function onPayloadInput() {
  clearTimeout(payloadTimer);
  if (!$('#payload-error').hidden) validatePayload();
  else payloadTimer = setTimeout(validatePayload, 300);
}

// ---------------------------------------------------------------------------------------------
// Types

let typesRetryTimer = 0;

async function loadTypes() {
  try {
    const { data } = await api('GET', '/v1/types');
    state.types = Array.isArray(data?.items) ? data.items : [];
  } catch (err) {
    if (sessionEnded(err)) return;
    typeSelect.replaceChildren(h('option', { value: '' }, 'Types unavailable'));
    setFieldError(typeSelect, $('#type-error'), `Could not load command types: ${err.message}`);
    typesRetryTimer = setTimeout(loadTypes, 5000);
    return;
  }
  const names = state.types.map((t) => t.name);
  typeSelect.replaceChildren(...(names.length
    ? names.map((n) => h('option', { value: n }, n))
    : [h('option', { value: '' }, 'No types registered')]));
  fillTypeOptions($('#filter-type'), names, state.filter.type);
  fillTypeOptions($('#bulk-type'), names, state.filter.type);
  currentType = '';
  onTypeChange();
}

/** "Any type" plus the registered types; keeps a URL-given type even if it is unknown. */
function fillTypeOptions(select, names, selected) {
  const all = selected && !names.includes(selected) ? [...names, selected] : names;
  select.replaceChildren(h('option', { value: '' }, 'Any type'), ...all.map((n) => h('option', { value: n }, n)));
  select.value = selected || '';
}

// ---------------------------------------------------------------------------------------------
// Bulk retry (Failed view)

let bulkPreview = null; // the request body that the shown dry run answered

function bulkBody(dryRun) {
  return {
    type: $('#bulk-type').value || null,
    error_code: $('#bulk-code').value.trim() || null,
    dry_run: dryRun,
  };
}

function resetBulk(message = '') {
  bulkPreview = null;
  $('#bulk-result').textContent = message;
  $('#bulk-confirm-row').hidden = true;
}

async function onBulkPreview(event) {
  event.preventDefault();
  const body = bulkBody(true);
  resetBulk('Counting matching commands…');
  try {
    const { data } = await api('POST', '/v1/commands/retry', { body });
    const n = Number(data?.matched) || 0;
    if (n === 0) { resetBulk('No failed commands match.'); return; }
    bulkPreview = body;
    $('#bulk-result').textContent = `${n} ${n === 1 ? 'command' : 'commands'} would be retried.`;
    $('#bulk-confirm').textContent = `Retry ${n} ${n === 1 ? 'command' : 'commands'}`;
    $('#bulk-confirm-row').hidden = false;
    $('#bulk-confirm').focus();
  } catch (err) {
    if (sessionEnded(err)) return;
    resetBulk(err.notAvailable ? 'Bulk retry is not available on this server.' : `Preview failed: ${err.message}`);
  }
}

async function onBulkConfirm() {
  if (!bulkPreview) return;
  const body = { ...bulkPreview, dry_run: false };
  const btn = $('#bulk-confirm');
  btn.disabled = true;
  try {
    const { data } = await api('POST', '/v1/commands/retry', { body });
    const n = Number(data?.retried) || 0;
    resetBulk(`Retried ${n} ${n === 1 ? 'command' : 'commands'}.`);
    $('#bulk-preview').focus();
    loadList('refresh');
  } catch (err) {
    if (sessionEnded(err)) return;
    resetBulk(err.notAvailable ? 'Bulk retry is not available on this server.' : `Bulk retry failed: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
}

/** Offer error codes seen on failed commands as suggestions for the bulk form. */
const knownErrorCodes = new Set();
function rememberErrorCode(v) {
  const code = v.error?.code;
  if (!code || knownErrorCodes.has(code)) return;
  knownErrorCodes.add(code);
  $('#error-codes').append(h('option', { value: code }));
}

// ---------------------------------------------------------------------------------------------
// Connection indicator

const CONN_TITLES = {
  live: 'Live: updates arrive over a WebSocket.',
  reconnecting: 'The live connection dropped; reconnecting…',
  polling: 'Live updates unavailable; refreshing every 2 seconds.',
};

function setConn(next) {
  state.conn = next;
  const box = $('#conn');
  box.dataset.state = next;
  box.title = next === 'polling' && state.forcedPolling
    ? 'Polling, as requested by ?transport=polling.' : CONN_TITLES[next];
  const text = $('#conn-state');
  if (text.textContent !== next) text.textContent = next; // exact text: live | reconnecting | polling
}

// ---------------------------------------------------------------------------------------------
// Live stream (client.js): the WebSocket when it works, polling when it does not

function startLive() {
  if (state.forcedPolling || !('WebSocket' in window)) { enterPolling(); return; }
  transport.live = client.live({
    onCommand: (view) => ingest(view),
    // A fresh stream started: close the gap between the list we hold and that moment.
    onSubscribed: (fresh) => { if (fresh) loadList('refresh'); },
    onReset: () => loadList('refresh'),
    onStatus: onLiveStatus,
  });
  transport.live.start();
}

function onLiveStatus(status, reason) {
  switch (status) {
    case 'live':
      stopPolling();
      setConn('live');
      break;
    case 'reconnecting':
      // Once polling, stay polling until the socket is back: the table must keep moving.
      if (state.conn !== 'polling') setConn('reconnecting');
      break;
    case 'unavailable':
      enterPolling(); // the stream keeps retrying in the background
      break;
    case 'forbidden': // the console only streams with `read`; a server that disagrees says why
      notify(`Live updates refused: ${reason}`, 'error');
      break;
    default:
  }
}

/** The network came back: do not wait out the backoff. */
function onOnline() {
  transport.live?.reconnectNow();
}

// ---------------------------------------------------------------------------------------------
// Polling transport

function enterPolling() {
  if (state.conn === 'polling' && transport.pollTimer) return;
  setConn('polling');
  clearTimeout(transport.pollTimer);
  pollListLoop();
  scheduleLongPollSync();
}

function stopPolling() {
  clearTimeout(transport.pollTimer);
  transport.pollTimer = 0;
  for (const ctrl of transport.longPolls.values()) ctrl.abort();
  transport.longPolls.clear();
}

async function pollListLoop() {
  transport.pollTimer = setTimeout(pollListLoop, POLL_LIST_MS); // mark running before awaiting
  if (transport.refreshing) return; // a slow server: do not stack requests
  transport.refreshing = true;
  try { await loadList('refresh'); } finally { transport.refreshing = false; }
}

let longPollSyncTimer = 0;
function scheduleLongPollSync() {
  if (state.conn !== 'polling' || longPollSyncTimer) return;
  longPollSyncTimer = setTimeout(() => { longPollSyncTimer = 0; syncLongPolls(); }, 150);
}

/** Which commands deserve one of the few long-poll slots: the open one, then on-screen rows. */
function longPollCandidates() {
  const ids = [];
  const want = (id) => {
    const v = state.commands.get(id);
    if (v && !isTerminal(v) && !ids.includes(id)) ids.push(id);
  };
  if (state.detailId) want(state.detailId);
  for (const id of state.rows) { // newest first
    if (ids.length >= MAX_LONG_POLLS) break;
    if (transport.onScreen.has(id) || !visibility) want(id);
  }
  return ids.slice(0, MAX_LONG_POLLS);
}

function syncLongPolls() {
  if (state.conn !== 'polling') return;
  const wanted = new Set(longPollCandidates());
  for (const [id, ctrl] of transport.longPolls) {
    if (!wanted.has(id)) { ctrl.abort(); transport.longPolls.delete(id); }
  }
  for (const id of wanted) {
    if (!transport.longPolls.has(id)) {
      const ctrl = new AbortController();
      transport.longPolls.set(id, ctrl);
      longPoll(id, ctrl);
    }
  }
}

/** GET ?wait= with If-None-Match until the command finishes or the slot is taken away. */
async function longPoll(id, ctrl) {
  const { signal } = ctrl;
  while (!signal.aborted) {
    const held = state.commands.get(id);
    if (!held || isTerminal(held)) break;
    const started = Date.now();
    try {
      const r = await api('GET', commandPath(id, `?wait=${LONG_POLL_WAIT_S}`), {
        headers: { 'If-None-Match': `"${held.version}"` },
        signal,
      });
      const changed = r.status === 200 && ingest(r.data);
      // A server that ignores ?wait (or the ETag) would make this spin; pace it.
      if (!changed && Date.now() - started < 1000) await sleep(1000, signal);
    } catch (err) {
      if (signal.aborted) break;
      if (err.status === 404 || err.status === 400) break; // gone, or not a command id
      await sleep(2000, signal);
    }
  }
  if (transport.longPolls.get(id) === ctrl) {
    transport.longPolls.delete(id);
    scheduleLongPollSync(); // hand the free slot to another command
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function bindEvents() {
  form.addEventListener('submit', onSubmit);
  typeSelect.addEventListener('change', onTypeChange);
  payloadEl.addEventListener('input', onPayloadInput);
  payloadEl.addEventListener('blur', validatePayload);
  $('#format-payload').addEventListener('click', formatPayload);
  $('#idem-gen').addEventListener('click', () => { $('#idem-key').value = randomKey(); });

  $('#filter-status').addEventListener('change', (e) => setFilter({ status: e.target.value }));
  $('#filter-type').addEventListener('change', (e) => setFilter({ type: e.target.value }));
  $('#refresh').addEventListener('click', () => loadList('reset'));
  $('#load-more').addEventListener('click', () => loadList('more'));
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    b.addEventListener('click', () => setFilter({ status: b.dataset.view === 'failed' ? 'fail' : '' }));
  }

  tbody.addEventListener('click', onTableClick);
  tbody.addEventListener('keydown', onTableKeydown);

  $('#bulk-form').addEventListener('submit', onBulkPreview);
  $('#bulk-type').addEventListener('change', () => resetBulk());
  $('#bulk-code').addEventListener('input', () => resetBulk());
  $('#bulk-confirm').addEventListener('click', onBulkConfirm);
  $('#bulk-abort').addEventListener('click', () => { resetBulk(); $('#bulk-preview').focus(); });

  $('#detail-close').addEventListener('click', closeDetail);
  dialog.addEventListener('close', onDetailClosed);
  // A click on the backdrop (outside the panel) closes the dialog.
  dialog.addEventListener('click', (e) => { if (e.target === dialog) closeDetail(); });
  $('#detail-body').addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-action]');
    if (btn) runAction(btn.dataset.action, btn.dataset.id, btn);
  });

  window.addEventListener('online', onOnline);
}

// ---------------------------------------------------------------------------------------------
// Session: what the signed-in key may see and do

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
  transport.live?.stop();
  transport.live = null;
  stopPolling();
  clearTimeout(longPollSyncTimer);
  longPollSyncTimer = 0;
  clearTimeout(typesRetryTimer);
  state.listEpoch++; // answers still on their way are dropped
  listLoading = false;
  listError = '';
  closeDetail();
  clearRows();
  state.commands.clear();
  state.payloads.clear();
  state.cursor = null;
  state.pagesLoaded = 0;
  state.types = [];
  knownErrorCodes.clear();
  $('#error-codes').replaceChildren();
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
