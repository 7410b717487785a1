// The credential: a key or browser token given as a string, or an async function the library
// asks again whenever the server says the one it holds is no good (a `renew`, an expiry, a 401
// or a 4401). A token about to expire (its JWT `exp`, read without checking the signature: the
// server checks it) is renewed before it is sent, so a reconnect does not waste a try on it.

/** Renew a token that expires within this many seconds before sending it. */
const EXPIRY_MARGIN_S = 5;

export class Credential {
  /** @type {string | (() => string | Promise<string>)} */
  #source;
  /** @type {string|null} */
  #held = null;
  /** @type {Promise<string>|null} */
  #asking = null;

  /** @param {string | (() => string | Promise<string>)} source */
  constructor(source) {
    this.#source = source;
  }

  /** @returns {boolean} whether asking again can give another credential */
  get renewable() {
    return typeof this.#source === 'function';
  }

  /**
   * The credential to send: the one held unless `fresh` is asked or it is about to expire.
   * Callers asking at once share one call of the application's function.
   * @param {boolean} [fresh]
   * @returns {Promise<string>}
   */
  async get(fresh = false) {
    const source = this.#source;
    if (typeof source !== 'function') return source;
    if (this.#held !== null && !fresh && !expiresSoon(this.#held)) return this.#held;
    if (!this.#asking) {
      this.#asking = Promise.resolve()
        .then(source)
        .then((token) => {
          if (typeof token !== 'string' || !token) throw new Error('the token function gave no token');
          this.#held = token;
          return token;
        })
        .finally(() => {
          this.#asking = null;
        });
    }
    return this.#asking;
  }
}

/**
 * Whether `token` is a JWT whose `exp` is near. Anything else (an API key) never expires.
 * @param {string} token
 */
function expiresSoon(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' && exp - Date.now() / 1000 < EXPIRY_MARGIN_S;
  } catch {
    return false;
  }
}

/**
 * Whether `token` looks like a browser token (a JWT) rather than an API key: only a token may
 * go in a URL (`/v1/events?access_token=`).
 * @param {string} token
 */
export function isBrowserToken(token) {
  return token.split('.').length === 3;
}
