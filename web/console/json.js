// JSON on the command page: short values shown whole, large ones collapsed behind a summary
// (an operator opens them when needed; a megabyte result would otherwise bury the page).

import { h } from './dom.js';
import { pretty } from './format.js';

/** Above this many characters (or lines), a value starts collapsed. */
const COLLAPSE_CHARS = 1500;
const COLLAPSE_LINES = 24;

/**
 * A titled block of `value` as indented JSON, collapsed when large.
 * @param {string} title
 * @param {unknown} value
 * @param {string} testid
 * @returns {HTMLElement}
 */
export function jsonBlock(title, value, testid) {
  const text = pretty(value);
  const pre = h('pre', { class: 'json', tabindex: '0', 'aria-label': title, 'data-testid': testid }, text);
  const lines = text.split('\n').length;
  if (text.length <= COLLAPSE_CHARS && lines <= COLLAPSE_LINES) {
    return h('section', { class: 'detail-section' }, h('h3', {}, title), pre);
  }
  const size = text.length >= 10240 ? `${Math.round(text.length / 1024)} KB` : `${text.length} characters`;
  return h('section', { class: 'detail-section' }, h('h3', {}, title),
    h('details', { class: 'json-fold' }, h('summary', {}, `Show ${lines} lines (${size})`), pre));
}
