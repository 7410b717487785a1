// The workers page: each live worker process from its heartbeat row (GET /v1/workers): where
// it runs, the lane it serves, its concurrency, what it runs now, and its last heartbeat; read
// again every two seconds while the page is shown.

import { $, h } from './dom.js';
import { fmtAge, fmtDate, parseTime } from './format.js';
import { definePage } from './router.js';
import { dataTable } from './tables.js';
import { readItems } from './queues.js';

const REFRESH_MS = 2000;
let timer = 0;
let shown = false;

async function refresh() {
  const workers = await readItems('/v1/workers');
  if (!shown) return;
  const now = Date.now();
  $('#workers-table').replaceChildren('error' in workers
    ? h('p', { class: 'empty error', 'data-testid': 'route-missing' }, workers.error)
    : dataTable(['Worker', 'Host', 'Lane', 'Running', 'Concurrency', 'Started', 'Last heartbeat', 'Version'],
      workers.items.map((w) => [
        h('code', { title: w.id }, w.id),
        `${w.host} (pid ${w.pid})`,
        w.lane || 'main',
        h('span', { 'data-testid': 'worker-running' }, String(w.running)),
        String(w.concurrency),
        h('span', { title: w.started_at }, fmtDate(w.started_at)),
        h('span', { title: w.last_seen_at }, `${fmtAge(now - parseTime(w.last_seen_at))} ago${w.stopping ? ' · stopping' : ''}`),
        w.version,
      ]),
      { testid: 'workers', rowTestid: 'worker-row', rowKeys: workers.items.map((w) => w.id), empty: 'No worker is alive.' }));
}

definePage('workers', {
  show() {
    shown = true;
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  },
  hide() { shown = false; clearInterval(timer); },
});

$('#workers-refresh').addEventListener('click', refresh);
