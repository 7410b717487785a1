// @cmdbus/client 0.1.0: built by clients/js/build.mjs from src/ (do not edit).

// src/credential.js
var EXPIRY_MARGIN_S = 5;
var Credential = class {
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
    return typeof this.#source === "function";
  }
  /**
   * The credential to send: the one held unless `fresh` is asked or it is about to expire.
   * Callers asking at once share one call of the application's function.
   * @param {boolean} [fresh]
   * @returns {Promise<string>}
   */
  async get(fresh = false) {
    const source = this.#source;
    if (typeof source !== "function") return source;
    if (this.#held !== null && !fresh && !expiresSoon(this.#held)) return this.#held;
    if (!this.#asking) {
      this.#asking = Promise.resolve().then(source).then((token) => {
        if (typeof token !== "string" || !token) throw new Error("the token function gave no token");
        this.#held = token;
        return token;
      }).finally(() => {
        this.#asking = null;
      });
    }
    return this.#asking;
  }
};
function expiresSoon(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" && exp - Date.now() / 1e3 < EXPIRY_MARGIN_S;
  } catch {
    return false;
  }
}
function isBrowserToken(token) {
  return token.split(".").length === 3;
}

// src/http.js
var ApiError = class extends Error {
  /**
   * @param {number} status
   * @param {Partial<Problem>|null} problem
   * @param {string} message
   */
  constructor(status, problem, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
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
};
async function request(base, credential, method, path, options = {}) {
  let res = await send(base, await credential.get(), method, path, options);
  if (res.status === 401 && credential.renewable) {
    res = await send(base, await credential.get(true), method, path, options);
  }
  const data = await readBody(res);
  if (res.ok || res.status === 304 || options.accept?.includes(res.status)) {
    return { status: res.status, data };
  }
  const problem = data && typeof data === "object" ? data : null;
  const message = problem?.detail || problem?.title || `${res.status} ${res.statusText}`.trim();
  throw new ApiError(res.status, problem, message);
}
async function send(base, token, method, path, { body, headers = {}, signal }) {
  const all = { Accept: "application/json", ...headers };
  if (token) all.Authorization = `Bearer ${token}`;
  const init = { method, headers: all, signal, cache: "no-store", credentials: "omit" };
  if (body !== void 0) {
    init.body = JSON.stringify(body);
    all["Content-Type"] = "application/json";
  }
  try {
    return await fetch(`${base}${path}`, init);
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, null, `${base} did not answer`);
  }
}
async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// src/transports.js
var CLOSE_UNAUTHORIZED = 4401;
var CLOSE_FORBIDDEN = 4403;
var CLOSE_RESTART = 1012;
var FEED_WAIT_S = 25;
function once(link) {
  let ended = false;
  return {
    get ended() {
      return ended;
    },
    /** @param {Ending|null} ending null: closed by the stream, tell nobody */
    end(ending) {
      if (ended) return;
      ended = true;
      if (ending) link.closed(ending);
    }
  };
}
function selectionQuery(selection) {
  const query = new URLSearchParams();
  if ("ids" in selection) query.set("ids", selection.ids.join(","));
  else query.set("all", "true");
  return query;
}
function openWebSocket(session, link) {
  const state = once(link);
  let ws;
  try {
    ws = new WebSocket(`${session.base.replace(/^http/, "ws")}/v1/ws`);
  } catch {
    queueMicrotask(() => state.end({ connected: false }));
    return { close: () => state.end(null) };
  }
  let authenticated = false;
  let subscribed = false;
  let since = session.cursor;
  const send2 = (message) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  };
  const subscribe = () => send2({ op: "subscribe", ...session.selection, ...since ? { since } : {} });
  ws.addEventListener("open", () => send2({ op: "auth", token: session.token }));
  ws.addEventListener("message", (event) => {
    if (state.ended) return;
    let msg;
    try {
      msg = JSON.parse(String(event.data));
    } catch {
      return;
    }
    switch (msg.op) {
      case "authenticated":
        if (!authenticated) subscribe();
        authenticated = true;
        break;
      case "renew":
        session.credential.get(true).then((token) => send2({ op: "auth", token })).catch(() => {
        });
        break;
      case "subscribed":
        subscribed = true;
        link.subscribed(msg.cursor);
        break;
      case "command":
        link.command(msg.command, msg.cursor);
        break;
      case "reset":
        link.reset(msg.cursor);
        break;
      case "error":
        if (msg.code === "bad_cursor" && !subscribed && since) {
          since = null;
          link.reset(null);
          subscribe();
        }
        break;
      default:
    }
  });
  ws.addEventListener("close", (event) => {
    if (event.code === CLOSE_FORBIDDEN) state.end({ connected: subscribed, forbidden: true });
    else if (event.code === CLOSE_UNAUTHORIZED)
      state.end({ connected: subscribed, now: true, unauthorized: true });
    else state.end({ connected: subscribed, now: event.code === CLOSE_RESTART });
  });
  return {
    close() {
      state.end(null);
      ws.close(1e3, "done");
    }
  };
}
function openEventStream(session, link) {
  const state = once(link);
  if (typeof EventSource === "undefined" || !isBrowserToken(session.token)) {
    queueMicrotask(() => state.end({ connected: false }));
    return { close: () => state.end(null) };
  }
  const query = selectionQuery(session.selection);
  if (session.cursor) query.set("since", session.cursor);
  query.set("access_token", session.token);
  const source = new EventSource(`${session.base}/v1/events?${query}`);
  let opened = false;
  let subscribed = false;
  const data = (event) => {
    try {
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  };
  source.addEventListener("open", () => {
    opened = true;
  });
  source.addEventListener("subscribed", (event) => {
    subscribed = true;
    link.subscribed(data(event)?.cursor ?? event.lastEventId);
  });
  source.addEventListener("command", (event) => {
    const view = data(event);
    if (view) link.command(view, event.lastEventId || void 0);
  });
  source.addEventListener("reset", (event) => link.reset(data(event)?.cursor ?? event.lastEventId));
  source.addEventListener("renew", () => {
    session.credential.get(true).catch(() => {
    });
  });
  source.addEventListener("error", () => {
    source.close();
    state.end({ connected: subscribed, now: opened, unauthorized: !opened });
  });
  return {
    close() {
      state.end(null);
      source.close();
    }
  };
}
function openChangeFeed(session, link) {
  const state = once(link);
  const abort = new AbortController();
  let cursor = session.cursor;
  let subscribed = false;
  const poll = async () => {
    while (!state.ended) {
      const query = "ids" in session.selection ? selectionQuery(session.selection) : new URLSearchParams();
      if (cursor) query.set("since", cursor);
      query.set("wait", subscribed ? String(FEED_WAIT_S) : "0");
      const { status, data } = await request(session.base, session.credential, "GET", `/v1/changes?${query}`, {
        signal: abort.signal,
        accept: [400, 409, 410]
      });
      if (state.ended) return;
      if (status === 400) {
        if (data?.code !== "bad_cursor" || !cursor) throw new Error(data?.detail ?? "bad request");
        cursor = null;
        link.reset(null);
        continue;
      }
      if (status === 409 || status === 410) {
        cursor = typeof data?.cursor === "string" ? data.cursor : null;
        link.reset(cursor);
        continue;
      }
      const changes = data;
      for (const view of changes.changes) link.command(view);
      cursor = changes.cursor;
      if (!subscribed) {
        subscribed = true;
        link.subscribed(cursor);
      } else {
        link.moved(cursor);
      }
    }
  };
  poll().catch(() => state.end({ connected: subscribed }));
  return {
    close() {
      state.end(null);
      abort.abort();
    }
  };
}
var TRANSPORTS = (
  /** @type {const} */
  {
    websocket: openWebSocket,
    sse: openEventStream,
    feed: openChangeFeed
  }
);

// src/versions.js
var Versions = class {
  /** @type {Map<string, CommandView>} in the order of change, the latest last */
  #views = /* @__PURE__ */ new Map();
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
    this.#views.delete(view.id);
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
};
function isView(value) {
  if (!value || typeof value !== "object") return false;
  const view = (
    /** @type {{id?: unknown, version?: unknown}} */
    value
  );
  return typeof view.id === "string" && typeof view.version === "number";
}

// src/stream.js
var BACKOFF_MIN_MS = 500;
var BACKOFF_MAX_MS = 1e4;
var TRIES_UNPROVEN = 2;
var TRIES_PROVEN = 4;
var HELD_ALL = 1e4;
var RESTART_SPREAD_MS = 250;
function backoff(failures) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
function storage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}
var Stream = class {
  /** @type {Host} */
  #host;
  /** @type {Selection} */
  #selection;
  /** @type {(view: CommandView) => void} */
  #onView;
  /** @type {() => void} */
  #onReset;
  /** @type {string} */
  #storageKey;
  /** @type {import('./transports.js').Connection|null} */
  #connection = null;
  #transport = 0;
  #failures = 0;
  /** @type {Set<number>} transports that subscribed at least once */
  #proven = /* @__PURE__ */ new Set();
  #fresh = false;
  // ask the application for a new token before the next connect
  #timer = (
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    void 0
  );
  #closed = false;
  /** @type {Set<string>|null} ids to read once the next subscription is caught up (null: all) */
  #toRead = null;
  /** @type {ConnectionState} */
  state = "reconnecting";
  /** The views held, newest version of each (with `all`, of the commands changed last). */
  versions;
  /**
   * @param {Host} host
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onView each newer view
   * @param {() => void} [onReset] changes were skipped (with `all`: reload what you show)
   * @param {string} [name] names the stored cursor (default: the selection)
   */
  constructor(host, selection, onView, onReset = () => {
  }, name) {
    this.#host = host;
    this.#selection = selection;
    this.#onView = onView;
    this.#onReset = onReset;
    this.versions = new Versions("ids" in selection ? Infinity : HELD_ALL);
    const key = name ?? ("ids" in selection ? `ids:${[...selection.ids].sort().join(",")}` : "all");
    this.#storageKey = `cmdbus.cursor ${host.base} ${key}`;
  }
  /**
   * Follows `ids` from now on: reconnects at once with them, from the same cursor (still sound:
   * it covers what was followed, and a command followed anew is read once the new subscription
   * is caught up, so changes after the cursor reach it by the replay and the rest by the read).
   * @param {string[]} ids
   */
  update(ids) {
    const before = "ids" in this.#selection ? new Set(this.#selection.ids) : /* @__PURE__ */ new Set();
    this.#selection = { ids };
    if (this.#closed) return;
    if (this.#toRead) {
      for (const id of ids) if (!before.has(id)) this.#toRead.add(id);
    }
    if (this.#connection) {
      this.#connection.close();
      this.#connection = null;
      this.#retry(0);
    }
  }
  /** @returns {string|null} where the stream resumes from after a drop or a reload */
  get cursor() {
    return storage()?.getItem(this.#storageKey) ?? null;
  }
  /** @returns {TransportName} the transport in use or being tried */
  get transport() {
    return this.#host.transports[this.#transport];
  }
  start() {
    this.#connect();
  }
  /** Stops for good. `forget`: drop the stored cursor too (nothing more will be asked). */
  close(forget = false) {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#connection?.close();
    this.#connection = null;
    if (forget) storage()?.removeItem(this.#storageKey);
  }
  /** @param {string|null|undefined} cursor */
  #keep(cursor) {
    if (typeof cursor === "string" && cursor && !this.#closed) storage()?.setItem(this.#storageKey, cursor);
  }
  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#host.stateChanged();
  }
  /** @param {unknown} view */
  #offer(view) {
    const newer = this.versions.offer(view);
    if (newer && !this.#closed) this.#onView(newer);
  }
  /** Re-reads the followed commands, or only `only` (after a reset, and once caught up the
   *  first time or after an update, so that a command with no change since the cursor is shown
   *  too). */
  async #reread(only = (
    /** @type {Set<string>|null} */
    null
  )) {
    if (!("ids" in this.#selection)) return;
    await Promise.all(
      this.#selection.ids.filter((id) => !only || only.has(id)).map(
        (id) => this.#host.read(id).then(
          (view) => this.#offer(view),
          () => {
          }
          // the stream brings its next change anyway
        )
      )
    );
  }
  async #connect() {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    let token;
    try {
      token = await this.#host.credential.get(this.#fresh);
      this.#fresh = false;
    } catch {
      this.#failures++;
      this.#retry(backoff(this.#failures));
      return;
    }
    if (this.#closed) return;
    const index = this.#transport;
    const open = TRANSPORTS[this.#host.transports[index]];
    this.#connection = open(
      {
        base: this.#host.base,
        credential: this.#host.credential,
        token,
        selection: this.#selection,
        cursor: this.cursor
      },
      {
        subscribed: (cursor) => {
          this.#keep(cursor);
          this.#failures = 0;
          this.#proven.add(index);
          this.#setState(this.#host.transports[index] === "feed" ? "polling" : "live");
          const toRead = this.#toRead;
          this.#toRead = /* @__PURE__ */ new Set();
          this.#reread(toRead);
        },
        command: (view, cursor) => {
          this.#offer(view);
          this.#keep(cursor);
        },
        moved: (cursor) => this.#keep(cursor),
        reset: (cursor) => {
          if (cursor === null) storage()?.removeItem(this.#storageKey);
          this.#keep(cursor);
          this.#reread();
          this.#onReset();
        },
        closed: (ending) => this.#ended(index, ending)
      }
    );
  }
  /**
   * @param {number} index
   * @param {Ending} ending
   */
  #ended(index, ending) {
    this.#connection = null;
    if (this.#closed) return;
    this.#setState("reconnecting");
    if (ending.forbidden) {
      this.close();
      this.#host.failed(new Error("this credential may not read commands"));
      return;
    }
    if (ending.unauthorized) this.#fresh = true;
    if (ending.connected && ending.now) {
      this.#failures = 0;
      this.#retry(Math.round(Math.random() * RESTART_SPREAD_MS));
      return;
    }
    if (ending.connected) {
      this.#failures = 0;
      this.#retry(backoff(1));
      return;
    }
    this.#failures++;
    const tries = this.#proven.has(index) ? TRIES_PROVEN : TRIES_UNPROVEN;
    if (this.#failures >= tries && this.#host.transports.length > 1) {
      this.#transport = (index + 1) % this.#host.transports.length;
      const lapped = this.#transport === 0;
      this.#failures = 0;
      this.#retry(lapped ? backoff(tries + 1) : 0);
      return;
    }
    this.#retry(backoff(this.#failures));
  }
  /** @param {number} delay */
  #retry(delay) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }
};

// src/watch.js
var TERMINAL = Object.freeze(["success", "fail", "cancelled", "discarded"]);
var CommandFailed = class extends Error {
  /** @param {CommandView} view */
  constructor(view) {
    super(`command ${view.id} ended ${view.status}`);
    this.name = "CommandFailed";
    this.view = view;
  }
};
var isTerminal = (view) => TERMINAL.includes(view.status);
function commandWatch(held, follow) {
  const subscribers = /* @__PURE__ */ new Set();
  let waiters = [];
  let current = held;
  let unfollow = null;
  const settle = () => {
    if (!current || !isTerminal(current)) return;
    const view = current;
    for (const { resolve, reject, strict } of waiters) {
      if (strict && view.status !== "success") reject(new CommandFailed(view));
      else resolve(view);
    }
    waiters = [];
  };
  const stop = () => {
    unfollow?.();
    unfollow = null;
  };
  const idle = () => {
    if (subscribers.size === 0 && (waiters.length === 0 || current && isTerminal(current))) stop();
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
    close: stop
  };
}

// src/index.js
var MAX_IDS = 1e3;
var SUBMIT_TRIES = 5;
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function createClient(options) {
  return new Client(options);
}
var Client = class {
  #base;
  #credential;
  /** @type {TransportName[]} */
  #transports;
  /** @type {Set<Stream>} */
  #streams = /* @__PURE__ */ new Set();
  /** @type {Set<(state: ConnectionState) => void>} */
  #stateListeners = /* @__PURE__ */ new Set();
  /** @type {(error: Error) => void} */
  #onError;
  /** @type {ConnectionState} */
  #state = "reconnecting";
  /** @type {Map<string, Set<(view: CommandView) => void>>} watched id -> its watches */
  #watchers = /* @__PURE__ */ new Map();
  /** @type {Stream|null} the one stream of every watch() */
  #watched = null;
  /** @type {import('./versions.js').Versions|null} the views it held, kept while it is idle */
  #lastVersions = null;
  #rewatching = false;
  /** @param {ClientOptions} options */
  constructor({ url, token, transports, onError }) {
    this.#base = String(url).replace(/\/+$/, "");
    this.#credential = new Credential(token);
    const names = (
      /** @type {TransportName[]} */
      Object.keys(TRANSPORTS)
    );
    this.#transports = (transports ?? names).filter((name) => names.includes(name));
    if (this.#transports.length === 0) throw new Error(`transports: choose among ${names.join(", ")}`);
    this.#onError = onError ?? ((error) => console.error("cmdbus:", error));
  }
  /** @returns {ConnectionState} how changes arrive now (over every followed selection) */
  get state() {
    return this.#state;
  }
  /**
   * Calls `fn` whenever `state` changes; returns the unsubscribe.
   * @param {(state: ConnectionState) => void} fn
   */
  onState(fn) {
    this.#stateListeners.add(fn);
    return () => {
      this.#stateListeners.delete(fn);
    };
  }
  /**
   * Any call of the API: JSON in and out, the token renewed on a 401.
   * @param {string} method
   * @param {string} path e.g. `/v1/types`
   * @param {import('./http.js').RequestOptions} [options]
   */
  request(method, path, options) {
    return request(this.#base, this.#credential, method, path, options);
  }
  /**
   * Submits a command; retried on network errors, 429 and 5xx with the same idempotency key, so
   * the server runs it once however often it is sent.
   * @param {string} type
   * @param {unknown} payload
   * @param {SubmitOptions} [options]
   * @returns {Promise<CommandView>}
   */
  async submit(type, payload, options = {}) {
    const { idempotencyKey = crypto.randomUUID(), priority, orderingKey, maxAttempts, subject } = options;
    const body = { type, payload };
    if (priority !== void 0) body.priority = priority;
    if (orderingKey !== void 0) body.ordering_key = orderingKey;
    if (maxAttempts !== void 0) body.max_attempts = maxAttempts;
    if (subject !== void 0) body.subject = subject;
    for (let attempt = 1; ; attempt++) {
      try {
        const { data } = await this.request("POST", "/v1/commands", {
          body,
          headers: { "Idempotency-Key": idempotencyKey }
        });
        return data;
      } catch (error) {
        if (!(error instanceof ApiError) || !error.retryable || attempt >= SUBMIT_TRIES) throw error;
        await sleep(backoff(attempt));
      }
    }
  }
  /**
   * A command's view (`GET /v1/commands/{id}`).
   * @param {string} id
   * @returns {Promise<CommandView>}
   */
  async get(id) {
    const { data } = await this.request("GET", `/v1/commands/${encodeURIComponent(id)}`);
    return data;
  }
  /**
   * A page of commands, newest first (`GET /v1/commands`).
   * @param {ListFilter} [filter]
   * @returns {Promise<Page>}
   */
  async list(filter = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filter)) {
      if (value !== void 0 && value !== null) query.set(name, String(value));
    }
    const { data } = await this.request("GET", `/v1/commands${query.size ? `?${query}` : ""}`);
    return data;
  }
  /**
   * Follows one command until it ends. Every command watched through one client shares one
   * connection, whatever the number of watches.
   * @param {string} id
   * @returns {import('./watch.js').CommandWatch}
   */
  watch(id) {
    return commandWatch(this.#watched?.versions.get(id), (take) => {
      this.#addWatch(id, take);
      return () => this.#unwatch(id, take);
    });
  }
  /**
   * Follows many commands (chosen ids, at most 1,000) or every command in reach; `onChange` gets
   * each newer view. With `all`, `onReset` is called when changes were skipped: reload what you
   * show (with `ids`, the library re-reads them itself).
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onChange
   * @param {{ onReset?: () => void }} [options]
   * @returns {{ close(): void, readonly cursor: string|null }}
   */
  watchMany(selection, onChange, { onReset } = {}) {
    if ("ids" in selection && selection.ids.length > MAX_IDS) {
      throw new RangeError(`watchMany: at most ${MAX_IDS} ids (split them over several calls)`);
    }
    const picked = "ids" in selection ? { ids: [...selection.ids] } : { all: (
      /** @type {const} */
      true
    ) };
    const stream = this.#follow(picked, onChange, onReset ?? (() => {
    }));
    return {
      close: () => this.#drop(stream, false),
      get cursor() {
        return stream.cursor;
      }
    };
  }
  /** Stops following everything. */
  close() {
    for (const stream of this.#streams) stream.close();
    this.#streams.clear();
    this.#watchers.clear();
    this.#watched = null;
  }
  /**
   * @param {string} id
   * @param {(view: CommandView) => void} take
   */
  #addWatch(id, take) {
    const takers = this.#watchers.get(id) ?? /* @__PURE__ */ new Set();
    takers.add(take);
    if (takers.size === 1) {
      this.#watchers.set(id, takers);
      this.#rewatch();
    }
  }
  /**
   * @param {string} id
   * @param {(view: CommandView) => void} take
   */
  #unwatch(id, take) {
    const takers = this.#watchers.get(id);
    if (!takers?.delete(take) || takers.size > 0) return;
    this.#watchers.delete(id);
    this.#rewatch();
  }
  /** The watched ids changed: follow the new set on the shared stream, once per tick (a page
   *  that watches ten commands at once reconnects once). */
  #rewatch() {
    if (this.#rewatching) return;
    this.#rewatching = true;
    queueMicrotask(() => {
      this.#rewatching = false;
      const ids = [...this.#watchers.keys()];
      const stream = this.#watched;
      if (ids.length === 0) {
        if (stream) this.#drop(stream, false);
        this.#watched = null;
      } else if (stream) {
        stream.update(ids);
      } else {
        const versions = this.#lastVersions;
        this.#watched = this.#follow(
          { ids },
          (view) => {
            for (const take of [...this.#watchers.get(view.id) ?? []]) take(view);
          },
          () => {
          },
          "watch"
        );
        if (versions) this.#watched.versions = versions;
      }
      if (this.#watched) this.#lastVersions = this.#watched.versions;
    });
  }
  /**
   * @param {Selection} selection
   * @param {(view: CommandView) => void} onView
   * @param {() => void} onReset
   * @param {string} [name] names the stored cursor
   */
  #follow(selection, onView, onReset, name) {
    const stream = new Stream(
      {
        base: this.#base,
        credential: this.#credential,
        transports: this.#transports,
        read: async (id) => {
          try {
            return await this.get(id);
          } catch (error) {
            if (error instanceof ApiError && error.status === 404) return null;
            throw error;
          }
        },
        stateChanged: () => this.#stateChanged(),
        failed: (error) => this.#onError(error)
      },
      selection,
      onView,
      onReset,
      name
    );
    this.#streams.add(stream);
    stream.start();
    this.#stateChanged();
    return stream;
  }
  /**
   * @param {Stream} stream
   * @param {boolean} finished the command ended: its stored cursor is no longer needed
   */
  #drop(stream, finished) {
    stream.close(finished);
    this.#streams.delete(stream);
    this.#stateChanged();
  }
  /** The worst state over the followed selections: reconnecting, then polling, then live. */
  #stateChanged() {
    if (this.#streams.size === 0) return;
    const states = [...this.#streams].map((stream) => stream.state);
    const state = states.includes("reconnecting") ? "reconnecting" : states.includes("polling") ? "polling" : "live";
    if (state === this.#state) return;
    this.#state = state;
    for (const fn of this.#stateListeners) fn(state);
  }
};
export {
  ApiError,
  Client,
  CommandFailed,
  TERMINAL,
  Versions,
  createClient
};
