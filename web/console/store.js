// The only way command views enter the console. Each goes through the version rule at once (the
// Held store keeps it only if the library's Versions finds it newer than the one held); the
// table and the views listening hear of it at the next animation frame, at most ten times a
// second, however many changes arrived in between (a 5,000-command burst brings tens of
// thousands), so the page does one round of DOM writes and one layout per drawing, never one
// per change.
//
// Data flow: every view we learn about (POST answer, list page, a change the library followed
// live) ends here, through ingest(); frame() then hands the changed ids to the table's window
// (rows.js) and the changed views to the listeners.

import { MAX_STORED, state } from './state.js';
import { placeRows } from './rows.js';

const changeListeners = [];

/**
 * `listener(view)` runs for every view that changed what the console holds, once per frame
 * per command, after the table is in step.
 * @param {(view: object) => void} listener
 */
export function onChange(listener) { changeListeners.push(listener); }

/** @type {Map<string, {listed: boolean, changed: boolean}>} what changed since the last frame */
const pending = new Map();
/** The table is drawn at most this often (ms): under a burst each drawing costs a layout and a
 *  paint of the whole table, and ten a second is as fast as anyone reads. */
const MIN_FRAME_GAP = 100;
/** And the drawings take at most about a quarter of the main thread: the gap after one is
 *  three times what it cost (its script, style, layout and paint), so input is answered. */
const GAP_PER_COST = 3;
let scheduled = false;
let timer = 0;
let rafId = 0;
let lastFrame = -Infinity;
let gap = MIN_FRAME_GAP;

/** A message posted from a frame callback is taken after that frame is drawn. */
const afterPaint = new MessageChannel();
afterPaint.port1.onmessage = (event) => {
  const cost = performance.now() - event.data;
  frameStats.drawMs += cost;
  gap = Math.max(MIN_FRAME_GAP, GAP_PER_COST * cost);
};

function schedule() {
  if (scheduled) return;
  scheduled = true;
  const wait = lastFrame + gap - performance.now();
  if (wait <= 0) rafId = requestAnimationFrame(frame);
  else timer = setTimeout(() => { rafId = requestAnimationFrame(frame); }, wait);
}

function unschedule() {
  clearTimeout(timer);
  cancelAnimationFrame(rafId);
  scheduled = false;
}

/**
 * Take a view from any source. Keeps it only if newer than what we hold; the table follows at
 * the next frame.
 * `listed`: it came from a list page for the current filter, so it belongs in the table
 * even if older than the rows we have.
 * @param {unknown} view
 * @param {{listed?: boolean}} [options]
 * @returns {boolean} whether the view was newer than the one held
 */
export function ingest(view, { listed = false } = {}) {
  const offered = state.commands.offer(view);
  if (!offered) return false;
  const id = offered.view.id;
  const was = pending.get(id);
  pending.set(id, { listed: listed || Boolean(was?.listed), changed: offered.changed || Boolean(was?.changed) });
  schedule();
  return offered.changed;
}

/** Brings the table and the listeners in step now, instead of at the next drawing (after a submit,
 *  whose row the form links to). */
export function flush() {
  unschedule();
  frame();
}

/** Forgets what was waiting for the next frame (signed out). */
export function dropPending() {
  unschedule();
  pending.clear();
}

/** What the frames cost, for the burst test and for debugging (window.cmdbus.frames). */
export const frameStats = { frames: 0, views: 0, ms: 0, maxMs: 0, drawMs: 0 };

function frame() {
  scheduled = false;
  if (!pending.size) return;
  const start = performance.now();
  // Highlights only when it was quiet: under a stream of changes, animating rows repaints the
  // table every frame.
  const quiet = start - lastFrame > 1000;
  lastFrame = start;
  afterPaint.port2.postMessage(start);
  const batch = new Map(pending);
  pending.clear();
  placeRows(batch, quiet);
  for (const [id, { changed }] of batch) {
    if (!changed) continue;
    const view = state.commands.get(id);
    if (view) for (const listener of changeListeners) listener(view);
  }
  if (state.commands.size > MAX_STORED) pruneStore();
  const took = performance.now() - start;
  frameStats.frames++;
  frameStats.views += batch.size;
  frameStats.ms += took;
  frameStats.maxMs = Math.max(frameStats.maxMs, took);
}

/** Forget views that are not on screen so a long-open page does not grow without bound. */
function pruneStore() {
  const keep = new Set(state.rows);
  if (state.detailId) keep.add(state.detailId);
  for (const id of state.selected) keep.add(id);
  state.commands.prune(MAX_STORED * 0.8, (id) => {
    if (keep.has(id)) return false;
    state.payloads.delete(id);
    return true;
  });
}
