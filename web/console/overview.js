// The overview page: commands per state (GET /v1/commands/counts), throughput and failures per
// minute over the last half hour (GET /v1/stats, summed over the types), queue depths, the
// workers alive, and the parked failures waiting in the exception lanes, read again every two
// seconds while the page is shown, so the charts move with the work. A server without
// /v1/stats gets charts of what this page saw arrive live (in 10-second buckets), and says so.

import { $, h } from './dom.js';
import { STATUSES, api, sessionEnded } from './state.js';
import { notAvailable } from '../bus.js';
import { definePage, go } from './router.js';
import { drawBars } from './chart.js';
import { fetchCounts } from './totals.js';
import { readItems } from './queues.js';

const REFRESH_MS = 2000;
const MINUTES = 30;
const LIVE_BUCKET_MS = 10_000;
const LIVE_BUCKETS = 60;
let timer = 0;
let shown = false;

// What arrived live: terminal changes per 10-second bucket, for a server without /v1/stats.
/** @type {Map<number, Record<string, number>>} */
const live = new Map();
/** @type {Map<string, string>} id -> the terminal status counted for it */
const counted = new Map();

/**
 * Counts a command that reached a final state (the live charts' source).
 * @param {object} v a command view
 */
export function noteChange(v) {
  if (!['success', 'fail', 'cancelled'].includes(v.status) || counted.get(v.id) === v.status) return;
  counted.set(v.id, v.status);
  if (counted.size > 50_000) counted.delete(counted.keys().next().value);
  const at = Math.floor(Date.now() / LIVE_BUCKET_MS) * LIVE_BUCKET_MS;
  const bucket = live.get(at) || {};
  bucket[v.status] = (bucket[v.status] || 0) + 1;
  live.set(at, bucket);
  for (const key of live.keys()) if (key < at - LIVE_BUCKETS * LIVE_BUCKET_MS) live.delete(key);
}

/** Buckets from `start` every `step` ms up to now, each with the values `valuesAt` gives. */
function timeline(start, step, count, valuesAt) {
  return Array.from({ length: count }, (_, i) => {
    const at = start + i * step;
    return { at: new Date(at).toISOString(), values: valuesAt(at) };
  });
}

async function readStats() {
  const since = new Date(Date.now() - MINUTES * 60_000).toISOString();
  try {
    const { data } = await api('GET', `/v1/stats?bucket=minute&since=${encodeURIComponent(since)}`);
    const perMinute = new Map();
    for (const row of data?.series || []) {
      const at = Math.floor(Date.parse(row.at) / 60_000) * 60_000;
      const sum = perMinute.get(at) || {};
      for (const k of ['success', 'fail', 'retry', 'cancelled', 'lease_lost']) sum[k] = (sum[k] || 0) + (Number(row[k]) || 0);
      perMinute.set(at, sum);
    }
    const start = Math.floor(Date.now() / 60_000) * 60_000 - (MINUTES - 1) * 60_000;
    return { buckets: timeline(start, 60_000, MINUTES, (at) => perMinute.get(at) || {}), note: 'per minute, last 30 minutes' };
  } catch (err) {
    if (sessionEnded(err)) return null;
    const why = notAvailable(err) ? 'this server has no /v1/stats (404)' : `/v1/stats failed: ${err.message}`;
    const start = Math.floor(Date.now() / LIVE_BUCKET_MS) * LIVE_BUCKET_MS - (LIVE_BUCKETS - 1) * LIVE_BUCKET_MS;
    return {
      buckets: timeline(start, LIVE_BUCKET_MS, LIVE_BUCKETS, (at) => live.get(at) || {}),
      note: `seen live by this page, per 10 s (${why})`,
    };
  }
}

function stateCards(got) {
  if ('error' in got) return [h('p', { class: 'hint' }, got.error)];
  const extra = Object.keys(got.counts).filter((s) => !STATUSES.includes(s));
  return [...STATUSES, ...extra].map((s) => h('button', {
    type: 'button', class: `state-card s-${s}`, 'data-testid': `ov-count-${s}`, 'data-n': String(got.counts[s] || 0),
    onclick: () => { location.search = `?status=${s}`; },
  }, h('span', { class: 'state-n' }, `${got.exact ? '' : '≥ '}${(Number(got.counts[s]) || 0).toLocaleString()}`),
  h('span', { class: 'state-name' }, s)));
}

async function refresh() {
  const [counts, stats, queues, workers, lane1, lane2] = await Promise.all([
    fetchCounts(new URLSearchParams()), readStats(), readItems('/v1/queues'), readItems('/v1/workers'),
    fetchCounts(new URLSearchParams({ lane: 'exceptions1' })), fetchCounts(new URLSearchParams({ lane: 'exceptions2' }))]);
  if (!shown) return;
  $('#ov-counts').replaceChildren(...stateCards(counts));
  if (stats) {
    drawBars($('#ov-throughput'), stats.buckets, ['success', 'fail', 'cancelled'], { label: 'Finished commands' });
    drawBars($('#ov-failures'), stats.buckets, ['fail', 'retry', 'lease_lost'], { label: 'Failures, retries and lost leases' });
    $('#ov-tp-note').textContent = stats.note;
    $('#ov-fail-note').textContent = stats.note;
  }
  if ('error' in queues) {
    $('#ov-queues').replaceChildren(h('p', { class: 'hint' }, queues.error));
  } else {
    const main = queues.items.filter((q) => q.role === 'main' || q.role === 'partition');
    const byType = new Map();
    for (const q of main) byType.set(q.type, (byType.get(q.type) || 0) + q.ready);
    $('#ov-queues').replaceChildren(list([...byType].map(([type, n]) => [type, n]), 'ov-depth', 'No command queue.'));
  }
  $('#ov-parked').replaceChildren(parkedList(lane1, lane2, queues));
  $('#ov-workers').replaceChildren('error' in workers ? h('p', { class: 'hint' }, workers.error)
    : h('p', { class: 'big-figure', 'data-testid': 'ov-workers-alive' },
      h('strong', {}, String(workers.items.length)), ` alive, running ${workers.items.reduce((n, w) => n + w.running, 0)}`,
      h('button', { type: 'button', class: 'link-btn', onclick: () => go('#/workers') }, 'Show workers')));
}

/** The failures parked in each exception lane (from the database; from the broker's lane queues
 *  where the server cannot count them), each a link to the list of them. */
function parkedList(lane1, lane2, queues) {
  const open = (params) => () => { location.href = `?${new URLSearchParams({ status: 'fail', ...params })}#/`; };
  const none = 'Nothing parked: no failure waits in an exception lane.';
  if (!('error' in lane1) && !('error' in lane2)) {
    const lanes = [['exceptions1', lane1], ['exceptions2', lane2]].filter(([, got]) => Number(got.counts.fail) > 0);
    return list(lanes.map(([lane, got]) => [`${got.exact ? '' : '≥ '}failed, parked in ${lane}`, got.counts.fail, open({ lane })]),
      'ov-parked-lane', none);
  }
  if ('error' in queues) return h('p', { class: 'hint' }, queues.error);
  const parked = queues.items.filter((q) => (q.role === 'exceptions1' || q.role === 'exceptions2') && q.ready > 0);
  return list(parked.map((q) => [`${q.type} · ${q.role}`, q.ready, open({ type: q.type, lane: q.role })]), 'ov-parked-lane', none);
}

/** A short list of name → figure, each optionally a button. */
function list(entries, testid, empty) {
  if (!entries.length) return h('p', { class: 'hint' }, empty);
  return h('ul', { class: 'figures' }, entries.map(([name, n, open]) => h('li', { 'data-testid': testid },
    open ? h('button', { type: 'button', class: 'link-btn', onclick: open }, name) : h('span', {}, name),
    h('strong', {}, Number(n).toLocaleString()))));
}

definePage('overview', {
  show() {
    shown = true;
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  },
  hide() { shown = false; clearInterval(timer); },
});
