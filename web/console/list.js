// Loading the list of commands: page one for the current filters, "Load more" for the next
// page, and a refresh that merges page one again (after a fresh subscription, and every
// 2 s while polling). Stale answers (the filters changed meanwhile) are dropped.

import { PAGE_SIZE, api, state } from './state.js';
import { compareNewestFirst } from './format.js';
import { ingest } from './store.js';
import { clearRows, listStatus, removeRow, updateListChrome } from './table.js';
import { notify } from './notice.js';

function listQuery(cursor) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter.status) q.set('status', state.filter.status);
  if (state.filter.type) q.set('type', state.filter.type);
  if (cursor) q.set('cursor', cursor);
  return `/v1/commands?${q}`;
}

/**
 * mode 'reset': filters changed, start over. 'more': next page. 'refresh': merge page one again
 * (after a fresh subscription, and every 2 s in polling mode).
 * @param {'reset'|'more'|'refresh'} mode
 * @returns {Promise<void>} settles (never rejects) once the answer is shown
 */
export async function loadList(mode) {
  if (mode === 'reset') {
    state.listEpoch++;
    state.cursor = null;
    state.pagesLoaded = 0;
    clearRows();
  }
  const epoch = state.listEpoch;
  const cursor = mode === 'more' ? state.cursor : null;
  if (mode === 'more' && !cursor) return;
  listStatus.loading = true;
  updateListChrome();
  try {
    const { data } = await api('GET', listQuery(cursor));
    if (epoch !== state.listEpoch) return; // the filters changed while we waited
    listStatus.error = '';
    const items = Array.isArray(data?.items) ? data.items : [];
    if (mode === 'refresh' && state.pagesLoaded > 0) dropRowsMissingFrom(items, data.next_cursor);
    for (const v of items) ingest(v, { listed: true });
    // A refresh re-reads page one only; keep the cursor of the deepest page already loaded.
    if (mode !== 'refresh' || state.pagesLoaded === 0) {
      state.cursor = data?.next_cursor ?? null;
      state.pagesLoaded++;
    }
  } catch (err) {
    if (epoch !== state.listEpoch) return;
    // Keep showing what we have; only an empty table needs the error in its place.
    listStatus.error = `Could not load commands: ${err.message}`;
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

/**
 * In polling mode nobody tells us when a row stops matching the server-side filter
 * (e.g. "running" -> "success" under status=running). Rows inside the range page one covers
 * that page one no longer contains have left the filter.
 */
function dropRowsMissingFrom(items, nextCursor) {
  if (state.conn !== 'polling') return;
  const present = new Set(items.map((v) => v.id));
  const oldest = items[items.length - 1];
  for (const id of [...state.rows]) {
    const v = state.commands.get(id);
    if (present.has(id) || !v) continue;
    const covered = !nextCursor || (oldest && compareNewestFirst(v, oldest) <= 0);
    if (covered) removeRow(id);
  }
}
