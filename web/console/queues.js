// The queues page: each command type with its pause state (pause and resume it, after a
// confirmation, with `operate`) and each broker queue (main, partitions, exception lanes,
// retry tiers) with its ready messages and consumers, from GET /v1/types and GET /v1/queues,
// read again every two seconds while the page is shown.

import { $, h } from './dom.js';
import { fmtDate } from './format.js';
import { api, client, sessionEnded } from './state.js';
import { notAvailable } from '../bus.js';
import { definePage } from './router.js';
import { dataTable } from './tables.js';
import { confirmAction } from './confirm.js';
import { notify } from './notice.js';

const REFRESH_MS = 2000;
let timer = 0;
let shown = false;

/**
 * Reads a list route; a missing route is said plainly.
 * @param {string} path
 * @returns {Promise<{items: object[]}|{error: string}>}
 */
export async function readItems(path) {
  try {
    const { data } = await api('GET', path);
    return { items: Array.isArray(data?.items) ? data.items : [] };
  } catch (err) {
    if (sessionEnded(err)) return { error: '' };
    return { error: notAvailable(err) ? `This server does not serve ${path} (${err.status}).` : `Could not read ${path}: ${err.message}` };
  }
}

const problem = (text) => h('p', { class: 'empty error', 'data-testid': 'route-missing' }, text);

async function refresh() {
  const [types, queues] = await Promise.all([readItems('/v1/types'), readItems('/v1/queues')]);
  if (!shown) return;
  const depth = new Map();
  if ('items' in queues) {
    for (const q of queues.items) if (q.type) depth.set(q.type, (depth.get(q.type) || 0) + (q.ready || 0));
  }
  const operate = client.can('operate');
  $('#types-table').replaceChildren('error' in types ? problem(types.error) : dataTable(
    ['Type', 'State', 'Ready in its queues', 'Description', ''],
    types.items.map((t) => [
      h('strong', {}, t.name),
      h('span', { class: `badge ${t.paused ? 's-cancelled' : 's-success'}`, 'data-testid': 'pause-state' },
        t.paused ? 'paused' : 'running'),
      h('span', { 'data-testid': 'type-depth' }, String(depth.get(t.name) ?? '—')),
      t.description,
      operate ? h('button', {
        type: 'button', class: `btn small ${t.paused ? 'primary' : 'ghost-danger'}`,
        'data-testid': t.paused ? 'resume' : 'pause', onclick: (e) => togglePause(t, e.target),
      }, t.paused ? 'Resume' : 'Pause') : null,
    ]),
    { testid: 'types', rowTestid: 'type-row', rowKeys: types.items.map((t) => t.name) }));
  $('#queues-table').replaceChildren('error' in queues ? problem(queues.error) : dataTable(
    ['Queue', 'Type', 'Role', 'Ready', 'Unacked', 'Consumers'],
    queues.items.map((q) => [h('code', {}, q.name), q.type, q.role, h('span', { 'data-testid': 'queue-ready' }, String(q.ready)),
      q.unacked ?? '—', String(q.consumers)]),
    { testid: 'queues', rowTestid: 'queue-row', rowKeys: queues.items.map((q) => q.name) }));
  $('#queues-stamp')?.remove();
  $('#types-table').append(h('p', { class: 'hint stamp', id: 'queues-stamp' }, `Read ${fmtDate(new Date().toISOString())}`));
}

async function togglePause(type, btn) {
  const pause = !type.paused;
  const question = pause
    ? `Pause ${type.name}? Workers stop taking new deliveries of it (running ones finish); its commands wait in the queue until it is resumed, by every worker process.`
    : `Resume ${type.name}? Workers take its waiting commands again.`;
  if (!(await confirmAction(question, pause ? `Pause ${type.name}` : `Resume ${type.name}`, { danger: pause }))) return;
  btn.disabled = true;
  try {
    await api('POST', `/v1/types/${encodeURIComponent(type.name)}/${pause ? 'pause' : 'resume'}`);
    notify(`${type.name} ${pause ? 'paused' : 'resumed'}.`);
  } catch (err) {
    if (!sessionEnded(err)) notify(`${pause ? 'Pause' : 'Resume'} failed: ${err.message}`, 'error');
  }
  refresh();
}

definePage('queues', {
  show() {
    shown = true;
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  },
  hide() { shown = false; clearInterval(timer); },
});

$('#queues-refresh').addEventListener('click', refresh);
