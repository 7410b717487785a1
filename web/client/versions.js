// The version rule, spelled once: a client keeps a command view only if its version is higher
// than the one it holds. Versions order every change of a command, so whichever way a view
// arrives (a POST answer, a list page, the WebSocket, a long poll), late or twice, the newest
// one wins and nothing goes back in time. No DOM: the console and any other front end share it.

/**
 * @typedef {object} CommandView a command as the server shows it (GET /v1/commands/{id})
 * @property {string} id
 * @property {number} version
 * @property {string} status
 */

/**
 * @typedef {object} Offered what offer() made of a view
 * @property {CommandView} view the view now held: the offered one if it was newer, else the one held before
 * @property {CommandView|undefined} previous the view held before the offer, if any
 * @property {boolean} changed whether the offered view was newer and is now held
 */

/** id -> the newest view held: a Map whose only way in, by convention, is offer(). */
export class Versions extends Map {
  /**
   * Keeps `view` if its version is higher than the one held for its id.
   * @param {unknown} view anything a server sent
   * @returns {Offered|null} null when `view` is not a command view (no string id, no number version)
   */
  offer(view) {
    if (!view || typeof view.id !== 'string' || typeof view.version !== 'number') return null;
    const previous = this.get(view.id);
    const changed = !previous || view.version > previous.version;
    if (changed) this.set(view.id, view);
    return { view: changed ? view : previous, previous, changed };
  }
}
