// HTTP calls against the server the client was given: the credential as `Authorization: Bearer`,
// JSON in and out, problem+json errors as ApiError. A 401 asks the application for a fresh
// token once and tries again: an expired token is renewed, never a sign-out.

/** @typedef {import('./types.js').Problem} Problem */
/** @typedef {import('./credential.js').Credential} Credential */

/** A request that failed: `status` 0 when the server did not answer, else its problem+json. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Partial<Problem>|null} problem
   * @param {string} message
   */
  constructor(status, problem, message) {
    super(message);
    this.name = 'ApiError';
    /** @type {number} */
    this.status = status;
    /** @type {Partial<Problem>|null} */
    this.problem = problem;
  }

  /** @returns {string|null} the problem's stable `code` */
  get code() {
    return this.problem?.code ?? null;
  }

  /** @returns {boolean} whether trying the same request again may succeed */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/**
 * @typedef {object} RequestOptions
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string>} [headers]
 * @property {AbortSignal} [signal]
 * @property {number[]} [accept] statuses besides 2xx answered as data rather than thrown
 */

/**
 * @param {string} base the server's URL, without a trailing slash
 * @param {Credential} credential
 * @param {string} method
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<{status: number, data: any}>}
 */
export async function request(base, credential, method, path, options = {}) {
  let res = await send(base, await credential.get(), method, path, options);
  if (res.status === 401 && credential.renewable) {
    res = await send(base, await credential.get(true), method, path, options);
  }
  const data = await readBody(res);
  if (res.ok || res.status === 304 || options.accept?.includes(res.status)) {
    return { status: res.status, data };
  }
  const problem = data && typeof data === 'object' ? data : null;
  const message = problem?.detail || problem?.title || `${res.status} ${res.statusText}`.trim();
  throw new ApiError(res.status, problem, message);
}

/**
 * @param {string} base
 * @param {string} token
 * @param {string} method
 * @param {string} path
 * @param {RequestOptions} options
 */
async function send(base, token, method, path, { body, headers = {}, signal }) {
  /** @type {Record<string, string>} */
  const all = { Accept: 'application/json', ...headers };
  if (token) all.Authorization = `Bearer ${token}`;
  /** @type {RequestInit} */
  const init = { method, headers: all, signal, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    all['Content-Type'] = 'application/json';
  }
  try {
    return await fetch(`${base}${path}`, init);
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, null, `${base} did not answer`);
  }
}

/** @param {Response} res */
async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
