// Retry and cancel of one command, from its row or its detail dialog: the server's answer is
// ingested like any other view, and the notice line says what happened.

import { shortId } from './dom.js';
import { api, commandPath, sessionEnded } from './state.js';
import { ingest } from './store.js';
import { notify } from './notice.js';

const ACTION_LABEL = { retry: 'Retry', cancel: 'Cancel' };

/**
 * Asks the server to retry or cancel command `id`; `btn` is disabled meanwhile.
 * @param {'retry'|'cancel'} action
 * @param {string} id
 * @param {HTMLButtonElement} [btn]
 * @returns {Promise<void>}
 */
export async function runAction(action, id, btn) {
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
