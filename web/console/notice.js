// The notice line above the table: results of per-row actions and list errors, dismissed by
// hand or after a few seconds. It is a live region, so screen readers announce each one.

import { $, h } from './dom.js';

let noticeTimer = 0;

/**
 * Shows `message` (an empty one clears the notice).
 * @param {string} message
 * @param {'info'|'error'} [kind]
 */
export function notify(message, kind = 'info') {
  const el = $('#notice'); // live region: always rendered, only its content changes
  clearTimeout(noticeTimer);
  if (!message) { el.replaceChildren(); return; }
  el.replaceChildren(h('div', { class: `notice-box ${kind}` },
    h('span', {}, message),
    h('button', { type: 'button', class: 'link-btn', onclick: () => notify('') }, 'Dismiss')));
  noticeTimer = setTimeout(() => notify(''), kind === 'error' ? 15000 : 6000);
}
