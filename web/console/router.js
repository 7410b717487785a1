// The console's pages and their addresses: the route is the fragment (`#/overview`,
// `#/commands/{id}`, `#/queues`, `#/workers`; none or `#/` is the command list), so every page
// can be shared, reloaded and reached with Back; the list's filters stay in the query string.
// Each page module registers what to do when it is shown and hidden.

import { $ } from './dom.js';

/**
 * @typedef {object} Page
 * @property {(arg: string) => void} show the page became visible (arg: the rest of its route)
 * @property {() => void} [hide] it is no longer visible
 */

/** @type {Map<string, Page>} */
const pages = new Map();
let current = '';
let started = false;

/**
 * Registers page `name` (its element is `#page-<name>`).
 * @param {string} name
 * @param {Page} page
 */
export function definePage(name, page) { pages.set(name, page); }

/**
 * The page and argument of a fragment.
 * @param {string} hash
 * @returns {{name: string, arg: string}}
 */
function parse(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'commands' && parts[1]) return { name: 'command', arg: parts[1] };
  if (pages.has(parts[0] || '') && parts[0] !== 'command') return { name: parts[0], arg: parts[1] || '' };
  return { name: 'commands', arg: '' };
}

function route() {
  if (!started) return;
  const { name, arg } = parse(location.hash);
  if (current && current !== name) pages.get(current)?.hide?.();
  for (const [other] of pages) {
    const el = $(`#page-${other}`);
    if (el) el.hidden = other !== name;
  }
  for (const link of document.querySelectorAll('.pages a')) {
    const here = /** @type {HTMLElement} */ (link).dataset.page === (name === 'command' ? 'commands' : name);
    if (here) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  current = name;
  pages.get(name)?.show(arg);
}

/**
 * Goes to `hash` (a new history entry, so Back returns).
 * @param {string} hash e.g. `#/commands/<id>`
 */
export function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

/** The name of the page shown. */
export const currentPage = () => current;

/** Shows the page of the address, and follows it from now on. */
export function startRouter() {
  started = true;
  route();
}

/** Signed out: hide the page shown, remember nothing. */
export function stopRouter() {
  if (current) pages.get(current)?.hide?.();
  current = '';
  started = false;
}

window.addEventListener('hashchange', route);
