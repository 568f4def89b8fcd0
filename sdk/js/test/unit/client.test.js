// Unit tests of the client against FakeNode, on Node >= 22 (global
// WebSocket). Backoffs are small so every test takes well under a few
// seconds; every wait is bounded.

import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';

import { Client, backoffDelay, classes, newTraceId, parseRejectReason, userMessage } from '../../index.js';
import { FakeNode, next, until } from './fakenode.js';

const fast = { minBackoffMs: 20, maxBackoffMs: 80, openTimeoutMs: 2000, explainTimeoutMs: 2000, requestTimeoutMs: 2000 };

/** @type {(() => Promise<void> | void)[]} */
let cleanups = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function fakeNode(port) {
  const n = await new FakeNode().listen(port);
  cleanups.push(() => n.close());
  return n;
}

function client(url, opts = {}) {
  const c = new Client(url, { ...fast, ...opts });
  cleanups.push(() => c.close());
  return c;
}

/** Records every event of c. */
function record(c) {
  const seen = [];
  for (const t of ['state', 'welcome', 'failure', 'retry', 'message', 'servererror', 'reported']) {
    c.addEventListener(t, (ev) => seen.push({ type: t, ...ev.detail }));
  }
  return seen;
}

/** A port nothing listens on (for now). */
async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = /** @type {net.AddressInfo} */ (s.address());
  await new Promise((r) => s.close(r));
  return port;
}

test('the tests run on Node >= 22, the oldest the SDK supports (global WebSocket)', () => {
  const major = Number(process.versions.node.split('.')[0]);
  assert.ok(major >= 22, `Node ${process.versions.node}: run through npm test, which puts the pinned Node 22 first on PATH`);
  assert.equal(typeof globalThis.WebSocket, 'function');
});

describe('pure helpers', () => {
  test('full-jitter delays stay within [0, min(max, min*2^attempt)]', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const cap = Math.min(20_000, 500 * 2 ** attempt);
      assert.equal(backoffDelay(attempt, 500, 20_000, 0, () => 0), 0);
      assert.equal(backoffDelay(attempt, 500, 20_000, 0, () => 0.999999), Math.floor(0.999999 * cap));
      const d = backoffDelay(attempt, 500, 20_000);
      assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} outside [0, ${cap})`);
    }
  });

  test('a delay is never below retry_after_s', () => {
    assert.equal(backoffDelay(0, 500, 20_000, 3, () => 0.5), 3000);
    assert.equal(backoffDelay(10, 500, 20_000, 3, () => 0.5), 10_000);
  });

  test('trace ids are 32 hex digits and differ', () => {
    const a = newTraceId();
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.notEqual(a, newTraceId());
  });

  test('a reject reason gives the class and retry_after_s', () => {
    assert.deepEqual(parseRejectReason('rate_limited; retry_after_s=7'), { name: 'rate_limited', retryAfterS: 7 });
    assert.deepEqual(parseRejectReason('origin_rejected'), { name: 'origin_rejected', retryAfterS: 0 });
    assert.deepEqual(parseRejectReason('capacity; retry_after_s=x'), { name: 'capacity', retryAfterS: 0 });
  });

  test('messages can be overridden per class', () => {
    assert.equal(userMessage('origin_rejected', { origin_rejected: 'Ce site…' }), 'Ce site…');
    assert.equal(userMessage('origin_rejected'), classes.origin_rejected.message);
    assert.equal(userMessage('no_such_class'), classes.unspecified.message);
  });

  test('bad options and URLs are refused at construction', () => {
    assert.throws(() => new Client('ftp://x/ws'), TypeError);
    assert.throws(() => new Client('ws://x/ws', { minBackoffMs: -1 }), TypeError);
    assert.throws(() => new Client('ws://x/ws', { minBackoffMs: 10, maxBackoffMs: 5 }), TypeError);
  });
});

describe('client against a fake node', () => {
  test('connects, gets its welcome, subscribes and gets messages; publish resolves on its ack', async () => {
    const node = await fakeNode();
    const c = client(node.url);
    const seen = record(c);
    const welcome = next(c, 'welcome');
    c.connect();
    assert.equal(c.state, 'connecting');
    const w = await welcome;
    assert.equal(c.state, 'connected');
    assert.equal(w.node_id, 'fake-1');
    assert.match(node.handshakes[0].traceId, /^[0-9a-f]{32}$/);
    assert.equal(w.trace_id, node.handshakes[0].traceId);

    const got = [];
    await c.subscribe('news', (data) => got.push(data));
    const sub = node.frames.find((f) => f.type === 'subscribe');
    assert.equal(typeof sub.id, 'string', 'subscribe carries an id');
    await c.publish('news', { n: 1 });
    assert.equal(typeof node.frames.find((f) => f.type === 'publish').id, 'string');
    await until(() => got.length === 1, 2000, 'the message');
    assert.deepEqual(got, [{ n: 1 }]);
    assert.deepEqual(seen.filter((e) => e.type === 'state').map((e) => e.state), ['connecting', 'connected']);
  });

  test('publish rejects with the node code on an error frame, and at once when not connected', async () => {
    const node = await fakeNode();
    node.refuse.set('forbidden', 'not_allowed');
    const c = client(node.url);
    await assert.rejects(c.publish('x', 1), { code: 'disconnected' });
    const welcome = next(c, 'welcome');
    c.connect();
    await welcome;
    await assert.rejects(c.publish('forbidden', 1), { code: 'not_allowed' });
    await assert.rejects(c.subscribe('forbidden'), { code: 'not_allowed' });
    assert.deepEqual(c.channels, [], 'a refused channel is not resubscribed');
  });

  test('each attempt has a fresh trace id, and never two sockets at once', async () => {
    const node = await fakeNode();
    node.decide = () => (node.handshakes.length < 4 ? { status: 503, class: 'capacity' } : 'accept');
    const c = client(node.url);
    const welcome = next(c, 'welcome', 5000);
    c.connect();
    await welcome;
    const ids = node.handshakes.map((h) => h.traceId);
    assert.equal(ids.length, 4);
    assert.equal(new Set(ids).size, 4, `trace ids repeat: ${ids}`);
    assert.ok(node.maxOpen <= 1);
  });

  test('a reject close 4403 is terminal: origin_rejected, state closed, no explain, no second attempt', async () => {
    const node = await fakeNode();
    node.decide = () => ({ closeCode: 4403, reason: 'origin_rejected' });
    const c = client(node.url);
    const seen = record(c);
    const failure = next(c, 'failure');
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'origin_rejected');
    assert.equal(f.retryable, false);
    assert.equal(f.close_code, 4403);
    assert.equal(f.message, classes.origin_rejected.message);
    assert.equal(f.what_to_do, classes.origin_rejected.whatToDo);
    assert.equal(f.signal, 'HTTP 403');
    assert.equal(f.trace_id, node.handshakes[0].traceId);
    await until(() => c.state === 'closed', 2000, 'state closed');
    await new Promise((r) => setTimeout(r, 300)); // several backoffs' worth
    assert.equal(node.handshakes.length, 1);
    assert.deepEqual(node.explains, []);
    assert.equal(seen.filter((e) => e.type === 'retry').length, 0);
  });

  test('a reject close 4429 with retry_after_s waits at least that long', async () => {
    const node = await fakeNode();
    node.decide = () => (node.handshakes.length === 1 ? { closeCode: 4429, reason: 'rate_limited; retry_after_s=1' } : 'accept');
    const c = client(node.url);
    const failure = next(c, 'failure');
    const welcome = next(c, 'welcome', 5000);
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'rate_limited');
    assert.equal(f.retry_after_s, 1);
    assert.equal(f.retryable, true);
    await welcome;
    const gap = node.handshakes[1].time - node.handshakes[0].time;
    assert.ok(gap >= 1000, `second attempt after ${gap} ms`);
  });

  test('an HTTP rejection is explained by /ws/explain, and its Retry-After honoured', async () => {
    const node = await fakeNode();
    node.decide = () => (node.handshakes.length === 1 ? { status: 429, class: 'rate_limited', retryAfterS: 1 } : 'accept');
    const c = client(node.url);
    const failure = next(c, 'failure');
    const welcome = next(c, 'welcome', 5000);
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'rate_limited');
    assert.equal(f.retry_after_s, 1);
    assert.equal(f.node_id, 'fake-1');
    assert.deepEqual(node.explains, [node.handshakes[0].traceId]);
    await welcome;
    assert.ok(node.handshakes[1].time - node.handshakes[0].time >= 1000);
  });

  test('a terminal class from explain stops the client', async () => {
    const node = await fakeNode();
    node.decide = () => ({ status: 403, class: 'origin_rejected', retryable: false });
    const c = client(node.url);
    const failure = next(c, 'failure');
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'origin_rejected');
    assert.equal(f.retryable, false);
    await until(() => c.state === 'closed', 2000, 'state closed');
    assert.equal(node.handshakes.length, 1);
  });

  test('explain 404 (something in front of the node refused) is client_handshake_failed, reported after the next welcome', async () => {
    const node = await fakeNode();
    // A proxy's 502: the node never hears of the attempt.
    node.decide = () => (node.handshakes.length === 1 ? { status: 502, proxy: true } : 'accept');
    const c = client(node.url);
    const failure = next(c, 'failure');
    const reported = next(c, 'reported', 5000);
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'client_handshake_failed');
    assert.match(f.detail, /HTTP 404/);
    const r = await reported;
    assert.equal(r.status, 202);
    assert.equal(node.reports.length, 1);
    assert.equal(node.reports[0].trace_id, node.handshakes[0].traceId);
    assert.equal(node.reports[0].class, 'client_handshake_failed');
    assert.equal(c.pendingReports, 0);
  });

  test('a dead port is client_unreachable, queued and reported once a node is up there', async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`);
    const seen = record(c);
    c.connect();
    await until(() => seen.filter((e) => e.type === 'failure').length >= 2, 5000, 'two failures');
    const failures = seen.filter((e) => e.type === 'failure');
    assert.equal(failures[0].class, 'client_unreachable');
    assert.ok(c.pendingReports >= 2);
    const node = await fakeNode(port);
    await until(() => node.reports.length >= 2, 5000, 'the reports');
    const ids = new Set(node.reports.map((r) => r.trace_id));
    for (const f of failures) assert.ok(ids.has(f.trace_id), `report of ${f.trace_id} missing`);
    // The failures seen while the port was dead are reported as
    // client_unreachable; an attempt that was in flight as the node came up
    // may fail otherwise and be reported too, which is not what this checks.
    const before = new Set(failures.map((f) => f.trace_id));
    const theirs = node.reports.filter((r) => before.has(r.trace_id));
    assert.ok(theirs.length >= 2);
    for (const r of theirs) {
      assert.equal(r.class, 'client_unreachable', `report ${JSON.stringify(r)}`);
      assert.ok(r.url.startsWith(`ws://127.0.0.1:${port}/ws?trace_id=`), `report url ${r.url}`);
    }
  });

  test('the report queue is bounded, oldest dropped', async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`, { minBackoffMs: 1, maxBackoffMs: 2, maxQueuedReports: 3 });
    const seen = record(c);
    c.connect();
    await until(() => seen.filter((e) => e.type === 'failure').length >= 6, 5000, 'six failures');
    assert.equal(c.pendingReports, 3);
  });

  test('no answer within the open timeout is client_handshake_timeout', async () => {
    const node = await fakeNode();
    node.decide = () => (node.handshakes.length === 1 ? 'hang' : 'accept');
    const c = client(node.url, { openTimeoutMs: 300 });
    const failure = next(c, 'failure');
    const welcome = next(c, 'welcome', 5000);
    const t0 = Date.now();
    c.connect();
    const f = await failure;
    assert.equal(f.class, 'client_handshake_timeout');
    assert.ok(Date.now() - t0 >= 300);
    await welcome;
  });

  test('after the node drops the connection, the client reconnects and resubscribes', async () => {
    const node = await fakeNode();
    const c = client(node.url);
    const got = [];
    const welcome = next(c, 'welcome');
    c.connect();
    await welcome;
    await c.subscribe('a', (d) => got.push(d));
    await c.subscribe('b', (d) => got.push(d));
    const failure = next(c, 'failure');
    const again = next(c, 'welcome', 5000);
    node.dropAll();
    const f = await failure;
    assert.equal(f.class, 'client_connection_lost'); // the node has no record: explain 404
    await again;
    await until(() => node.frames.filter((x) => x.type === 'subscribe').length === 4, 2000, 'resubscribes');
    // The ack has come back before the node sees the publish below: the
    // fake node answers in order.
    await new Promise((r) => setTimeout(r, 50));
    node.publish('a', 'after');
    node.publish('b', 'after-b');
    await until(() => got.length === 2, 2000, 'messages after the reconnect');
  });

  test('a close the node explains gets the node class (heartbeat_timeout)', async () => {
    const node = await fakeNode();
    const c = client(node.url);
    const welcome = next(c, 'welcome');
    c.connect();
    await welcome;
    const id = node.handshakes[0].traceId;
    node.records.set(id, { class: 'heartbeat_timeout', retryable: true, retry_after_s: 0, what_to_do: 'tune heartbeat' });
    const failure = next(c, 'failure');
    node.dropAll();
    const f = await failure;
    assert.equal(f.class, 'heartbeat_timeout');
    assert.equal(f.message, classes.heartbeat_timeout.message);
  });

  test('the app heartbeat pings at the welcome interval; a silent node is dropped as client_connection_lost', async () => {
    const node = await fakeNode();
    node.welcome = { heartbeat_interval_ms: 150, heartbeat_timeout_ms: 1000 };
    const c = client(node.url);
    const welcome = next(c, 'welcome');
    c.connect();
    await welcome;
    await until(() => node.frames.filter((f) => f.type === 'ping').length >= 3, 3000, 'three pings');
    assert.equal(c.state, 'connected', 'answered pings keep the connection');
    node.answerPings = false;
    const failure = next(c, 'failure', 3000);
    const f = await failure;
    assert.equal(f.class, 'client_connection_lost');
    assert.match(f.detail, /no frame from the node for 1000 ms/);
    node.answerPings = true;
    await next(c, 'welcome', 5000);
  });

  test('messages can be overridden for translation', async () => {
    const node = await fakeNode();
    node.decide = () => ({ closeCode: 4403, reason: 'origin_rejected' });
    const c = client(node.url, { messages: { origin_rejected: 'Ce site ne peut pas se connecter.' } });
    const failure = next(c, 'failure');
    c.connect();
    assert.equal((await failure).message, 'Ce site ne peut pas se connecter.');
  });

  test('close() stops everything: no further attempts, state closed', async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`);
    const seen = record(c);
    c.connect();
    await until(() => seen.some((e) => e.type === 'retry'), 3000, 'a retry');
    c.close();
    assert.equal(c.state, 'closed');
    const n = seen.filter((e) => e.type === 'state' && e.state === 'connecting').length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.filter((e) => e.type === 'state' && e.state === 'connecting').length, n);
  });

  test('backoff grows with failed attempts and stays under the configured cap', async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`, { minBackoffMs: 10, maxBackoffMs: 40 });
    const retries = [];
    c.addEventListener('retry', (ev) => retries.push(ev.detail));
    c.connect();
    await until(() => retries.length >= 8, 5000, 'eight retries');
    c.close();
    retries.forEach((r, i) => {
      assert.equal(r.attempt, i);
      assert.ok(r.delay_ms < Math.min(40, 10 * 2 ** i), `retry ${i}: ${r.delay_ms} ms`);
    });
  });
});

describe('browser signals (window and document faked on Node)', () => {
  /** Installs a fake window: online/offline on globalThis, visibilitychange on document. */
  function fakeWindow() {
    const win = new EventTarget();
    const doc = new EventTarget();
    let online = true;
    const saved = {
      add: globalThis.addEventListener,
      remove: globalThis.removeEventListener,
      nav: Object.getOwnPropertyDescriptor(globalThis, 'navigator'),
      doc: Object.getOwnPropertyDescriptor(globalThis, 'document'),
    };
    globalThis.addEventListener = win.addEventListener.bind(win);
    globalThis.removeEventListener = win.removeEventListener.bind(win);
    Object.defineProperty(globalThis, 'navigator', { configurable: true, get: () => ({ onLine: online }) });
    doc.visibilityState = 'visible';
    Object.defineProperty(globalThis, 'document', { configurable: true, value: doc });
    cleanups.push(() => {
      globalThis.addEventListener = saved.add;
      globalThis.removeEventListener = saved.remove;
      if (saved.nav) Object.defineProperty(globalThis, 'navigator', saved.nav);
      else delete globalThis.navigator;
      if (saved.doc) Object.defineProperty(globalThis, 'document', saved.doc);
      else delete globalThis.document;
    });
    return {
      setOnline(v) {
        online = v;
        win.dispatchEvent(new Event(v ? 'online' : 'offline'));
      },
      setVisible(v) {
        doc.visibilityState = v ? 'visible' : 'hidden';
        doc.dispatchEvent(new Event('visibilitychange'));
      },
    };
  }

  test('no attempts while offline; back online, it dials at once', async () => {
    const port = await freePort();
    const win = fakeWindow();
    // Backoff long enough that only the online event can explain a quick attempt.
    const c = client(`ws://127.0.0.1:${port}/ws`, { minBackoffMs: 30_000, maxBackoffMs: 30_000 });
    const seen = record(c);
    c.connect();
    await until(() => seen.some((e) => e.type === 'retry'), 3000, 'a retry');
    win.setOnline(false);
    const dials = () => seen.filter((e) => e.type === 'state' && e.state === 'connecting').length;
    const before = dials();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(dials(), before);
    const node = await fakeNode(port);
    const t0 = Date.now();
    win.setOnline(true);
    await next(c, 'welcome', 3000);
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(node.handshakes.length, 1);
  });

  test('a retry due while offline waits for the online event', async () => {
    const port = await freePort();
    const win = fakeWindow();
    win.setOnline(false);
    const c = client(`ws://127.0.0.1:${port}/ws`);
    const seen = record(c);
    c.connect();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seen.filter((e) => e.type === 'state' && e.state === 'connecting').length, 0, 'no attempt while offline');
    assert.equal(c.state, 'disconnected');
    const node = await fakeNode(port);
    win.setOnline(true);
    await next(c, 'welcome', 3000);
    assert.equal(node.handshakes.length, 1);
  });

  test('the page visible again dials at once; a connected client checks its connection with a ping', async () => {
    const port = await freePort();
    const win = fakeWindow();
    const c = client(`ws://127.0.0.1:${port}/ws`, { minBackoffMs: 30_000, maxBackoffMs: 30_000 });
    const seen = record(c);
    c.connect();
    await until(() => seen.some((e) => e.type === 'retry'), 3000, 'a retry');
    win.setVisible(false);
    const node = await fakeNode(port);
    win.setVisible(true);
    await next(c, 'welcome', 3000);
    const pings = () => node.frames.filter((f) => f.type === 'ping').length;
    assert.equal(pings(), 0);
    win.setVisible(false);
    win.setVisible(true);
    await until(() => pings() === 1, 2000, 'a ping on becoming visible');
  });

  test('close() removes its window listeners', async () => {
    const win = fakeWindow();
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`, { minBackoffMs: 30_000, maxBackoffMs: 30_000 });
    const seen = record(c);
    c.connect();
    await until(() => seen.some((e) => e.type === 'retry'), 3000, 'a retry');
    c.close();
    const n = seen.length;
    win.setOnline(false);
    win.setOnline(true);
    win.setVisible(true);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.length, n, 'a closed client stays closed');
  });
});
