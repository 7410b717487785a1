// The schedules page (`#/schedules`): the tenant's recurring commands (GET /v1/schedules) in a simple list,
// each with its pattern, time zone, next tick and last tick, and, with the `operate` scope,
// pause, resume and delete. It reloads after each action, on Refresh, and every few seconds
// while shown, so the next and last ticks move on by themselves. Needs `read`; without it the
// page is not offered.

import { $, h, shortId } from './dom.js';
import { api, client, sessionEnded } from './state.js';
import { notify } from './notice.js';
import { definePage } from './router.js';

/** How often the list is read again while shown. */
const RELOAD_MS = 5000;

let reloadTimer = 0;
/** Bumped by stopSchedules, so that an answer of the last session is dropped. */
let epoch = 0;

/**
 * @typedef {object} Schedule a schedule as GET /v1/schedules lists it
 * @property {string} id
 * @property {string|null} name
 * @property {string} type
 * @property {string} cron
 * @property {string} timezone
 * @property {string} missed
 * @property {boolean} paused
 * @property {string} next_run_at
 * @property {string|null} last_tick_at
 * @property {string|null} last_command
 * @property {boolean} declared
 */

/** Signed in: the page's Refresh button works (the page itself loads when it is shown). */
export function startSchedules() {
  $('#schedules-refresh')?.addEventListener('click', loadSchedules);
}

/** Signed out: stop reloading and forget the list (the next key may be another tenant's). */
export function stopSchedules() {
  epoch += 1;
  clearInterval(reloadTimer);
  $('#schedules-refresh')?.removeEventListener('click', loadSchedules);
  $('#schedule-rows')?.replaceChildren();
}

definePage('schedules', {
  show() {
    if (!client.can('read')) return;
    loadSchedules();
    clearInterval(reloadTimer);
    reloadTimer = window.setInterval(loadSchedules, RELOAD_MS);
  },
  hide() { clearInterval(reloadTimer); },
});

/** Reads the list and draws it. */
export async function loadSchedules() {
  const mine = epoch;
  try {
    const { data } = await api('GET', '/v1/schedules');
    if (mine !== epoch) return;
    render(/** @type {Schedule[]} */ (data?.items ?? []));
  } catch (err) {
    if (sessionEnded(err) || mine !== epoch) return;
    const empty = $('#schedules-empty');
    empty.textContent = `Schedules cannot be read: ${err.message}`;
    empty.hidden = false;
  }
}

/** @param {string|null} at an RFC 3339 time, or null */
const when = (at) => (at ? new Date(at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }) : '—');

/**
 * A cell whose lines may wrap (the table's cells do not, by default).
 * @param {HTMLElement} cell
 * @returns {HTMLElement}
 */
function wrapping(cell) {
  cell.style.whiteSpace = 'normal'; // CSSOM, which the page's style-src allows
  return cell;
}

/**
 * @param {Schedule[]} schedules
 */
function render(schedules) {
  const canOperate = client.can('operate');
  const empty = $('#schedules-empty');
  empty.textContent = 'No schedules.';
  empty.hidden = schedules.length > 0;
  $('#schedule-rows').replaceChildren(...schedules.map((s) => h('tr', { 'data-testid': 'schedule-row', 'data-id': s.id },
    h('td', {}, s.name ?? shortId(s.id), s.declared ? h('span', { class: 'label-note' }, ' (file)') : null),
    h('td', {}, s.type),
    wrapping(h('td', {}, h('code', {}, s.cron), h('br'), h('span', { class: 'label-note' },
      `${s.timezone}, missed: ${s.missed === 'catch_up_once' ? 'catch up once' : 'skip'}`))),
    h('td', { 'data-testid': 'schedule-state' }, s.paused ? 'paused' : 'active'),
    wrapping(h('td', {}, `next ${s.paused ? '—' : when(s.next_run_at)}`, h('br'),
      h('span', { class: 'label-note' }, `last ${when(s.last_tick_at)}`))),
    h('td', {}, canOperate ? actions(s) : null))));
}

/**
 * The buttons of one schedule.
 * @param {Schedule} s
 * @returns {Array<HTMLElement|string>}
 */
function actions(s) {
  const name = s.name ?? shortId(s.id);
  return [
    h('button', { type: 'button', class: 'btn small', 'data-testid': s.paused ? 'schedule-resume' : 'schedule-pause',
      onclick: (/** @type {Event} */ e) => act(s.paused ? 'resume' : 'pause', s.id, name, e) },
    s.paused ? 'Resume' : 'Pause'),
    ' ',
    h('button', { type: 'button', class: 'btn small danger', 'data-testid': 'schedule-delete',
      onclick: (/** @type {Event} */ e) => { if (confirm(`Delete schedule ${name}?`)) act('delete', s.id, name, e); } },
    'Delete'),
  ];
}

/**
 * Pauses, resumes or deletes a schedule, then reloads the list.
 * @param {'pause'|'resume'|'delete'} action
 * @param {string} id
 * @param {string} name
 * @param {Event} event
 */
async function act(action, id, name, event) {
  const btn = /** @type {HTMLButtonElement} */ (event.currentTarget);
  btn.disabled = true;
  const path = `/v1/schedules/${encodeURIComponent(id)}`;
  try {
    if (action === 'delete') await api('DELETE', path);
    else await api('POST', `${path}/${action}`);
    notify(`Schedule ${name}: ${action === 'delete' ? 'deleted' : `${action}d`}.`);
  } catch (err) {
    if (sessionEnded(err)) return;
    notify(`Schedule ${name}: ${action} failed: ${err.message}`, 'error');
  } finally {
    if (btn.isConnected) btn.disabled = false;
  }
  loadSchedules();
}
