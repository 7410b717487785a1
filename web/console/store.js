// The only way command views enter the console. Each goes through the version rule (the
// Versions store of client.js keeps it only if its version is higher than the one held), then
// its table row is added, updated or removed; the other views hear of each change.
//
// Data flow: every view we learn about (POST answer, list page, WebSocket event, long-poll
// answer) ends here; the watch (live.js) applies the rule itself and hands over the outcome.

import { MAX_STORED, state } from './state.js';
import { compareNewestFirst } from './format.js';
import { flash, insertRow, removeRow, rowEls, updateRow } from './table.js';

/** @typedef {import('../client/versions.js').Offered} Offered */

const changeListeners = [];

/**
 * `listener(view)` runs for every view that changed what the console holds, in the order the
 * listeners were added, after the table is in step.
 * @param {(view: object) => void} listener
 */
export function onChange(listener) { changeListeners.push(listener); }

const matchesFilter = (v) =>
  (!state.filter.status || v.status === state.filter.status) &&
  (!state.filter.type || v.type === state.filter.type);

/** A live command belongs in the table only if it is not older than the pages we loaded;
 *  older ones will come with "Load more", in order. */
function withinLoadedWindow(v) {
  if (state.cursor === null || state.rows.length === 0) return true;
  const oldest = state.commands.get(state.rows[state.rows.length - 1]);
  return !oldest || compareNewestFirst(v, oldest) <= 0;
}

/**
 * Take a view from any source. Keeps it only if newer than what we hold, then syncs the table.
 * `listed`: it came from a list page for the current filter, so it belongs in the table
 * even if older than the rows we have.
 * @param {unknown} view
 * @param {{listed?: boolean}} [options]
 * @returns {boolean} whether the view was newer than the one held
 */
export function ingest(view, options) {
  const offered = state.commands.offer(view);
  return offered ? show(offered, options) : false;
}

/**
 * Brings the table (and the views listening) in step with a view the version rule has seen.
 * @param {Offered} offered
 * @param {{listed?: boolean}} [options] as for ingest()
 * @returns {boolean} whether the view was newer than the one held
 */
export function show({ view: current, previous: held, changed }, { listed = false } = {}) {
  if (matchesFilter(current)) {
    if (rowEls.has(current.id)) {
      if (changed) updateRow(rowEls.get(current.id), current, held);
    } else if (listed || withinLoadedWindow(current)) {
      const tr = insertRow(current);
      if (!listed) flash(tr); // arrived live: draw the eye to it
    }
  } else if (rowEls.has(current.id)) {
    removeRow(current.id);
  }

  if (changed) for (const listener of changeListeners) listener(current);
  if (state.commands.size > MAX_STORED) pruneStore();
  return changed;
}

/** Forget views that are not on screen so a long-open page does not grow without bound. */
function pruneStore() {
  const keep = new Set(state.rows);
  if (state.detailId) keep.add(state.detailId);
  for (const id of state.commands.keys()) {
    if (!keep.has(id)) { state.commands.delete(id); state.payloads.delete(id); }
    if (state.commands.size <= MAX_STORED * 0.8) break;
  }
}
