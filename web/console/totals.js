// Totals per status for the list's current filters, from GET /v1/commands/counts: exact where
// the server keeps counters, else a lower bound it says is one ("at least"). Read when the
// filters change and again every few seconds while commands change; each figure filters the
// list by its status (filters.js). A server without the route is said so, once.

import { $, h } from './dom.js';
import { STATUSES, api, sessionEnded, state } from './state.js';
import { notAvailable } from '../bus.js';
import { filterParams } from './list.js';

const REFRESH_MS = 3000;
let dirty = false;
let timer = 0;
let epoch = 0;

/** @type {Record<string, number>|null} the last counts read (the overview shows them too) */
export let lastCounts = null;

/**
 * Fetches the counts for `params`.
 * @param {URLSearchParams} params
 * @returns {Promise<{counts: Record<string, number>, exact: boolean}|{error: string}>}
 */
export async function fetchCounts(params) {
  try {
    const { data } = await api('GET', `/v1/commands/counts${params.size ? `?${params}` : ''}`);
    return { counts: data?.counts || {}, exact: data?.exact !== false };
  } catch (err) {
    if (sessionEnded(err)) return { error: '' };
    return {
      error: notAvailable(err)
        ? 'Totals unavailable: this server has no GET /v1/commands/counts (404).'
        : `Totals unavailable: ${err.message}`,
    };
  }
}

/** Reads the totals for the current filters and shows them above the table. */
export async function loadTotals() {
  const mine = ++epoch;
  dirty = false;
  const got = await fetchCounts(filterParams(false));
  if (mine !== epoch) return;
  const el = $('#totals');
  if ('error' in got) { el.textContent = got.error; el.classList.add('hint'); return; }
  el.classList.remove('hint');
  lastCounts = got.counts;
  const statuses = [...STATUSES, ...Object.keys(got.counts).filter((s) => !STATUSES.includes(s))];
  const total = statuses.reduce((n, s) => n + (Number(got.counts[s]) || 0), 0);
  const fmt = (n) => n.toLocaleString();
  el.replaceChildren(
    h('span', { class: 'total-all', 'data-testid': 'total' }, `${got.exact ? '' : 'at least '}${fmt(total)} in all`),
    ...statuses.map((s) => h('button', {
      type: 'button', class: `total s-${s}`, 'data-status': s, 'data-testid': `total-${s}`,
      'aria-pressed': String(state.filter.status === s), title: `Show only ${s}`,
    }, `${s} ${fmt(Number(got.counts[s]) || 0)}`)));
}

/** Commands changed: read the totals again at the next tick. */
export function totalsChanged() { dirty = true; }

/** Keeps the totals fresh while the list is shown. */
export function startTotals() {
  clearInterval(timer);
  timer = setInterval(() => { if (dirty) loadTotals(); }, REFRESH_MS);
}

/** Stops refreshing (another page is shown, or signed out). */
export function stopTotals() {
  clearInterval(timer);
  epoch++;
}
