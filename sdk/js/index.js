// wsfleet client for browsers and Node >= 22: one WebSocket to a wsfleet
// node, reconnected with full-jitter backoff, channels resubscribed after
// every reconnect, and every failure explained — the node's own decision
// for that attempt (GET /ws/explain), or a close code's class with
// reject_with: close, or what only the client saw (client_* classes, sent
// to /ws/client-report once a node is reachable again).
//
// No dependencies: WebSocket, fetch, EventTarget, crypto.getRandomValues
// and timers are the platform's. See index.d.ts for the API and README.md
// for the semantics.

import { classes } from './classes.js';

export { classes };

/** Defaults of every ClientOptions field that has one. */
export const defaults = Object.freeze({
  minBackoffMs: 500,
  maxBackoffMs: 20_000,
  // A connection that stayed up this long resets the backoff: a node
  // that accepts and drops at once must not be redialled in a tight loop.
  stableAfterMs: 5_000,
  openTimeoutMs: 10_000,
  explainTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  // Bounds of the client_* reports waiting for a reachable node; the node
  // takes at most 32 per request.
  maxQueuedReports: 50,
  reportBatchSize: 32,
});

/** The states, in the order a connection usually goes through them. */
export const State = Object.freeze({
  connecting: 'connecting',
  connected: 'connected',
  disconnected: 'disconnected',
  closed: 'closed',
});

/**
 * The user message of a class: an override if one is given, else the
 * default (api/errclass UserMessage).
 * @param {string} cls
 * @param {Record<string, string>} [overrides]
 */
export function userMessage(cls, overrides) {
  return overrides?.[cls] ?? (classes[cls] ?? classes.unspecified).message;
}

/**
 * One full-jitter backoff delay: uniform in [0, min(max, min * 2^attempt)],
 * never below retryAfterS seconds when the node gave one.
 * @param {number} attempt failed attempts since the last stable connection, from 0
 * @param {number} minMs
 * @param {number} maxMs
 * @param {number} [retryAfterS]
 * @param {() => number} [random] uniform in [0, 1)
 */
export function backoffDelay(attempt, minMs, maxMs, retryAfterS = 0, random = Math.random) {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 52));
  const delay = Math.floor(random() * cap);
  return Math.max(delay, retryAfterS > 0 ? retryAfterS * 1000 : 0);
}

/** A fresh random trace id: 32 lower-case hex digits (128 bits). */
export function newTraceId() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

// Reject close codes (contract: errclass.RejectCloseCode), built from the
// table so that a code and its class cannot disagree.
const byRejectCode = new Map(
  Object.entries(classes)
    .filter(([, info]) => info.rejectCloseCode)
    .map(([name, info]) => [info.rejectCloseCode, name]),
);

// Close codes a node writes after the welcome, for when /ws/explain has no
// record; 1008 is shared by policy_violation and slow_consumer, and the
// node's record (explain) tells them apart.
const byCloseCode = new Map([
  [1000, 'normal'],
  [1001, 'server_shutdown'],
  [1002, 'protocol_error'],
  [1003, 'protocol_error'],
  [1007, 'protocol_error'],
  [1008, 'policy_violation'],
  [1009, 'message_too_big'],
  [1011, 'internal_error'],
]);

/**
 * Parses a reject close's reason: "<class>" or "<class>; retry_after_s=N".
 * @param {string} reason
 */
export function parseRejectReason(reason) {
  const [name, ...params] = String(reason ?? '').split(';').map((s) => s.trim());
  let retryAfterS = 0;
  for (const p of params) {
    const m = /^retry_after_s=(\d{1,6})$/.exec(p);
    if (m) retryAfterS = Number(m[1]);
  }
  return { name, retryAfterS };
}

const clientClasses = new Set([
  'client_unreachable',
  'client_handshake_failed',
  'client_handshake_timeout',
  'client_connection_lost',
]);

// Bounds the node applies too (it clips, never rejects for length); cut
// here so a report queue of 50 stays small.
const maxReportURL = 512;
const maxReportDetail = 256;

/** An Error from the node (error frame) or from the client (timeout, disconnect). */
export class WsfleetError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'WsfleetError';
    this.code = code;
  }
}

/**
 * Resolves url against the page (browsers) and turns http(s) into ws(s).
 * @param {string | URL} url
 */
function wsURL(url) {
  const base = globalThis.location?.href;
  const u = base ? new URL(url, base) : new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new TypeError(`wsfleet: url must be ws:, wss:, http: or https:, got ${u.protocol}`);
  }
  u.hash = '';
  return u;
}

/**
 * The node's HTTP endpoint next to the WebSocket path: /ws → /ws/explain.
 * @param {URL} ws
 * @param {string} name
 */
function sideURL(ws, name) {
  const u = new URL(ws.href);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/+$/, '') + '/' + name;
  u.search = '';
  return u;
}

/** @param {number} ms */
const clampTimer = (ms) => Math.max(0, Math.min(ms, 2 ** 31 - 1));

/**
 * A wsfleet client: see index.d.ts.
 */
export class Client extends EventTarget {
  /** @type {URL} */ #url;
  /** @type {Required<Omit<import('./index.js').ClientOptions, 'WebSocket' | 'fetch' | 'messages'>>} */ #opt;
  /** @type {Record<string, string>} */ #messages;
  /** @type {typeof WebSocket} */ #WebSocket;
  /** @type {typeof fetch} */ #fetch;

  /** @type {import('./index.js').State} */ #state = 'disconnected';
  #running = false; // connect() called and not closed since
  /** @type {Attempt | null} */ #att = null;
  #failures = 0; // failed attempts since the last stable connection
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #retryTimer;
  #waitingForNetwork = false; // a retry is due but the browser is offline
  /** @type {import('./index.js').Failure | null} */ #lastFailure = null;
  #nextId = 0;
  /** @type {Map<string, {handlers: Set<Function>, waiting: {resolve: Function, reject: Function}[]}>} */ #channels = new Map();
  /** @type {any[]} */ #reports = [];
  #reporting = false;
  #listening = false;

  /**
   * @param {string | URL} url ws(s):// (or http(s)://) URL of a node's WebSocket endpoint, e.g. wss://rt.example.com/ws
   * @param {import('./index.js').ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.#url = wsURL(url);
    /** @type {{-readonly [K in keyof typeof defaults]: number}} */
    const o = { ...defaults };
    for (const k of /** @type {(keyof typeof defaults)[]} */ (Object.keys(defaults))) {
      const v = options[k];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new TypeError(`wsfleet: option ${k} must be a non-negative number, got ${v}`);
      }
      o[k] = v;
    }
    if (o.minBackoffMs <= 0 || o.maxBackoffMs < o.minBackoffMs) {
      throw new TypeError('wsfleet: want 0 < minBackoffMs <= maxBackoffMs');
    }
    if (o.reportBatchSize < 1) throw new TypeError('wsfleet: reportBatchSize must be at least 1');
    this.#opt = o;
    this.#messages = { ...(options.messages ?? {}) };
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.#fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('wsfleet: no WebSocket (Node >= 22, a browser, or options.WebSocket)');
    }
  }

  /** The current state. */
  get state() {
    return this.#state;
  }

  /** The trace id of the current (or last) attempt. */
  get traceId() {
    return this.#att?.traceId ?? '';
  }

  /** The last failure, or null. */
  get lastFailure() {
    return this.#lastFailure;
  }

  /** Channels the client keeps subscribed to. */
  get channels() {
    return [...this.#channels.keys()];
  }

  /**
   * Starts connecting (no-op while already running). After close() or a
   * terminal failure it starts afresh.
   */
  connect() {
    if (this.#running) return;
    this.#running = true;
    this.#failures = 0;
    this.#listen(true);
    this.#dial();
  }

  /**
   * Closes the connection (1000) and stops reconnecting; state closed.
   * Pending publishes are rejected, pending subscribes too.
   */
  close() {
    if (!this.#running && this.#state === 'closed') return;
    this.#stop(null);
  }

  /**
   * @param {number} attempt
   * @param {number} delay
   * @param {import('./index.js').Failure | null} failure
   */
  #scheduleRetry(attempt, delay, failure) {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#emit('retry', { attempt, delay_ms: delay, failure });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#dial();
    }, clampTimer(delay));
  }

  #offline() {
    return globalThis.navigator?.onLine === false;
  }

  /** One attempt; the caller made sure no socket is open. */
  #dial() {
    if (!this.#running) return;
    if (this.#offline()) {
      // No attempts while offline: the 'online' event dials.
      this.#waitingForNetwork = true;
      this.#setState('disconnected');
      return;
    }
    this.#waitingForNetwork = false;
    const traceId = newTraceId();
    const url = new URL(this.#url.href);
    url.searchParams.set('trace_id', traceId);
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new this.#WebSocket(url.href);
    } catch (e) {
      // A URL the platform refuses (blocked port, mixed content): nothing
      // a retry changes.
      this.#stop(this.#failure('client_unreachable', { traceId, url: url.href, detail: String(e), retryable: false }));
      return;
    }
    const att = new Attempt(ws, traceId, url.href);
    this.#att = att;
    this.#setState('connecting');
    att.openTimer = setTimeout(() => this.#end(att, { timeout: true }), clampTimer(this.#opt.openTimeoutMs));
    ws.onopen = () => {
      att.opened = true;
    };
    ws.onmessage = (ev) => this.#onFrame(att, ev.data);
    ws.onclose = (ev) => this.#end(att, { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    // A close event normally follows an error, with what there is to
    // know; Node's WebSocket (undici) fires none after a failed handshake,
    // so an error not followed by a close soon ends the attempt as 1006.
    ws.onerror = () => {
      att.errorTimer ??= setTimeout(() => this.#end(att, { code: 1006 }), 100);
    };
  }

  /**
   * @param {Attempt} att
   * @param {unknown} data
   */
  #onFrame(att, data) {
    if (att !== this.#att || att.ended) return;
    att.lastFrameAt = Date.now();
    att.awaitingPong = false;
    if (typeof data !== 'string') return; // the node sends text frames only
    /** @type {any} */
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'welcome':
        this.#onWelcome(att, f);
        return;
      case 'message': {
        const ch = this.#channels.get(f.channel);
        if (ch) for (const h of ch.handlers) callSafely(h, f.data, f.channel);
        this.#emit('message', { channel: f.channel, data: f.data });
        return;
      }
      case 'subscribed':
      case 'unsubscribed':
      case 'published':
      case 'pong':
        this.#settle(att, f, null);
        return;
      case 'error': {
        const err = new WsfleetError(String(f.code ?? 'error'), String(f.message ?? ''));
        if (typeof f.id !== 'string' || !this.#settle(att, f, err)) {
          this.#emit('servererror', { code: err.code, message: err.message });
        }
        return;
      }
    }
  }

  /**
   * @param {Attempt} att
   * @param {any} f
   */
  #onWelcome(att, f) {
    if (att.welcomed) return;
    att.welcomed = true;
    att.welcomedAt = Date.now();
    clearTimeout(att.openTimer);
    att.stableTimer = setTimeout(() => {
      if (att === this.#att && !att.ended) this.#failures = 0;
    }, clampTimer(this.#opt.stableAfterMs));
    const interval = Number(f.heartbeat_interval_ms);
    const timeout = Number(f.heartbeat_timeout_ms);
    if (interval > 0 && timeout > 0) {
      att.hbInterval = interval;
      att.hbTimeout = timeout;
      att.pingAt = Date.now();
      this.#armHeartbeat(att);
    }
    this.#setState('connected');
    this.#emit('welcome', {
      trace_id: String(f.trace_id ?? att.traceId),
      node_id: String(f.node_id ?? ''),
      heartbeat_interval_ms: interval || 0,
      heartbeat_timeout_ms: timeout || 0,
    });
    for (const channel of this.#channels.keys()) this.#sendSubscribe(att, channel);
    this.#flushReports();
  }

  /** @param {Attempt} att */
  #armHeartbeat(att) {
    clearTimeout(att.hbTimer);
    const now = Date.now();
    let next = att.pingAt + att.hbInterval;
    if (att.awaitingPong) next = Math.min(next, att.lastFrameAt + att.hbTimeout);
    att.hbTimer = setTimeout(() => this.#heartbeat(att), clampTimer(Math.max(10, next - now)));
  }

  /**
   * Sends the application ping every interval; a connection with a ping
   * unanswered and no frame at all for the timeout is dead. A timer a
   * background tab delayed therefore sends a late ping rather than
   * declaring a quiet but live connection dead.
   * @param {Attempt} att
   */
  #heartbeat(att) {
    if (att !== this.#att || att.ended) return;
    const now = Date.now();
    if (att.awaitingPong && now - att.lastFrameAt >= att.hbTimeout) {
      this.#end(att, { heartbeat: true });
      return;
    }
    if (now - att.pingAt >= att.hbInterval) this.#ping(att);
    this.#armHeartbeat(att);
  }

  /** @param {Attempt} att */
  #ping(att) {
    att.pingAt = Date.now();
    if (this.#send(att, { type: 'ping' })) att.awaitingPong = true;
  }

  /**
   * @param {Attempt} att
   * @param {object} frame
   */
  #send(att, frame) {
    if (att.ended || att.ws.readyState !== 1) return false;
    try {
      att.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Sends a frame with an id and waits for its ack.
   * @param {Attempt} att
   * @param {Record<string, unknown>} frame
   * @param {number} timeoutMs 0: no timeout
   * @returns {Promise<any>}
   */
  #request(att, frame, timeoutMs) {
    const id = String(++this.#nextId);
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, timer: /** @type {any} */ (undefined), type: frame.type, channel: frame.channel };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          att.pending.delete(id);
          reject(new WsfleetError('timeout', `no ${frame.type} ack within ${timeoutMs} ms`));
        }, clampTimer(timeoutMs));
      }
      att.pending.set(id, p);
      if (!this.#send(att, { ...frame, id })) {
        att.pending.delete(id);
        clearTimeout(p.timer);
        reject(new WsfleetError('disconnected', 'not connected'));
      }
    });
  }

  /**
   * Resolves (err null) or rejects the request the frame answers.
   * @param {Attempt} att
   * @param {any} f
   * @param {WsfleetError | null} err
   */
  #settle(att, f, err) {
    if (typeof f.id !== 'string') return false;
    const p = att.pending.get(f.id);
    if (!p) return false;
    att.pending.delete(f.id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(f);
    return true;
  }

  /**
   * @param {Attempt} att
   * @param {string} channel
   */
  #sendSubscribe(att, channel) {
    this.#request(att, { type: 'subscribe', channel }, 0).then(
      () => {
        const ch = this.#channels.get(channel);
        if (!ch) return;
        for (const w of ch.waiting.splice(0)) w.resolve();
      },
      (err) => {
        if (err.code === 'disconnected') return; // resent after the next welcome
        const ch = this.#channels.get(channel);
        if (!ch) return;
        // The node refused the channel (bad name, not allowed): keeping it
        // would only resend the same refusal after every reconnect.
        this.#channels.delete(channel);
        for (const w of ch.waiting.splice(0)) w.reject(err);
        this.#emit('servererror', { code: err.code, message: err.message, channel });
      },
    );
  }

  /**
   * Subscribes to channel (kept across reconnects) and adds handler for its
   * messages. Resolves once the node confirmed the subscription.
   * @param {string} channel
   * @param {(data: any, channel: string) => void} [handler]
   * @returns {Promise<void>}
   */
  subscribe(channel, handler) {
    if (typeof channel !== 'string' || channel === '') {
      return Promise.reject(new TypeError('wsfleet: channel must be a non-empty string'));
    }
    let ch = this.#channels.get(channel);
    const fresh = !ch;
    if (!ch) {
      ch = { handlers: new Set(), waiting: [] };
      this.#channels.set(channel, ch);
    }
    if (handler) ch.handlers.add(handler);
    if (!fresh && ch.waiting.length === 0) return Promise.resolve(); // already in effect (or resent on welcome)
    const c = ch;
    const done = new Promise((resolve, reject) => c.waiting.push({ resolve, reject }));
    const att = this.#att;
    if (fresh && att && att.welcomed && !att.ended) this.#sendSubscribe(att, channel);
    return /** @type {Promise<void>} */ (done);
  }

  /**
   * Stops the subscription and drops its handlers. Resolves once the node
   * confirmed it, or at once when not connected.
   * @param {string} channel
   * @returns {Promise<void>}
   */
  async unsubscribe(channel) {
    const ch = this.#channels.get(channel);
    if (!ch) return;
    this.#channels.delete(channel);
    for (const w of ch.waiting.splice(0)) w.reject(new WsfleetError('unsubscribed', `unsubscribed from ${channel}`));
    const att = this.#att;
    if (!att || !att.welcomed || att.ended) return;
    try {
      await this.#request(att, { type: 'unsubscribe', channel }, this.#opt.requestTimeoutMs);
    } catch (e) {
      if (/** @type {WsfleetError} */ (e).code !== 'disconnected') throw e;
    }
  }

  /**
   * Publishes data (any JSON value) on channel. Resolves on the node's
   * ack; rejects on an error frame, after requestTimeoutMs, or when the
   * connection is down or drops first.
   * @param {string} channel
   * @param {unknown} data
   * @returns {Promise<void>}
   */
  async publish(channel, data) {
    const att = this.#att;
    if (!att || !att.welcomed || att.ended) throw new WsfleetError('disconnected', 'not connected');
    await this.#request(att, { type: 'publish', channel, data: data === undefined ? null : data }, this.#opt.requestTimeoutMs);
  }

  /**
   * The end of an attempt, whatever ended it: runs once per attempt.
   * @param {Attempt} att
   * @param {{code?: number, reason?: string, wasClean?: boolean, timeout?: boolean, heartbeat?: boolean, network?: boolean}} why
   */
  #end(att, why) {
    if (att.ended || att !== this.#att) return;
    att.ended = true;
    att.endedAt = Date.now();
    this.#dropSocket(att, 4000, 'wsfleet client: ' + (why.timeout ? 'open timeout' : why.heartbeat ? 'heartbeat timeout' : 'gone'));
    const wasUp = att.welcomed;
    if (wasUp && att.endedAt - att.welcomedAt >= this.#opt.stableAfterMs) this.#failures = 0;
    this.#setState('disconnected');
    this.#classify(att, why).then((failure) => this.#afterFailure(att, failure));
  }

  /**
   * Stops the socket of an attempt: timers, handlers, pending requests.
   * @param {Attempt} att
   * @param {number} code
   * @param {string} reason
   */
  #dropSocket(att, code, reason) {
    clearTimeout(att.openTimer);
    clearTimeout(att.hbTimer);
    clearTimeout(att.stableTimer);
    clearTimeout(att.errorTimer);
    const ws = att.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (ws.readyState === 0 || ws.readyState === 1) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
    for (const [id, p] of att.pending) {
      att.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new WsfleetError('disconnected', 'the connection closed before the ack'));
    }
  }

  /**
   * @param {import('./index.js').Failure} failure
   * @param {Attempt} att
   */
  #afterFailure(att, failure) {
    if (att !== this.#att || !this.#running) return; // close() or connect() since
    this.#lastFailure = failure;
    if (clientClasses.has(failure.class)) this.#queueReport(failure);
    if (!failure.retryable) {
      this.#stop(failure);
      return;
    }
    this.#emit('failure', failure);
    const attempt = this.#failures++;
    const delay = backoffDelay(attempt, this.#opt.minBackoffMs, this.#opt.maxBackoffMs, failure.retry_after_s);
    this.#scheduleRetry(attempt, delay, failure);
  }

  /**
   * Decides the class of an ended attempt.
   * @param {Attempt} att
   * @param {{code?: number, reason?: string, wasClean?: boolean, timeout?: boolean, heartbeat?: boolean}} why
   * @returns {Promise<import('./index.js').Failure>}
   */
  async #classify(att, why) {
    const base = { traceId: att.traceId, url: att.url, closeCode: why.code ?? 0 };
    if (why.timeout) {
      return this.#failure('client_handshake_timeout', {
        ...base,
        detail: att.opened ? `no welcome within ${this.#opt.openTimeoutMs} ms of the open` : `no open within ${this.#opt.openTimeoutMs} ms`,
      });
    }
    if (why.heartbeat) {
      return this.#failure('client_connection_lost', { ...base, detail: `no frame from the node for ${att.hbTimeout} ms` });
    }
    const code = why.code ?? 1006;
    const rejected = byRejectCode.get(code);
    if (rejected) {
      const r = parseRejectReason(why.reason ?? '');
      const cls = classes[r.name] ? r.name : rejected;
      return this.#failure(cls, { ...base, retryAfterS: r.retryAfterS, detail: `close ${code}${why.reason ? ' ' + why.reason : ''}` });
    }
    const seen = att.welcomed ? `close ${code} after the welcome` : att.opened ? `close ${code} before the welcome` : `close ${code} before the open`;
    const ex = await this.#explain(att.traceId);
    if (ex.body) {
      const cls = String(ex.body.class ?? 'unspecified');
      return this.#failure(cls, {
        ...base,
        retryAfterS: Number(ex.body.retry_after_s) || 0,
        retryable: typeof ex.body.retryable === 'boolean' ? ex.body.retryable : undefined,
        whatToDo: typeof ex.body.what_to_do === 'string' ? ex.body.what_to_do : undefined,
        signal: typeof ex.body.signal === 'string' ? ex.body.signal : undefined,
        nodeMessage: typeof ex.body.message === 'string' ? ex.body.message : undefined,
        nodeId: typeof ex.body.node_id === 'string' ? ex.body.node_id : '',
        detail: `${seen}; explained by the node`,
      });
    }
    if (att.welcomed) {
      const cls = code === 1006 ? 'client_connection_lost' : byCloseCode.get(code) ?? 'client_connection_lost';
      return this.#failure(cls, { ...base, detail: `${seen}; explain: ${ex.detail}` });
    }
    if (ex.reached) {
      // The node answered but has no record: what refused the handshake
      // was in front of it.
      return this.#failure('client_handshake_failed', { ...base, detail: `${seen}; explain: ${ex.detail}` });
    }
    return this.#failure('client_unreachable', { ...base, detail: `${seen}; explain: ${ex.detail}` });
  }

  /**
   * Asks the node what it decided for traceId.
   * @param {string} traceId
   * @returns {Promise<{body?: any, reached: boolean, detail: string}>}
   */
  async #explain(traceId) {
    if (typeof this.#fetch !== 'function') return { reached: false, detail: 'no fetch' };
    const u = sideURL(this.#url, 'explain');
    u.searchParams.set('trace_id', traceId);
    let res;
    try {
      res = await this.#fetch(u.href, {
        cache: 'no-store',
        credentials: 'omit',
        signal: AbortSignal.timeout(this.#opt.explainTimeoutMs),
      });
    } catch (e) {
      return { reached: false, detail: `${/** @type {Error} */ (e)?.name ?? 'Error'}: ${/** @type {Error} */ (e)?.message ?? e}` };
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      return { reached: true, detail: `HTTP ${res.status}` };
    }
    try {
      const body = await res.json();
      if (body && typeof body.class === 'string') return { body, reached: true, detail: 'HTTP 200' };
      return { reached: true, detail: 'HTTP 200 without a class' };
    } catch (e) {
      return { reached: true, detail: `HTTP 200, unreadable body: ${e}` };
    }
  }

  /**
   * @param {string} cls
   * @param {{traceId: string, url: string, closeCode?: number, detail?: string, retryAfterS?: number, retryable?: boolean, whatToDo?: string, signal?: string, nodeMessage?: string, nodeId?: string}} f
   * @returns {import('./index.js').Failure}
   */
  #failure(cls, f) {
    const info = classes[cls];
    const message = this.#messages[cls] ?? info?.message ?? f.nodeMessage ?? classes.unspecified.message;
    return {
      class: cls,
      message,
      what_to_do: f.whatToDo ?? info?.whatToDo ?? classes.unspecified.whatToDo,
      signal: f.signal ?? info?.signal ?? classes.unspecified.signal,
      trace_id: f.traceId,
      retryable: f.retryable ?? info?.retryable ?? true,
      retry_after_s: f.retryAfterS ?? 0,
      close_code: f.closeCode ?? 0,
      node_id: f.nodeId ?? '',
      url: f.url,
      detail: f.detail ?? '',
      time: Date.now(),
    };
  }

  /**
   * Ends everything: the socket, the retry timer, the listeners; state
   * closed. failure: why (a terminal failure), or null for close().
   * @param {import('./index.js').Failure | null} failure
   */
  #stop(failure) {
    this.#running = false;
    this.#waitingForNetwork = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const att = this.#att;
    if (att && !att.ended) {
      att.ended = true;
      this.#dropSocket(att, 1000, '');
    }
    this.#listen(false);
    const err = failure
      ? new WsfleetError(failure.class, failure.message)
      : new WsfleetError('closed', 'the client was closed');
    for (const ch of this.#channels.values()) for (const w of ch.waiting.splice(0)) w.reject(err);
    if (failure) {
      this.#lastFailure = failure;
      this.#emit('failure', failure);
    }
    this.#setState('closed');
  }

  /** @param {import('./index.js').Failure} f */
  #queueReport(f) {
    this.#reports.push({
      trace_id: f.trace_id,
      class: f.class,
      url: f.url.slice(0, maxReportURL),
      time: f.time,
      detail: f.detail.slice(0, maxReportDetail),
    });
    // Bounded, oldest dropped: a page offline for an hour must not grow.
    while (this.#reports.length > this.#opt.maxQueuedReports) this.#reports.shift();
  }

  /** The client_* reports still waiting for a reachable node. */
  get pendingReports() {
    return this.#reports.length;
  }

  /** Sends the queued reports to the node just reached, in batches. */
  async #flushReports() {
    if (this.#reporting || this.#reports.length === 0 || typeof this.#fetch !== 'function') return;
    this.#reporting = true;
    try {
      while (this.#reports.length > 0) {
        const batch = this.#reports.splice(0, this.#opt.reportBatchSize);
        let res;
        try {
          res = await this.#fetch(sideURL(this.#url, 'client-report').href, {
            method: 'POST',
            // text/plain: a simple request, no preflight; the node takes it.
            headers: { 'Content-Type': 'text/plain' },
            body: JSON.stringify({ reports: batch }),
            keepalive: true,
            credentials: 'omit',
            signal: AbortSignal.timeout(this.#opt.explainTimeoutMs),
          });
        } catch {
          // Not reachable after all: back in the queue for the next welcome.
          this.#reports.unshift(...batch);
          while (this.#reports.length > this.#opt.maxQueuedReports) this.#reports.shift();
          return;
        }
        await res.body?.cancel().catch(() => {});
        if (res.status === 429 || res.status >= 500) {
          this.#reports.unshift(...batch);
          while (this.#reports.length > this.#opt.maxQueuedReports) this.#reports.shift();
          return;
        }
        // 202, or a 4xx the same batch would get again: done with it.
        this.#emit('reported', { status: res.status, count: batch.length });
      }
    } finally {
      this.#reporting = false;
    }
  }

  /** @param {boolean} on */
  #listen(on) {
    const w = /** @type {any} */ (globalThis);
    if (typeof w.addEventListener !== 'function' || on === this.#listening) return;
    this.#listening = on;
    const doc = w.document;
    if (on) {
      w.addEventListener('online', this.#onOnline);
      w.addEventListener('offline', this.#onOffline);
      doc?.addEventListener?.('visibilitychange', this.#onVisibility);
    } else {
      w.removeEventListener('online', this.#onOnline);
      w.removeEventListener('offline', this.#onOffline);
      doc?.removeEventListener?.('visibilitychange', this.#onVisibility);
    }
  }

  // Back online or visible: a retry waiting for its delay (or for the
  // network) dials at once; an open connection is checked with a ping.
  #wake = () => {
    if (!this.#running) return;
    const att = this.#att;
    if (att && !att.ended) {
      if (att.welcomed && att.hbTimeout > 0 && !att.awaitingPong) {
        this.#ping(att);
        this.#armHeartbeat(att);
      }
      return;
    }
    if (this.#retryTimer !== undefined || this.#waitingForNetwork) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#dial();
    }
  };

  #onOnline = () => this.#wake();

  #onOffline = () => {
    if (!this.#running) return;
    // A retry due while offline would fail for nothing: park it.
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#waitingForNetwork = true;
    }
  };

  #onVisibility = () => {
    if (/** @type {any} */ (globalThis).document?.visibilityState === 'visible') this.#wake();
  };

  /** @param {import('./index.js').State} s */
  #setState(s) {
    if (s === this.#state) return;
    const previous = this.#state;
    this.#state = s;
    this.#emit('state', { state: s, previous });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** One WebSocket and what belongs to it. */
class Attempt {
  /**
   * @param {WebSocket} ws
   * @param {string} traceId
   * @param {string} url
   */
  constructor(ws, traceId, url) {
    this.ws = ws;
    this.traceId = traceId;
    this.url = url;
    this.opened = false;
    this.welcomed = false;
    this.welcomedAt = 0;
    this.ended = false;
    this.endedAt = 0;
    this.lastFrameAt = Date.now();
    this.pingAt = 0;
    this.awaitingPong = false;
    this.hbInterval = 0;
    this.hbTimeout = 0;
    /** @type {any} */ this.openTimer = undefined;
    /** @type {any} */ this.hbTimer = undefined;
    /** @type {any} */ this.stableTimer = undefined;
    /** @type {any} */ this.errorTimer = undefined;
    /** @type {Map<string, {resolve: Function, reject: Function, timer: any}>} */
    this.pending = new Map();
  }
}

/**
 * @param {Function} fn
 * @param {...unknown} args
 */
function callSafely(fn, ...args) {
  try {
    fn(...args);
  } catch (e) {
    // An app handler's exception must not break the client's frame loop.
    queueMicrotask(() => {
      throw e;
    });
  }
}
