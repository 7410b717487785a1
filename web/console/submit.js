// The submit form and the command types: pick a type (its example payload comes with it),
// write a JSON payload that is checked as you type, set priority, attempts and keys, submit,
// and see the answer with a link to the command's details.

import { $, h, randomKey, shortId } from './dom.js';
import { pretty } from './format.js';
import { api, client, sessionEnded, state } from './state.js';
import { flush, ingest } from './store.js';
import { rowEls } from './table.js';
import { openCommand } from './command.js';

const form = $('#submit-form');
const typeSelect = $('#type-select');
const payloadEl = $('#payload');
const drafts = new Map(); // type -> payload text the user typed, restored when they switch back
let currentType = '';

function setFieldError(input, errorEl, message) {
  errorEl.textContent = message || '';
  errorEl.hidden = !message;
  if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
}

/** The live region itself stays rendered (regions that appear from display:none are often not
 *  announced); the styled box inside it comes and goes. */
/**
 * Says how the last submit went, under the form (no content: says nothing).
 * @param {string|Node|Array<Node|string>} content
 * @param {'ok'|'error'} [kind]
 */
export function setFormResult(content, kind) {
  const el = $('#form-result');
  if (!content) { el.replaceChildren(); return; }
  const parts = (Array.isArray(content) ? content : [content]).filter(Boolean);
  el.replaceChildren(h('div', { class: `result-box ${kind || ''}`.trim() }, parts));
}

/** Line/column for a JSON.parse position, because engines phrase errors differently. */
function lineCol(text, pos) {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return { line, col: pos - before.lastIndexOf('\n') };
}

/** null when the payload is valid JSON, else a human message. */
function payloadProblem(text) {
  if (!text.trim()) return 'Enter a JSON value, for example {} or null.';
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    let msg = String(err.message).replace(/^JSON\.parse:\s*/, '');
    const m = /position (\d+)/.exec(msg);
    if (m && !/line \d+/.test(msg)) {
      const { line, col } = lineCol(text, Number(m[1]));
      msg += ` (line ${line}, column ${col})`;
    }
    return `Invalid JSON: ${msg}`;
  }
}

function validatePayload() {
  const problem = payloadProblem(payloadEl.value);
  setFieldError(payloadEl, $('#payload-error'), problem);
  return !problem;
}

function exampleText(type) {
  const t = state.types.find((x) => x.name === type);
  return t && t.example !== null && t.example !== undefined ? pretty(t.example) : '{}';
}

function onTypeChange() {
  if (currentType) drafts.set(currentType, payloadEl.value);
  currentType = typeSelect.value;
  const t = state.types.find((x) => x.name === currentType);
  $('#type-desc').textContent = t?.description || '';
  $('#max-attempts').placeholder = t ? `default ${t.max_attempts}` : 'type default';
  payloadEl.value = drafts.get(currentType) ?? exampleText(currentType);
  setFieldError(typeSelect, $('#type-error'), '');
  validatePayload();
}

function readInt(input, errorEl, { min, max, optional, name }) {
  const raw = input.value.trim();
  if (!raw && optional) { setFieldError(input, errorEl, ''); return { ok: true, value: null }; }
  const n = Number(raw);
  const bad = !raw || !Number.isInteger(n) || n < min || (max !== undefined && n > max);
  const range = max !== undefined ? `${min} to ${max}` : `${min} or more`;
  setFieldError(input, errorEl, bad ? `${name} must be a whole number from ${range}.` : '');
  return { ok: !bad, value: n };
}

let submitting = false;

/**
 * The payload as typed, for JSON.stringify: a number that a JavaScript number would round (a
 * big integer, many decimals) is sent as its own text, where the browser can (JSON.rawJSON).
 * @param {string} text valid JSON
 * @returns {unknown}
 */
function parseExact(text) {
  if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
  return JSON.parse(text, (_key, value, context) =>
    (typeof value === 'number' && context?.source !== undefined && String(value) !== context.source
      ? JSON.rawJSON(context.source) : value));
}

async function onSubmit(event) {
  event.preventDefault();
  if (submitting) return;
  const type = typeSelect.value;
  setFieldError(typeSelect, $('#type-error'), type ? '' : 'Choose a command type.');
  const payloadOk = validatePayload();
  const priority = readInt($('#priority'), $('#priority-error'), { min: 0, max: 9, name: 'Priority' });
  const maxAttempts = readInt($('#max-attempts'), $('#max-attempts-error'),
    { min: 1, optional: true, name: 'Max attempts' });
  if (!type || !payloadOk || !priority.ok || !maxAttempts.ok) {
    form.querySelector('[aria-invalid="true"]')?.focus();
    setFormResult('Fix the highlighted fields and submit again.', 'error');
    return;
  }

  const payloadText = payloadEl.value.trim();
  const orderingKey = $('#ordering-key').value.trim() || null;
  const idemKey = $('#idem-key').value.trim();
  const body = {
    type,
    payload: parseExact(payloadText),
    priority: priority.value,
    ordering_key: orderingKey,
    max_attempts: maxAttempts.value,
  };

  submitting = true;
  const btn = $('#submit');
  btn.disabled = true;
  btn.textContent = 'Submitting…';
  try {
    const { status, data } = await api('POST', '/v1/commands', {
      body,
      headers: idemKey ? { 'Idempotency-Key': idemKey } : {},
    });
    if (!data || typeof data.id !== 'string') {
      setFormResult(`Accepted (${status}), but the answer carried no command.`, 'error');
      return;
    }
    if (!state.payloads.has(data.id)) state.payloads.set(data.id, JSON.parse(payloadText));
    showSubmitted(data, status);
  } catch (err) {
    if (!sessionEnded(err)) showSubmitError(err);
  } finally {
    submitting = false;
    btn.disabled = false;
    btn.textContent = 'Submit command';
  }
}

function showSubmitted(view, status) {
  if (!client.can('read')) {
    // Nothing to watch it with: give the whole id, for whoever can read it.
    setFormResult(h('span', {}, 'Submitted ', h('code', {}, view.id),
      '. This key cannot read commands, so its progress is not shown here.'), 'ok');
    return;
  }
  ingest(view, { listed: true });
  flush(); // the row the answer links to is drawn now, not at the next frame
  const shown = rowEls.get(view.id);
  if (shown) shown.classList.add('flash');
  const open = h('button', { type: 'button', class: 'link-btn', onclick: () => openCommand(view.id) }, 'View details');
  const what = status === 200
    ? 'Already submitted with this idempotency key; showing the existing command'
    : 'Submitted';
  const hidden = shown ? '' : ' (hidden by the current filters)';
  setFormResult([h('span', {}, `${what} `, h('code', {}, shortId(view.id)), `${hidden}. `), open], 'ok');
}

function showSubmitError(err) {
  const code = err.code;
  if (code === 'unknown_type') setFieldError(typeSelect, $('#type-error'), err.message);
  if (code === 'malformed_json' || code === 'payload_too_large') {
    setFieldError(payloadEl, $('#payload-error'), err.message);
  }
  const prefix = err.status ? `Not accepted (${err.status}${code ? ` ${code}` : ''}): ` : '';
  setFormResult(`${prefix}${err.message}`, 'error');
}

function formatPayload() {
  if (!validatePayload()) { payloadEl.focus(); return; }
  payloadEl.value = pretty(JSON.parse(payloadEl.value));
}

/** Validate while typing, but only after a short pause so errors do not flicker. An error
 *  already shown is re-checked at once: it must go the moment the JSON is fixed, or it is
 *  stale, and its removal on blur moves the Submit button away from a pointer mid-click. */
let payloadTimer = 0;
function onPayloadInput() {
  clearTimeout(payloadTimer);
  if (!$('#payload-error').hidden) validatePayload();
  else payloadTimer = setTimeout(validatePayload, 300);
}

// Types: the select of the form and of the filters, from GET /v1/types.

let typesRetryTimer = 0;

/**
 * Loads the registered command types into the form and the filters; retries every 5 s while
 * the server cannot say.
 * @returns {Promise<void>}
 */
export async function loadTypes() {
  try {
    const { data } = await api('GET', '/v1/types');
    state.types = Array.isArray(data?.items) ? data.items : [];
  } catch (err) {
    if (sessionEnded(err)) return;
    typeSelect.replaceChildren(h('option', { value: '' }, 'Types unavailable'));
    setFieldError(typeSelect, $('#type-error'), `Could not load command types: ${err.message}`);
    typesRetryTimer = setTimeout(loadTypes, 5000);
    return;
  }
  const names = state.types.map((t) => t.name);
  typeSelect.replaceChildren(...(names.length
    ? names.map((n) => h('option', { value: n }, n))
    : [h('option', { value: '' }, 'No types registered')]));
  fillTypeOptions($('#filter-type'), names, state.filter.type);
  currentType = '';
  onTypeChange();
}

/** "Any type" plus the registered types; keeps a URL-given type even if it is unknown. */
function fillTypeOptions(select, names, selected) {
  const all = selected && !names.includes(selected) ? [...names, selected] : names;
  select.replaceChildren(h('option', { value: '' }, 'Any type'), ...all.map((n) => h('option', { value: n }, n)));
  select.value = selected || '';
}

/** Signed out: stop asking for the types. */
export function stopTypes() {
  clearTimeout(typesRetryTimer);
}

/** Hooks the form's controls up. */
export function bindSubmit() {
  form.addEventListener('submit', onSubmit);
  typeSelect.addEventListener('change', onTypeChange);
  payloadEl.addEventListener('input', onPayloadInput);
  payloadEl.addEventListener('blur', validatePayload);
  $('#format-payload').addEventListener('click', formatPayload);
  $('#idem-gen').addEventListener('click', () => { $('#idem-key').value = randomKey(); });
}
