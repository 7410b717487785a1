// Retry, cancel and discard of one command, from its row or its page: the server's answer is
// ingested like any other view, and the notice line says what happened. Cancelling a running
// command (its handler is asked to stop mid-way) and discarding a parked failure (it never runs
// again) ask first.

import { shortId } from './dom.js';
import { notAvailable } from '../bus.js';
import { api, commandPath, sessionEnded, state } from './state.js';
import { ingest } from './store.js';
import { notify } from './notice.js';
import { confirmAction } from './confirm.js';

const ACTION_LABEL = { retry: 'Retry', cancel: 'Cancel', discard: 'Discard' };

/** The question to ask before `action` on `id`, or null when none is needed. */
function question(action, id) {
  const v = state.commands.get(id);
  if (action === 'cancel' && v?.status === 'running') {
    return [`Command ${shortId(id)} (${v.type}) is running. Cancel it? Its handler is asked to stop; work it did stays done.`, 'Cancel command'];
  }
  if (action === 'discard') {
    return [`Discard failed command ${shortId(id)}? Its parked message is dropped and it never runs again.`, 'Discard command'];
  }
  return null;
}

/**
 * Asks the server to retry, cancel or discard command `id`; `btn` is disabled meanwhile.
 * @param {'retry'|'cancel'|'discard'} action
 * @param {string} id
 * @param {HTMLButtonElement} [btn]
 * @returns {Promise<void>}
 */
export async function runAction(action, id, btn) {
  const ask = question(action, id);
  if (ask && !(await confirmAction(ask[0], ask[1]))) { btn?.focus(); return; }
  if (btn) btn.disabled = true;
  try {
    const { data } = await api('POST', commandPath(id, `/${action}`));
    ingest(data);
    notify(`${ACTION_LABEL[action]} requested for ${shortId(id)}.`);
  } catch (err) {
    if (sessionEnded(err)) return;
    // A missing feature is information, not a failure.
    notify(actionErrorMessage(ACTION_LABEL[action], err), notAvailable(err) ? 'info' : 'error');
  } finally {
    if (btn?.isConnected) btn.disabled = false;
  }
}

function actionErrorMessage(label, err) {
  if (notAvailable(err)) return `${label} is not available on this server (${err.status}).`;
  if (err.status === 409) return `${label} refused: ${err.message}`;
  return `${label} failed: ${err.message}`;
}
