// The command page, at its own address (`#/commands/{id}`: shareable, Back returns to the
// list): status, live progress, "Attempt n of m", when a waiting retry is due, the actions the
// key may take, ids and timestamps, error and result (large JSON collapsed), the payload only
// when asked for (it can be sensitive), and the attempt timeline. It follows the view held, so
// every live change shows; the timeline is read again when the command moves on.

import { $, h } from './dom.js';
import { fmtAge, fmtDate, fmtDuration, parseTime, runDuration } from './format.js';
import { api, client, commandPath, sessionEnded, state } from './state.js';
import { ingest } from './store.js';
import { actionButton, operations, paintBadge, paintProgress } from './table.js';
import { jsonBlock } from './json.js';
import { attemptsSection, loadAttempts } from './attempts.js';
import { definePage, go } from './router.js';

const body = $('#command-body');
// Three parts, each painted on its own: a live change repaints the first only, so the
// timeline and the payload (and a button the pointer is on) stay put.
const main = h('div', {});
const timeline = h('div', {});
const payloadPart = h('div', {});
body.replaceChildren(main, timeline, payloadPart);
/** The open command's attempts (null while loading), and the version they were read at. */
let attempts = null;
let attemptsVersion = -1;
let attemptsTimer = 0;
let showPayload = false;
let missing = '';

/**
 * Opens the page of command `id` (a new history entry).
 * @param {string} id
 */
export function openCommand(id) {
  state.cameFromList = true;
  go(`#/commands/${encodeURIComponent(id)}`);
}

function show(id) {
  if (state.detailId !== id) {
    attempts = null;
    attemptsVersion = -1;
    showPayload = false;
    timeline.replaceChildren();
    payloadPart.replaceChildren();
  }
  state.detailId = id;
  missing = '';
  renderCommand();
  $('#command-back').focus();
  // A fresh copy: the list and live views leave the payload out, and a shared link may name a
  // command this page never saw.
  api('GET', commandPath(id)).then(({ data }) => {
    if (data && 'payload' in data) state.payloads.set(id, data.payload);
    if (!ingest(data) && state.detailId === id) renderCommand();
  }).catch((err) => {
    if (sessionEnded(err) || state.detailId !== id) return;
    missing = err.status === 404 ? 'No such command in this tenant.' : `Could not load it: ${err.message}`;
    renderCommand();
  });
}

function hide() {
  state.detailId = null;
  clearTimeout(attemptsTimer);
}

/** Reads the timeline again, at most once a second, when the command moved on. */
function refreshAttempts(v) {
  if (attemptsVersion === v.version) return;
  attemptsVersion = v.version;
  clearTimeout(attemptsTimer);
  attemptsTimer = setTimeout(async () => {
    const id = v.id;
    const got = await loadAttempts(id);
    if (state.detailId !== id) return;
    attempts = got;
    renderCommand();
    timeline.replaceChildren(attemptsSection(attempts, Date.now()));
  }, attempts ? 1000 : 0);
}

function kv(label, value, attrs = {}) {
  return [h('dt', {}, label), h('dd', attrs, value ?? '—')];
}

/** "Attempt n of m", and how many runs there were in all when replays started over. */
function attemptLine(v) {
  const runs = attempts && 'items' in attempts ? attempts.items.length : null;
  const extra = runs !== null && runs > v.attempt ? ` (${runs} runs in all, counting replays)` : '';
  return `Attempt ${v.attempt} of ${v.max_attempts}${extra}`;
}

/** Paints the page anew from the view held for the open command. */
export function renderCommand() {
  const id = state.detailId;
  if (!id) return;
  const v = state.commands.get(id);
  $('#command-title').textContent = v ? v.type : 'Command';
  if (!v) {
    paintBadge($('#command-badge'), '');
    timeline.replaceChildren();
    payloadPart.replaceChildren();
    main.replaceChildren(h('p', { class: missing ? 'field-error' : 'hint', 'data-testid': 'command-missing' },
      missing || 'Loading…'), h('p', { class: 'detail-id' }, h('code', {}, id)));
    return;
  }
  paintBadge($('#command-badge'), v.status);
  refreshAttempts(v);

  const bar = h('div', {
    class: 'progress large', role: 'progressbar', 'aria-label': 'Progress',
    'aria-valuemin': '0', 'aria-valuemax': '100', 'data-testid': 'command-progress',
  }, h('div', { class: 'progress-fill' }));
  const note = h('span', { class: 'progress-note' });
  paintProgress(bar, note, v);

  const actions = operations(v).map((action) => actionButton(action, v.id, { large: true }));
  if (client.can('operate') && v.status === 'fail') actions.push(actionButton('discard', v.id, { large: true }));
  const copyBtn = h('button', { type: 'button', class: 'link-btn', onclick: () => copyId(v.id, copyBtn) }, 'Copy');
  const waiting = v.status === 'queue' && v.next_attempt_at
    ? h('p', { class: 'retry-wait', 'data-testid': 'next-attempt' },
      'Waiting to retry: next attempt ', h('time', { datetime: v.next_attempt_at }, fmtDate(v.next_attempt_at)),
      h('span', { 'data-next': '' }))
    : null;

  const hadFocus = main.contains(document.activeElement) ? /** @type {HTMLElement} */ (document.activeElement).dataset.action : null;
  // Folds the reader opened stay open when a live change repaints the page.
  const open = new Set([...main.querySelectorAll('details[open] pre')].map((pre) => pre.getAttribute('data-testid')));
  main.replaceChildren(...[
    h('p', { class: 'detail-id' }, h('code', {}, v.id), ' ', copyBtn),
    h('div', { class: 'detail-progress' }, bar, note),
    h('p', { class: 'attempt-line', 'data-testid': 'attempt-line' }, attemptLine(v)),
    waiting,
    actions.length ? h('div', { class: 'detail-actions' }, actions) : null,
    h('dl', { class: 'kv' },
      kv('Priority', String(v.priority)),
      kv('Ordering key', v.ordering_key || '—'),
      kv('Subject', v.subject || '—'),
      kv('Version', String(v.version))),
    h('section', { class: 'detail-section' }, h('h3', {}, 'Timestamps'), h('dl', { class: 'kv times' },
      kv('Created', fmtDate(v.created_at), { title: v.created_at }),
      v.run_at ? kv('Run at', fmtDate(v.run_at), { title: v.run_at }) : null,
      kv('Queued', fmtDate(v.queued_at), { title: v.queued_at || '' }),
      kv('Started', fmtDate(v.started_at), { title: v.started_at || '' }),
      kv('Finished', fmtDate(v.finished_at), { title: v.finished_at || '' }),
      kv('Duration', '—', { 'data-duration': '' }),
      kv('Age', '—', { 'data-age': '' }))),
    v.error ? jsonBlock(v.status === 'fail' ? 'Error' : 'Last error', v.error, 'command-error') : null,
    v.result !== null && v.result !== undefined ? jsonBlock('Result', v.result, 'command-result') : null,
  ].filter(Boolean));
  if (!timeline.firstChild) timeline.replaceChildren(attemptsSection(attempts, Date.now()));
  if (!payloadPart.firstChild || (showPayload && !payloadPart.querySelector('[data-testid="payload"]') && payloadHeld(v) !== undefined)) {
    payloadPart.replaceChildren(payloadSection(v));
  }
  for (const pre of main.querySelectorAll('details pre')) {
    if (open.has(pre.getAttribute('data-testid'))) pre.closest('details')?.setAttribute('open', '');
  }
  paintCommandTimes(Date.now());
  // Re-rendering replaced the buttons; keep keyboard focus where it was.
  if (hadFocus) main.querySelector(`[data-action="${hadFocus}"]`)?.focus();
}

/** The payload of `v` this page holds, if any (the list and live views leave it out). */
function payloadHeld(v) {
  return state.payloads.has(v.id) ? state.payloads.get(v.id) : ('payload' in v ? v.payload : undefined);
}

/** The payload, hidden until asked for: payloads can carry what not every onlooker should see. */
function payloadSection(v) {
  const held = payloadHeld(v);
  if (!showPayload) {
    return h('section', { class: 'detail-section' }, h('h3', {}, 'Payload'),
      h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'show-payload',
        onclick: () => {
          showPayload = true;
          payloadPart.replaceChildren(payloadSection(v));
          payloadPart.querySelector('[data-testid="payload"]')?.focus();
        },
      }, 'Show payload'));
  }
  if (held === undefined) {
    return h('section', { class: 'detail-section' }, h('h3', {}, 'Payload'),
      h('p', { class: 'hint' }, 'The server does not include the payload in the command view.'));
  }
  return jsonBlock('Payload', held, 'payload');
}

/**
 * Duration, age and the wait for a retry of the open command, as of `now` (every second).
 * @param {number} now
 */
export function paintCommandTimes(now) {
  const v = state.commands.get(state.detailId);
  if (!v) return;
  const d = runDuration(v, now);
  const dur = body.querySelector('[data-duration]');
  const age = body.querySelector('[data-age]');
  const next = body.querySelector('[data-next]');
  if (dur) dur.textContent = d === null ? '—' : fmtDuration(d);
  if (age) age.textContent = fmtAge(now - parseTime(v.created_at));
  if (next) {
    const left = parseTime(v.next_attempt_at) - now;
    next.textContent = left > 0 ? ` (in ${fmtDuration(left)})` : ' (due now)';
  }
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
 * Hooks the page up: its action buttons run `act`.
 * @param {{act: (action: string, id: string, btn: HTMLButtonElement) => void}} handlers
 */
export function bindCommand({ act }) {
  definePage('command', { show, hide });
  $('#command-back').addEventListener('click', (event) => {
    // Back to where the operator came from when that was the console, else to the list.
    event.preventDefault();
    if (state.cameFromList) history.back();
    else go('#/');
    state.cameFromList = false;
  });
  body.addEventListener('click', (e) => {
    const btn = /** @type {HTMLElement} */ (e.target).closest('button[data-action]');
    if (btn) act(btn.dataset.action, btn.dataset.id, /** @type {HTMLButtonElement} */ (btn));
  });
}
