// The attempt timeline of the command page, from GET /v1/commands/{id}/attempts: each run with
// its worker, start, end, duration, outcome and error, oldest first, grouped by generation (a
// replay starts a new one). A missing route (an older server) is said plainly.

import { h } from './dom.js';
import { fmtDuration, fmtTime, parseTime } from './format.js';
import { api, commandPath, sessionEnded } from './state.js';
import { notAvailable } from '../bus.js';

/**
 * Loads the attempts of `id`.
 * @param {string} id
 * @returns {Promise<{items: object[]}|{error: string}>}
 */
export async function loadAttempts(id) {
  try {
    const { data } = await api('GET', commandPath(id, '/attempts'));
    return { items: Array.isArray(data?.items) ? data.items : [] };
  } catch (err) {
    if (sessionEnded(err)) return { error: '' };
    return {
      error: notAvailable(err)
        ? 'This server does not serve attempt histories (GET /v1/commands/{id}/attempts answered 404).'
        : `Could not load the attempts: ${err.message}`,
    };
  }
}

/**
 * The timeline table (or why there is none).
 * @param {{items: object[]}|{error: string}|null} attempts
 * @param {number} now
 * @returns {HTMLElement}
 */
export function attemptsSection(attempts, now) {
  const title = h('h3', {}, 'Attempts');
  if (!attempts) return h('section', { class: 'detail-section' }, title, h('p', { class: 'hint' }, 'Loading…'));
  if ('error' in attempts) {
    return h('section', { class: 'detail-section' }, title, h('p', { class: 'hint', 'data-testid': 'attempts-error' }, attempts.error));
  }
  if (!attempts.items.length) {
    return h('section', { class: 'detail-section' }, title, h('p', { class: 'hint' }, 'Not run yet.'));
  }
  const rows = attempts.items.map((a) => {
    const end = parseTime(a.finished_at);
    const took = (Number.isNaN(end) ? now : end) - parseTime(a.started_at);
    const outcome = a.outcome || 'running';
    return h('tr', { 'data-testid': 'attempt', 'data-outcome': outcome },
      h('td', {}, `${a.attempt}`, a.generation > 0 ? h('span', { class: 'hint' }, ` · replay ${a.generation}`) : null),
      h('td', { class: 'worker', title: a.worker }, a.worker),
      h('td', { title: a.started_at }, fmtTime(a.started_at)),
      h('td', { title: a.finished_at || '' }, fmtTime(a.finished_at)),
      h('td', {}, fmtDuration(took)),
      h('td', {}, h('span', { class: `badge s-${outcomeClass(outcome)}` }, outcome)),
      h('td', { class: 'attempt-error' }, a.error ? `${a.error.code || ''} ${a.error.message || ''}`.trim() : ''));
  });
  return h('section', { class: 'detail-section' }, title,
    h('div', { class: 'attempts-wrap' },
      h('table', { class: 'attempts', 'data-testid': 'attempts' },
        h('thead', {}, h('tr', {}, ...['#', 'Worker', 'Started', 'Ended', 'Took', 'Outcome', 'Error']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))));
}

/** The badge colour of an outcome. */
function outcomeClass(outcome) {
  if (outcome === 'success' || outcome === 'fail' || outcome === 'cancelled' || outcome === 'running') return outcome;
  return outcome === 'retry' ? 'queue' : 'new';
}
