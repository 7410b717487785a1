// The handle of one watched command: its newest view, subscribers, and `done()`. The client
// feeds it views (every watch of a client shares one stream); it stops following once nobody
// listens and it ended or nobody waits.

/** @typedef {import('./types.js').CommandView} CommandView */

/** The statuses a command does not leave by itself. */
export const TERMINAL = Object.freeze(['success', 'fail', 'cancelled', 'discarded']);

/**
 * @typedef {object} DoneOptions
 * @property {boolean} [rejectOnFailure] reject with a CommandFailed when it ends `fail` or `cancelled`
 */

/**
 * A watched command.
 * @typedef {object} CommandWatch
 * @property {CommandView|undefined} current the newest view held
 * @property {(fn: (view: CommandView) => void) => () => void} subscribe calls `fn` with every newer
 *   view (at once with the current one); returns the unsubscribe
 * @property {(options?: DoneOptions) => Promise<CommandView>} done the final view
 * @property {() => void} close stop following it
 */

/** A command that ended `fail` or `cancelled`, for `done({ rejectOnFailure: true })`. */
export class CommandFailed extends Error {
  /** @param {CommandView} view */
  constructor(view) {
    super(`command ${view.id} ended ${view.status}`);
    this.name = 'CommandFailed';
    /** @type {CommandView} */
    this.view = view;
  }
}

/** @param {CommandView} view */
const isTerminal = (view) => TERMINAL.includes(view.status);

/**
 * @param {CommandView|undefined} held the view the client holds already, if any
 * @param {(take: (view: CommandView) => void) => () => void} follow starts giving views to
 *   `take` (each newer than the last); returns what stops it
 * @returns {CommandWatch}
 */
export function commandWatch(held, follow) {
  /** @type {Set<(view: CommandView) => void>} */
  const subscribers = new Set();
  /** @type {Array<{resolve: (view: CommandView) => void, reject: (error: Error) => void, strict: boolean}>} */
  let waiters = [];
  let current = held;
  /** @type {(() => void)|null} */
  let unfollow = null;
  const settle = () => {
    if (!current || !isTerminal(current)) return;
    const view = current;
    for (const { resolve, reject, strict } of waiters) {
      if (strict && view.status !== 'success') reject(new CommandFailed(view));
      else resolve(view);
    }
    waiters = [];
  };
  const stop = () => {
    unfollow?.();
    unfollow = null;
  };
  /** Nobody listens, and it ended or nobody waits: stop following. */
  const idle = () => {
    if (subscribers.size === 0 && (waiters.length === 0 || (current && isTerminal(current)))) stop();
  };
  unfollow = follow((view) => {
    current = view;
    for (const fn of subscribers) fn(view);
    settle();
    idle();
  });
  return {
    get current() {
      return current;
    },
    subscribe(fn) {
      subscribers.add(fn);
      if (current) fn(current);
      return () => {
        subscribers.delete(fn);
        idle();
      };
    },
    done({ rejectOnFailure = false } = {}) {
      return new Promise((resolve, reject) => {
        waiters.push({ resolve, reject, strict: rejectOnFailure });
        settle();
        idle();
      });
    },
    close: stop,
  };
}
