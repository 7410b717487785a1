// A confirmation before an action that cannot be taken back (cancel a running command, a bulk
// action, pause a type): a small modal dialog that says what will happen, with the action's
// own name on its button. Resolves true only when that button is pressed.

import { $ } from './dom.js';

const dialog = /** @type {HTMLDialogElement} */ ($('#confirm'));
/** @type {((yes: boolean) => void)|null} */
let answer = null;

/**
 * Asks `question`; `action` labels the button that says yes.
 * @param {string} question
 * @param {string} action
 * @param {{danger?: boolean}} [options]
 * @returns {Promise<boolean>}
 */
export function confirmAction(question, action, { danger = true } = {}) {
  answer?.(false);
  $('#confirm-text').textContent = question;
  const yes = $('#confirm-yes');
  yes.textContent = action;
  yes.className = `btn ${danger ? 'danger' : 'primary'}`;
  dialog.showModal();
  yes.focus();
  return new Promise((resolve) => { answer = resolve; });
}

function settle(yes) {
  const resolve = answer;
  answer = null;
  if (dialog.open) dialog.close();
  resolve?.(yes);
}

$('#confirm-yes').addEventListener('click', () => settle(true));
$('#confirm-no').addEventListener('click', () => settle(false));
dialog.addEventListener('close', () => settle(false)); // Escape
