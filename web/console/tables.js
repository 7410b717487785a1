// A plain data table for the queue, type and worker pages: a header and rows of cells, each
// cell text or a node. No state.

import { h } from './dom.js';

/**
 * @param {string[]} columns the header
 * @param {Array<Array<Node|string|number|null>>} rows
 * @param {{testid?: string, rowTestid?: string, rowKeys?: string[], empty?: string}} [options]
 * @returns {HTMLElement}
 */
export function dataTable(columns, rows, { testid, rowTestid, rowKeys, empty = 'Nothing to show.' } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'data-wrap' }, h('table', { class: 'data', 'data-testid': testid },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((cells, i) => h('tr', { 'data-testid': rowTestid, 'data-key': rowKeys?.[i] },
      cells.map((c) => h('td', {}, c ?? '—')))))));
}
