// The version rule, spelled once: a view is kept only if its version is higher than the one
// held. Versions order every change of a command, so whichever way a view arrives (a submit's
// answer, a get, a replay after a resume, two transports around a switch), late or twice, the
// newest wins and nothing goes back in time. A limit bounds what is held: past it, the view
// changed longest ago is forgotten (a page that follows everything for days stays bounded).

/** @typedef {import('./types.js').CommandView} CommandView */

/** id -> the newest view held; the only way in is offer(). */
export class Versions {
  /** @type {Map<string, CommandView>} in the order of change, the latest last */
  #views = new Map();
  /** @type {number} */
  #limit;

  /** @param {number} [limit] the most views held (default: no limit) */
  constructor(limit = Infinity) {
    this.#limit = limit;
  }

  /**
   * Keeps `view` if it is newer than the one held for its id.
   * @param {unknown} view anything a server sent
   * @returns {CommandView|null} the view, when it was newer and is now held; else null
   */
  offer(view) {
    if (!isView(view)) return null;
    const held = this.#views.get(view.id);
    if (held && held.version >= view.version) return null;
    this.#views.delete(view.id); // set again below, so that it goes last
    this.#views.set(view.id, view);
    if (this.#views.size > this.#limit) {
      const oldest = this.#views.keys().next();
      if (!oldest.done) this.#views.delete(oldest.value);
    }
    return view;
  }

  /**
   * @param {string} id
   * @returns {CommandView|undefined}
   */
  get(id) {
    return this.#views.get(id);
  }
}

/**
 * @param {unknown} value
 * @returns {value is CommandView}
 */
function isView(value) {
  if (!value || typeof value !== 'object') return false;
  const view = /** @type {{id?: unknown, version?: unknown}} */ (value);
  return typeof view.id === 'string' && typeof view.version === 'number';
}
