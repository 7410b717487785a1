// The list's filters: the status and type selects, the All/Failed switch and the Refresh and
// Load more buttons, kept in the address bar so that a reload or a shared link shows the same
// view.

import { $ } from './dom.js';
import { client, state } from './state.js';
import { loadList } from './list.js';
import { resetBulk } from './bulk.js';

/**
 * Changes the filters (an empty patch applies those of the URL), shows them in the controls
 * and the address bar, and loads the list again.
 * @param {{status?: string, type?: string}} patch
 */
export function setFilter(patch) {
  Object.assign(state.filter, patch);
  $('#filter-status').value = state.filter.status;
  $('#filter-type').value = state.filter.type;
  const failed = state.filter.status === 'fail';
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    const pressed = b.dataset.view === 'failed' ? failed : !state.filter.status;
    b.setAttribute('aria-pressed', String(pressed));
  }
  $('#bulk').hidden = !failed || !client.can('operate');
  if (failed) $('#bulk-type').value = state.filter.type;
  resetBulk();
  syncUrl();
  loadList('reset');
}

/** Keep filters in the address bar so a reload or a shared link shows the same view. */
function syncUrl() {
  const q = new URLSearchParams(location.search);
  for (const k of ['status', 'type']) {
    if (state.filter[k]) q.set(k, state.filter[k]); else q.delete(k);
  }
  const qs = q.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}${location.hash}`);
}

/** Hooks the filter controls up. */
export function bindFilters() {
  $('#filter-status').addEventListener('change', (e) => setFilter({ status: e.target.value }));
  $('#filter-type').addEventListener('change', (e) => setFilter({ type: e.target.value }));
  $('#refresh').addEventListener('click', () => loadList('reset'));
  $('#load-more').addEventListener('click', () => loadList('more'));
  for (const b of document.querySelectorAll('.view-switch .seg')) {
    b.addEventListener('click', () => setFilter({ status: b.dataset.view === 'failed' ? 'fail' : '' }));
  }
}
