// The list's filters: search (a command id or a fragment of one), status, type, and under "More
// filters" error code, lane, ordering key, idempotency key and a creation window; the All/Failed
// switch and the Refresh and Load more buttons. They are kept in the query string, so a reload
// or a shared link shows the same view (the page itself is in the fragment).

import { $ } from './dom.js';
import { FILTER_KEYS, state } from './state.js';
import { loadList } from './list.js';
import { loadTotals } from './totals.js';
import { clearSelection } from './select.js';
import { resetBulk } from './bulk.js';

/** The control of each filter (`data-filter` names the key). */
const controls = () => /** @type {HTMLInputElement[]} */ ([...document.querySelectorAll('[data-filter]')]);

/**
 * Changes the filters (an empty patch applies those of the URL), shows them in the controls
 * and the address bar, and loads the list again.
 * @param {Record<string, string>} patch
 */
export function setFilter(patch) {
  Object.assign(state.filter, patch);
  for (const el of controls()) {
    const value = state.filter[el.dataset.filter] || '';
    if (el.value !== value) el.value = value;
  }
  const more = FILTER_KEYS.filter((k) => !['status', 'type', 'q'].includes(k)).some((k) => state.filter[k]);
  if (more) /** @type {HTMLDetailsElement} */ ($('#more-filters')).open = true;
  const failed = state.filter.status === 'fail';
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    const pressed = /** @type {HTMLElement} */ (b).dataset.view === 'failed' ? failed : !state.filter.status;
    b.setAttribute('aria-pressed', String(pressed));
  }
  clearSelection();
  resetBulk();
  syncUrl();
  loadList('reset');
  loadTotals();
}

/** Keep filters in the address bar so a reload or a shared link shows the same view. */
function syncUrl() {
  const q = new URLSearchParams(location.search);
  for (const k of FILTER_KEYS) {
    if (state.filter[k]) q.set(k, state.filter[k]); else q.delete(k);
  }
  const qs = q.toString();
  history.replaceState(history.state, '', `${location.pathname}${qs ? `?${qs}` : ''}${location.hash}`);
}

let typing = 0;

/** Hooks the filter controls up: selects apply at once, text fields after a pause in typing. */
export function bindFilters() {
  for (const el of controls()) {
    const key = el.dataset.filter;
    const apply = () => { if ((state.filter[key] || '') !== el.value.trim()) setFilter({ [key]: el.value.trim() }); };
    if (el instanceof HTMLSelectElement || el.type === 'datetime-local') {
      el.addEventListener('change', apply);
    } else {
      el.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(apply, 350); });
      el.addEventListener('change', () => { clearTimeout(typing); apply(); });
    }
  }
  $('#filters').addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(typing); for (const el of controls()) el.dispatchEvent(new Event('change')); });
  $('#filters-clear').addEventListener('click', () => setFilter(Object.fromEntries(FILTER_KEYS.map((k) => [k, '']))));
  $('#refresh').addEventListener('click', () => { loadList('reset'); loadTotals(); });
  $('#load-more').addEventListener('click', () => loadList('more'));
  $('#totals').addEventListener('click', (e) => {
    const btn = /** @type {HTMLElement} */ (e.target).closest('button[data-status]');
    if (btn) setFilter({ status: state.filter.status === btn.dataset.status ? '' : btn.dataset.status });
  });
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    b.addEventListener('click', () => setFilter({ status: /** @type {HTMLElement} */ (b).dataset.view === 'failed' ? 'fail' : '' }));
  }
}
