// Loading the list of commands: page one for the current filters, "Load more" for the next
// page, and a refresh that merges page one again (once live updates first caught up, and
// after a reset of them). Stale answers (the filters changed meanwhile) are dropped.

import { FILTER_KEYS, PAGE_SIZE, ROW_CAP, api, state } from './state.js';
import { flush, ingest } from './store.js';
import { listStatus } from './table.js';
import { clearRows, updateListChrome } from './rows.js';
import { notify } from './notice.js';
import { notAvailable } from '../bus.js';

/** Pages with nothing for the filter (the server looks through a bounded window per page) that
 *  are skipped at once, so a rare status still shows instead of "No commands match". */
const EMPTY_PAGES_FOLLOWED = 20;

/**
 * The current filters as query parameters (`time` filters as RFC 3339).
 * @param {boolean} [withStatus] include the status (the counts route takes none)
 * @returns {URLSearchParams}
 */
export function filterParams(withStatus = true) {
  const q = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    const value = state.filter[k];
    if (!value || (k === 'status' && !withStatus)) continue;
    q.set(k, k.startsWith('created_') ? new Date(value).toISOString() : value);
  }
  return q;
}

function listQuery(cursor) {
  const q = filterParams();
  q.set('limit', String(PAGE_SIZE));
  if (cursor) q.set('cursor', cursor);
  return `/v1/commands?${q}`;
}

/**
 * mode 'reset': filters changed, start over. 'more': next page. 'refresh': merge page one again
 * (once live updates first caught up, and after a reset of them).
 * @param {'reset'|'more'|'refresh'} mode
 * @returns {Promise<void>} settles (never rejects) once the answer is shown
 */
export async function loadList(mode) {
  if (mode === 'reset') {
    state.listEpoch++;
    state.cursor = null;
    state.pagesLoaded = 0;
    state.rowCap = ROW_CAP;
    clearRows();
  }
  if (mode === 'more') state.rowCap = Math.max(state.rowCap, state.rows.length + PAGE_SIZE);
  const epoch = state.listEpoch;
  const cursor = mode === 'more' ? state.cursor : null;
  if (mode === 'more' && !cursor) return;
  listStatus.loading = true;
  updateListChrome();
  try {
    let next = cursor;
    for (let page = 0; ; page++) {
      const { data } = await api('GET', listQuery(next));
      if (epoch !== state.listEpoch) return; // the filters changed while we waited
      listStatus.error = '';
      const items = Array.isArray(data?.items) ? data.items : [];
      for (const v of items) ingest(v, { listed: true });
      next = data?.next_cursor ?? null;
      // A refresh re-reads page one only; keep the cursor of the deepest page already loaded.
      if (mode !== 'refresh' || state.pagesLoaded === 0) {
        state.cursor = next;
        state.pagesLoaded++;
      }
      if (items.length || !next || mode === 'refresh' || page >= EMPTY_PAGES_FOLLOWED) break;
    }
    flush();
  } catch (err) {
    if (epoch !== state.listEpoch) return;
    // Keep showing what we have; only an empty table needs the error in its place.
    listStatus.error = notAvailable(err) || err.status === 400
      ? `This server cannot list with these filters (${err.status}: ${err.message}).`
      : `Could not load commands: ${err.message}`;
    if (mode !== 'refresh') notify(listStatus.error, 'error');
  } finally {
    if (epoch === state.listEpoch) listStatus.loading = false;
    updateListChrome();
  }
}

/** Signed out: answers still on their way are dropped, and the list forgets its state. */
export function resetList() {
  state.listEpoch++;
  listStatus.loading = false;
  listStatus.error = '';
}
