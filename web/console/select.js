// The selection: commands ticked in the list (a row's box, Space or x on a row, Shift for a
// range, the header's box for every row shown), kept by id while the rows come and go, for a
// bulk action on them (bulk.js). Only a key with `operate` sees the boxes.

import { $ } from './dom.js';
import { state } from './state.js';
import { rowEls } from './table.js';

/** The id ticked last, where a Shift range starts. */
let anchor = null;
const listeners = [];

/**
 * `listener()` runs whenever the selection changed.
 * @param {() => void} listener
 */
export function onSelection(listener) { listeners.push(listener); }

function paint(id) {
  const tr = rowEls.get(id);
  if (!tr) return;
  const on = state.selected.has(id);
  tr.classList.toggle('selected', on);
  tr.setAttribute('aria-selected', String(on));
  const box = /** @type {HTMLInputElement} */ (tr.querySelector('.c-select input'));
  if (box) box.checked = on;
}

function changed() {
  const n = state.selected.size;
  $('#bulk-scope-selection').textContent = `the selected commands (${n})`;
  $('#select-clear').hidden = n === 0;
  const all = /** @type {HTMLInputElement} */ ($('#select-page'));
  const shown = state.rows.filter((id) => state.selected.has(id)).length;
  all.checked = shown > 0 && shown === state.rows.length;
  all.indeterminate = shown > 0 && shown < state.rows.length;
  for (const listener of listeners) listener();
}

/**
 * Ticks or unticks command `id`; with `range`, every row from the last one ticked to it.
 * @param {string} id
 * @param {boolean} on
 * @param {boolean} [range]
 */
export function select(id, on, range = false) {
  const from = range && anchor ? state.rows.indexOf(anchor) : -1;
  const to = state.rows.indexOf(id);
  const ids = from >= 0 && to >= 0
    ? state.rows.slice(Math.min(from, to), Math.max(from, to) + 1) : [id];
  for (const each of ids) {
    if (on) state.selected.add(each); else state.selected.delete(each);
    paint(each);
  }
  anchor = id;
  changed();
}

/** Unticks everything. */
export function clearSelection() {
  const ids = [...state.selected];
  state.selected.clear();
  anchor = null;
  for (const id of ids) paint(id);
  changed();
}

/** Hooks up the header's box and the Clear selection button. */
export function bindSelection() {
  $('#select-page').addEventListener('change', (e) => {
    const on = /** @type {HTMLInputElement} */ (e.target).checked;
    for (const id of state.rows) {
      if (on) state.selected.add(id); else state.selected.delete(id);
      paint(id);
    }
    changed();
  });
  $('#select-clear').addEventListener('click', clearSelection);
}
