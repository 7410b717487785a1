// Bulk retry, in the Failed view: a dry run counts the failed commands that match a type and
// an error code, and only a confirmation retries them. Error codes seen on failed commands are
// offered as suggestions.

import { $, h } from './dom.js';
import { api, sessionEnded } from './state.js';
import { loadList } from './list.js';

let bulkPreview = null; // the request body that the shown dry run answered

function bulkBody(dryRun) {
  return {
    type: $('#bulk-type').value || null,
    error_code: $('#bulk-code').value.trim() || null,
    dry_run: dryRun,
  };
}

/**
 * Forgets the shown dry run and says `message` instead.
 * @param {string} [message]
 */
export function resetBulk(message = '') {
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

const knownErrorCodes = new Set();

/**
 * Offers the error code of a failed command as a suggestion for the bulk form.
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

/** Hooks the bulk form's controls up. */
export function bindBulk() {
  $('#bulk-form').addEventListener('submit', onBulkPreview);
  $('#bulk-type').addEventListener('change', () => resetBulk());
  $('#bulk-code').addEventListener('input', () => resetBulk());
  $('#bulk-confirm').addEventListener('click', onBulkConfirm);
  $('#bulk-abort').addEventListener('click', () => { resetBulk(); $('#bulk-preview').focus(); });
}
