// The command views the console holds, newest version of each, behind the library's version
// rule (Versions of @cmdbus/client): a view is kept only if its version is higher than the one
// held, whichever way it arrived (a submit's answer, a list page, a live change), late or twice.
// Beside the rule it keeps what the table needs: the view held before (to tell what changed),
// a count and a way to forget views off screen, so that a long-open page stays bounded.

import { Versions } from '../bus.js';

/**
 * @typedef {object} Offered what offer() made of a view
 * @property {object} view the view now held: the offered one if it was newer, else the one held before
 * @property {object|undefined} previous the view held before the offer, if any
 * @property {boolean} changed whether the offered view was newer and is now held
 */

export class Held {
  #rule = new Versions();
  /** @type {Map<string, object>} id -> the newest view held */
  #views = new Map();

  /** @returns {number} how many views are held */
  get size() { return this.#views.size; }

  /**
   * @param {string} id
   * @returns {object|undefined}
   */
  get(id) { return this.#views.get(id); }

  /**
   * @param {string} id
   * @returns {boolean}
   */
  has(id) { return this.#views.has(id); }

  /**
   * Keeps `view` if the version rule finds it newer than the one held for its id.
   * @param {unknown} view anything a server sent
   * @returns {Offered|null} null when `view` is not a command view
   */
  offer(view) {
    const previous = this.#views.get(view?.id);
    const newer = this.#rule.offer(view);
    if (newer) {
      this.#views.set(newer.id, newer);
      return { view: newer, previous, changed: true };
    }
    return previous ? { view: previous, previous, changed: false } : null;
  }

  /**
   * Forgets views, oldest held first, that `drop(id)` lets go, until at most `size` are held.
   * The rule starts again from the views kept (a forgotten command is as if never seen).
   * @param {number} size
   * @param {(id: string) => boolean} drop
   */
  prune(size, drop) {
    for (const id of this.#views.keys()) {
      if (this.#views.size <= size) break;
      if (drop(id)) this.#views.delete(id);
    }
    this.#rule = new Versions();
    for (const view of this.#views.values()) this.#rule.offer(view);
  }

  /** Forgets every view (signed out: the next key may belong to another tenant). */
  clear() {
    this.#views.clear();
    this.#rule = new Versions();
  }
}
