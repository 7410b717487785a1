// How the console writes times, durations, progress and JSON, and in which order it lists
// commands: pure functions of command views, no DOM and no state.

/**
 * Milliseconds since the epoch, NaN for a missing or bad timestamp.
 * @type {(s: string|null|undefined) => number}
 */
export const parseTime = (s) => (s ? Date.parse(s) : NaN);

/**
 * Newest first: creation time, then id (UUID v7 sorts by time too).
 * @param {object} a a command view
 * @param {object} b a command view
 * @returns {number} negative when `a` comes first
 */
export function compareNewestFirst(a, b) {
  const ta = parseTime(a.created_at);
  const tb = parseTime(b.created_at);
  if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) return tb - ta;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * An age: 42s, 5m, 3h 12m, 2d 4h.
 * @param {number} ms
 * @returns {string}
 */
export function fmtAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/**
 * A duration: 120 ms, 4.2 s, 37 s, 3m 5s, 1h 2m.
 * @param {number} ms
 * @returns {string}
 */
export function fmtDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

/**
 * A timestamp in the reader's locale, to the millisecond; '—' when there is none.
 * @type {(s: string|null|undefined) => string}
 */
export const fmtDate = (s) => (s && !Number.isNaN(parseTime(s)) ? dateFmt.format(parseTime(s)) : '—');

/**
 * How long the current/last attempt ran; null when it has not started.
 * @param {object} v a command view
 * @param {number} [now]
 * @returns {number|null} milliseconds
 */
export function runDuration(v, now = Date.now()) {
  const start = parseTime(v.started_at);
  if (Number.isNaN(start)) return null;
  const end = v.finished_at ? parseTime(v.finished_at) : (v.status === 'running' ? now : NaN);
  return Number.isNaN(end) ? null : end - start;
}

/**
 * 0–100 for the progress bar. A finished success is complete even if the handler never said so.
 * @param {object} v a command view
 * @returns {number}
 */
export function progressPercent(v) {
  if (v.status === 'success') return 100;
  if (typeof v.progress !== 'number' || Number.isNaN(v.progress)) return 0;
  return Math.round(Math.min(1, Math.max(0, v.progress)) * 100);
}

/**
 * JSON indented for reading.
 * @type {(value: unknown) => string}
 */
export const pretty = (value) => JSON.stringify(value, null, 2);

const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

/**
 * The time of day of a timestamp, to the millisecond (the attempt timeline, where the day is the
 * command's); '—' when there is none.
 * @type {(s: string|null|undefined) => string}
 */
export const fmtTime = (s) => (s && !Number.isNaN(parseTime(s)) ? timeFmt.format(parseTime(s)) : '—');
