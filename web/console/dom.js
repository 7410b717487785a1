// Small DOM helpers the console's views share: find an element, build one, name a command
// briefly. No state and no server calls.

/**
 * The first element matching `sel`.
 * @param {string} sel a CSS selector
 * @returns {HTMLElement|null}
 */
export const $ = (sel) => document.querySelector(sel);

/**
 * Create an element: h('button', {class: 'btn', type: 'button'}, 'Text', childNode).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs] `on<event>` functions become listeners; null, undefined and false are left out
 * @param {...(Node|string|number|null|undefined|false|Array)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/**
 * UUID v7 starts with a millisecond timestamp, so commands made together share a prefix:
 * the tail (random bits) tells them apart.
 * @type {(id: string) => string}
 */
export const shortId = (id) => String(id).replace(/-/g, '').slice(-8);

/**
 * A fresh random key (for the idempotency key field).
 * @returns {string}
 */
export function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
