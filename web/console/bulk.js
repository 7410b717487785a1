// Bulk actions of the list: retry now, cancel or discard, on the selected commands or on
// everything matching the filters. Every action starts with a dry run that counts exactly what
// it would touch; only a confirmation acts, and it sends the dry run's bound with it (its
// `until` and its count as `limit`), so it never takes more than it showed. A filter the action
// cannot express (a search, a key) is refused rather than widened.

import { $, h } from './dom.js';
import { notAvailable } from '../bus.js';
import { api, commandPath, sessionEnded, state } from './state.js';
import { loadList } from './list.js';
import { loadTotals } from './totals.js';
import { clearSelection } from './select.js';

const VERB = { retry: 'retried', cancel: 'cancelled', discard: 'discarded' };
const LABEL = { retry: 'Retry', cancel: 'Cancel', discard: 'Discard' };
const PAST = { retry: 'Retried', cancel: 'Cancelled', discard: 'Discarded' };
const ROUTE = { retry: '/v1/commands/retry', cancel: '/v1/commands/cancel', discard: '/v1/commands/discard' };
/** The states each action takes, for a selection counted in the page. */
const TAKES = { retry: new Set(['fail', 'cancelled']) };

/** @type {{action: string, body?: object, ids?: string[], n: number}|null} the dry run shown */
let preview = null;

/**
 * Forgets the shown dry run and says `message` instead.
 * @param {string} [message]
 */
export function resetBulk(message = '') {
  preview = null;
  $('#bulk-result').textContent = message;
  $('#bulk-confirm-row').hidden = true;
}

const plural = (n) => `${n.toLocaleString()} ${n === 1 ? 'command' : 'commands'}`;

/** The filter as a bulk body for `action`, or why it cannot be one. */
function filterBody(action) {
  const f = state.filter;
  const cannot = ['q', 'ordering_key', 'idempotency_key'].filter((k) => f[k]);
  if (action !== 'discard' && f.lane) cannot.push('lane');
  if (action === 'retry' && (f.created_after || f.created_before)) cannot.push('creation time');
  if (cannot.length) return { why: `${LABEL[action]} by filter cannot apply ${cannot.join(', ')}: select the commands instead.` };
  const iso = (v) => (v ? new Date(v).toISOString() : null);
  const body = { type: f.type || null, error_code: f.error_code || null };
  if (action === 'cancel') {
    if (f.status && !['new', 'queue', 'running'].includes(f.status)) return { why: `No ${f.status} command can be cancelled.` };
    Object.assign(body, { status: f.status || null, since: iso(f.created_after), until: iso(f.created_before) });
  } else if (f.status && f.status !== 'fail') {
    return { why: `${LABEL[action]} by filter takes failed commands; the filter shows ${f.status} ones.` };
  }
  if (action === 'discard') Object.assign(body, { lane: f.lane || null, since: iso(f.created_after), until: iso(f.created_before) });
  return { body };
}

async function onAction(action) {
  const scope = /** @type {HTMLSelectElement} */ ($('#bulk-scope')).value;
  resetBulk('Counting…');
  try {
    if (scope === 'selection') {
      const ids = [...state.selected];
      if (!ids.length) { resetBulk('Select commands first (their boxes, or Space on a row).'); return; }
      if (TAKES[action]) {
        // Bulk retry takes a filter, not ids: a selection is retried one by one, counted here.
        const take = ids.filter((id) => TAKES[action].has(state.commands.get(id)?.status));
        showPreview({ action, ids: take, n: take.length }, ids.length);
        return;
      }
      const { data } = await api('POST', ROUTE[action], { body: { ids, dry_run: true } });
      const n = Number(data?.matched) || 0;
      showPreview({ action, body: { ids, until: data?.until ?? null, limit: n }, n }, ids.length);
      return;
    }
    const { body, why } = filterBody(action);
    if (!body) { resetBulk(why); return; }
    const { data } = await api('POST', ROUTE[action], { body: { ...body, dry_run: true } });
    const n = Number(data?.matched) || 0;
    // The action is bound to what the dry run counted: nothing newer than its `until`, never
    // more than it matched.
    showPreview({ action, body: { ...body, until: data?.until ?? body.until ?? null, limit: n }, n });
  } catch (err) {
    if (sessionEnded(err)) return;
    resetBulk(notAvailable(err)
      ? `Bulk ${action} is not available on this server (${ROUTE[action]} answered ${err.status}).`
      : `Counting failed: ${err.message}`);
  }
}

function showPreview(shown, selected) {
  const { action, n } = shown;
  const of = selected !== undefined && selected !== n ? ` (of ${plural(selected)} selected; the others cannot be)` : '';
  if (n === 0) { resetBulk(`Nothing to ${action}: no matching command can be ${VERB[action]}${of}.`); return; }
  preview = shown;
  $('#bulk-result').replaceChildren(h('strong', { 'data-testid': 'bulk-count', 'data-n': String(n) }, plural(n)),
    ` would be ${VERB[action]}${of}.`);
  const btn = $('#bulk-confirm');
  btn.textContent = `${LABEL[action]} ${plural(n)}`;
  btn.className = `btn ${action === 'retry' ? 'primary' : 'danger'}`;
  $('#bulk-confirm-row').hidden = false;
  btn.focus();
}

async function onConfirm() {
  if (!preview) return;
  const { action, body, ids } = preview;
  const btn = /** @type {HTMLButtonElement} */ ($('#bulk-confirm'));
  btn.disabled = true;
  try {
    let done = 0;
    if (ids) {
      for (const id of ids) {
        try { await api('POST', commandPath(id, '/retry')); done++; } catch (err) { if (sessionEnded(err)) return; }
      }
    } else {
      const { data } = await api('POST', ROUTE[action], { body: { ...body, dry_run: false } });
      done = Number(data?.[VERB[action]]) || 0;
    }
    clearSelection(); // (which forgets the dry run shown)
    $('#bulk-result').replaceChildren(`${PAST[action]} `,
      h('strong', { 'data-testid': 'bulk-done', 'data-n': String(done) }, plural(done)), '.');
    loadList('refresh');
    loadTotals();
  } catch (err) {
    if (sessionEnded(err)) return;
    resetBulk(notAvailable(err) ? `Bulk ${action} is not available on this server.` : `Bulk ${action} failed: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
}

const knownErrorCodes = new Set();

/**
 * Offers the error code of a failed command as a suggestion for the error code filter.
 * @param {object} v a command view
 */
export function rememberErrorCode(v) {
  const code = v.error?.code;
  if (!code || knownErrorCodes.has(code)) return;
  knownErrorCodes.add(code);
  $('#error-codes').append(h('option', { value: code }));
}

/** Signed out: the next key may see other commands, so forget the codes seen. */
export function forgetErrorCodes() {
  knownErrorCodes.clear();
  $('#error-codes').replaceChildren();
}

/** Hooks the bulk bar's controls up. */
export function bindBulk() {
  for (const btn of document.querySelectorAll('[data-bulk]')) {
    btn.addEventListener('click', () => onAction(/** @type {HTMLElement} */ (btn).dataset.bulk));
  }
  $('#bulk-scope').addEventListener('change', () => resetBulk());
  $('#bulk-confirm').addEventListener('click', onConfirm);
  $('#bulk-abort').addEventListener('click', () => { resetBulk(); });
}
