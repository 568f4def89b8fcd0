// The "Done when", in real headless Chromium against real
// wsfleet-node (and wsfleet-control + wsctl for the trace): pages served
// from two loopback origins, http://127.0.0.1:A (allowed by the node's
// policy) and http://localhost:B (not allowed).
//
// Run by `make test-browser` (part of `make test`): it builds the binaries
// into .bin, installs Chromium and playwright-core, then
// `npm run test:browser`. A failed test leaves screenshots, console logs,
// the page's recorded events and the processes' logs in
// sdk/js/test-results/<test name>/.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { classes } from '../../classes.js';
import {
  freePort, launchBrowser, scenario, sleep, startControl, startNode, startPages, startProxy, tempDir, until, waitEvent, events, wsctl,
} from './harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * Creates a client in the page (recording its events in window.log) and
 * starts it; returns its index.
 * @param {import('playwright-core').Page} page
 */
function startClient(page, url, options = {}) {
  return page.evaluate(([url, options]) => {
    const i = window.newClient(url, options);
    window.clients[i].connect();
    return i;
  }, [url, options]);
}

/**
 * Calls client i's method in the page and waits for its promise, at most
 * ms: 'ok', or the rejection's code.
 * @param {import('playwright-core').Page} page
 */
function call(page, i, method, args, ms = 10_000) {
  return page.evaluate(async ([i, method, args, ms]) => {
    const timeout = new Promise((resolve) => setTimeout(() => resolve(`no answer within ${ms} ms`), ms));
    const done = window.clients[i][method](...args).then(() => 'ok', (e) => `rejected: ${e.code ?? e}`);
    return Promise.race([done, timeout]);
  }, [i, method, args, ms]);
}

const welcomed = (page, i, n = 1, ms = 15_000) =>
  until(async () => (await events(page, 'welcome')).filter((e) => e.client === i).length >= n, ms, `welcome #${n} of client ${i}`);

const failureOf = (page, i, pred = () => true, ms = 15_000) =>
  waitEvent(page, (e) => e.type === 'failure' && e.client === i && pred(e), ms, `a failure of client ${i}`);

/** A policy that allows the page origin A (and clients without an Origin). */
const allow = (A, extra = {}) => ({ origins: { allow: [`http://127.0.0.1:${A}`], allow_missing: true }, ...extra });

scenario(test, 'an allowed origin connects and gets what another client publishes', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const port = await freePort();
  // A short heartbeat, so that the app heartbeat is exercised below.
  await startNode(w, { port, dir, policy: allow(A, { heartbeat: { interval: '1s', timeout: '2s' } }) });
  const url = `ws://127.0.0.1:${port}/ws`;

  const sub = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const s = await startClient(sub, url);
  await welcomed(sub, s);
  assert.equal(await call(sub, s, 'subscribe', ['room:1']), 'ok');

  const pub = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const p = await startClient(pub, url);
  await welcomed(pub, p);
  assert.equal(await call(pub, p, 'publish', ['room:1', { text: 'hello from another page' }]), 'ok');

  const msg = await waitEvent(sub, (e) => e.type === 'message' && e.channel === 'room:1', 10_000, 'the message');
  assert.deepEqual(msg.data, { text: 'hello from another page' });
  const welcome = (await events(sub, 'welcome'))[0];
  assert.match(welcome.trace_id, /^[0-9a-f]{32}$/);
  assert.equal(welcome.node_id, 'browser-1');
  assert.equal(welcome.heartbeat_interval_ms, 1000, 'the welcome announces the policy heartbeat');
  assert.equal(welcome.heartbeat_timeout_ms, 2000);

  // Quiet for well past the heartbeat timeout: the page's pings are
  // answered with pongs, so neither side calls the connection dead.
  await sleep(3_500);
  assert.deepEqual((await events(sub, 'failure')).concat(await events(pub, 'failure')), []);
  assert.equal(await sub.evaluate((i) => window.clients[i].state, s), 'connected');
});

scenario(test, 'a disallowed origin gets origin_rejected and what to do through /ws/explain, and stops', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const B = await startPages(w);
  const port = await freePort();
  await startNode(w, { port, dir, policy: allow(A) });
  const proxy = await startProxy(w, port);

  const page = await w.openPage(browser, `http://localhost:${B}/`);
  const c = await startClient(page, `ws://127.0.0.1:${proxy.port}/ws`, { minBackoffMs: 50, maxBackoffMs: 100 });
  const f = await failureOf(page, c);
  assert.equal(f.class, 'origin_rejected');
  assert.equal(f.retryable, false);
  assert.equal(f.what_to_do, classes.origin_rejected.whatToDo);
  assert.equal(f.message, classes.origin_rejected.message);
  assert.equal(f.close_code, 1006, 'the browser hides the 403');
  assert.equal(f.node_id, 'browser-1', 'the node explained it');
  assert.equal(proxy.explains().length, 1);
  await waitEvent(page, (e) => e.type === 'state' && e.client === c && e.state === 'closed', 5_000, 'state closed');
  await sleep(1_000); // ten backoffs' worth: a terminal class makes no second attempt
  assert.equal(proxy.handshakes().length, 1);
  assert.equal((await events(page, 'retry')).length, 0);
});

scenario(test, 'with reject_with: close a disallowed origin sees 4403 in the CloseEvent, and the SDK needs no explain', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const B = await startPages(w);
  const port = await freePort();
  await startNode(w, { port, dir, policy: allow(A, { handshake: { reject_with: 'close' } }) });
  const proxy = await startProxy(w, port);
  const page = await w.openPage(browser, `http://localhost:${B}/`);

  // A page without the SDK: a plain WebSocket.
  const plain = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    setTimeout(() => resolve({ code: -1, reason: 'no close within 10 s' }), 10_000);
  }), `ws://127.0.0.1:${port}/ws?trace_id=plain-page`);
  assert.deepEqual(plain, { code: 4403, reason: 'origin_rejected' });

  const c = await startClient(page, `ws://127.0.0.1:${proxy.port}/ws`);
  const f = await failureOf(page, c);
  assert.equal(f.class, 'origin_rejected');
  assert.equal(f.close_code, 4403);
  assert.equal(f.retryable, false);
  assert.equal(f.what_to_do, classes.origin_rejected.whatToDo);
  assert.equal(proxy.explains().length, 0, 'the close code says it all');
  await waitEvent(page, (e) => e.type === 'state' && e.client === c && e.state === 'closed', 5_000, 'state closed');
});

scenario(test, 'node killed: reconnect attempts follow the full-jitter backoff bounds, no tight loop', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const port = await freePort();
  const node = await startNode(w, { port, dir, policy: allow(A) });
  const proxy = await startProxy(w, port);
  const min = 200;
  const max = 1_000;
  const page = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const c = await startClient(page, `ws://127.0.0.1:${proxy.port}/ws`, { minBackoffMs: min, maxBackoffMs: max });
  await welcomed(page, c);

  await node.kill();
  const killedAt = Date.now();
  const window = 8_000;
  await sleep(window);
  const attempts = proxy.handshakes().filter((h) => h.at >= killedAt && h.at < killedAt + window);

  // Attempt k (from 0) waits uniform [0, cap_k], cap_k = min(max, min·2^k),
  // after attempt k-1 failed; failing costs a refused connection and an
  // explain that fails the same way: well under `slack` here.
  const slack = 1_000;
  const cap = (k) => Math.min(max, min * 2 ** k);
  const gaps = attempts.map((a, k) => a.at - (k === 0 ? killedAt : attempts[k - 1].at));
  gaps.forEach((g, k) => assert.ok(g <= cap(k) + slack, `attempt ${k} came ${g} ms after the one before; cap ${cap(k)} ms`));
  // At least one attempt per (max + slack); and no tight loop: with
  // delays uniform in [0, 1 s] after the ramp, 8 s hold about 18
  // attempts; 40 would need the sum of ~37 uniform delays to stay under
  // 8 s (mean 18 s) — never, unless the delays are not there.
  const lower = Math.floor(window / (max + slack));
  assert.ok(attempts.length >= lower, `${attempts.length} attempts in ${window} ms; want at least ${lower}`);
  assert.ok(attempts.length <= 40, `${attempts.length} attempts in ${window} ms: a tight loop`);
  // The page's own account agrees: one retry per attempt, each delay under its cap.
  const retries = (await events(page, 'retry')).filter((e) => e.client === c);
  retries.forEach((r) => assert.ok(r.delay_ms < cap(r.attempt), `retry ${r.attempt}: ${r.delay_ms} ms`));
  const failures = (await events(page, 'failure')).filter((e) => e.client === c);
  assert.equal(failures[0].class, 'client_connection_lost', 'the open connection was lost; the node cannot explain');
  assert.ok(failures.slice(1).every((f) => f.class === 'client_unreachable'), `classes: ${failures.map((f) => f.class)}`);
});

scenario(test, 'a 429 makes the next attempt wait at least Retry-After', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const port = await freePort();
  // One handshake per second, no burst: a second handshake within the
  // second is refused with 429 and Retry-After: 1.
  await startNode(w, { port, dir, policy: allow(A, { limits: { handshakes_per_second: 1, handshake_burst: 1 } }) });
  const proxy = await startProxy(w, port);
  const page = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  // Without Retry-After the next attempt would come within 100 ms.
  const opts = { minBackoffMs: 50, maxBackoffMs: 100 };

  let c = -1;
  let f;
  for (let round = 0; round < 3 && !f; round++) {
    // The token of this second goes to a plain WebSocket from the same page…
    const opened = await page.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(true);
      ws.onclose = () => resolve(false);
    }), `ws://127.0.0.1:${port}/ws`);
    if (!opened) {
      await sleep(1_100);
      continue;
    }
    // …so the SDK's first attempt, right after, is refused.
    const before = proxy.handshakes().length;
    c = await startClient(page, `ws://127.0.0.1:${proxy.port}/ws`, opts);
    const first = await failureOf(page, c, () => true, 10_000).catch(() => null);
    if (first?.class === 'rate_limited') {
      f = first;
      f.index = before;
    } else {
      await page.evaluate((i) => window.clients[i].close(), c);
      await sleep(1_100);
    }
  }
  assert.ok(f, 'no 429 in three rounds');
  assert.ok(f.retry_after_s >= 1, `retry_after_s ${f.retry_after_s}`);
  await welcomed(page, c, 1, 10_000);
  const hs = proxy.handshakes();
  const gap = hs[f.index + 1].at - hs[f.index].at;
  assert.ok(gap >= f.retry_after_s * 1000, `next attempt ${gap} ms after the 429; Retry-After ${f.retry_after_s} s`);
});

scenario(test, 'after the node restarts, the client resubscribes and gets what is published after the restart', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const port = await freePort();
  const node = await startNode(w, { port, dir, policy: allow(A) });
  const url = `ws://127.0.0.1:${port}/ws`;
  const sub = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const s = await startClient(sub, url, { minBackoffMs: 100, maxBackoffMs: 500 });
  await welcomed(sub, s);
  assert.equal(await call(sub, s, 'subscribe', ['news']), 'ok');

  await node.kill();
  await failureOf(sub, s);
  await startNode(w, { port, dir, policy: allow(A) });
  await welcomed(sub, s, 2, 15_000);

  const pub = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const p = await startClient(pub, url);
  await welcomed(pub, p);
  // The resubscribe's ack may still be on its way: publish until one arrives.
  await until(async () => {
    await call(pub, p, 'publish', ['news', { after: 'restart' }]);
    return (await events(sub, 'message')).some((e) => e.channel === 'news');
  }, 10_000, 'a message after the restart');
  const msg = (await events(sub, 'message')).find((e) => e.channel === 'news');
  assert.deepEqual(msg.data, { after: 'restart' });
});

scenario(test, 'a page whose node is down reports client_* failures that wsctl trace shows once a node is up', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const control = await startControl(w, dir);
  const set = await wsctl(control.addr, 'policy', 'set', `origins.allow=http://127.0.0.1:${A}`, '-m', 'browser test');
  assert.equal(set.code, 0, `wsctl policy set: ${set.stderr}`);

  const port = await freePort(); // nothing listens there yet
  const page = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  const c = await startClient(page, `ws://127.0.0.1:${port}/ws`, { minBackoffMs: 200, maxBackoffMs: 1_000 });
  const f = await failureOf(page, c, (e) => e.class === 'client_unreachable');

  await startNode(w, { port, dir, control: control.addr });
  await welcomed(page, c, 1, 20_000);
  await waitEvent(page, (e) => e.type === 'reported' && e.status === 202, 10_000, 'the client report');

  // Nodes hand events to the control plane within about a second.
  const out = await until(async () => {
    const r = await wsctl(control.addr, 'trace', f.trace_id);
    return r.code === 0 ? r.stdout : null;
  }, 20_000, `wsctl trace ${f.trace_id}`);
  // The client's view, as the page saw it, with the node that took the report.
  assert.ok(out.includes(f.trace_id), out);
  assert.match(out, /client saw: client_unreachable at \S+ url=ws:\/\/127\.0\.0\.1:\d+\/ws\?trace_id=[0-9a-f]{32} detail=close 1006 before the open/, out);
  assert.match(out, /reported: .* to browser-1 \(pool default\)/, out);
  assert.match(out, new RegExp(`origin: +http://127\\.0\\.0\\.1:${A}`), out);
}, 60_000);

scenario(test, 'offline, the page makes no attempts; back online it dials at once', async (w) => {
  const dir = tempDir(w);
  const A = await startPages(w);
  const port = await freePort();
  const node = await startNode(w, { port, dir, policy: allow(A) });
  const proxy = await startProxy(w, port);
  const page = await w.openPage(browser, `http://127.0.0.1:${A}/`);
  // Backoff so long that only the online event explains a quick attempt.
  const c = await startClient(page, `ws://127.0.0.1:${proxy.port}/ws`, { minBackoffMs: 60_000, maxBackoffMs: 60_000 });
  await welcomed(page, c);

  await page.context().setOffline(true);
  assert.equal(await page.evaluate(() => navigator.onLine), false);
  await node.kill();
  await failureOf(page, c);
  const attempts = proxy.handshakes().length;
  await sleep(1_500);
  assert.equal(proxy.handshakes().length, attempts, 'an attempt while offline');

  await startNode(w, { port, dir, policy: allow(A) });
  const t0 = Date.now();
  await page.context().setOffline(false);
  await welcomed(page, c, 2, 10_000);
  // The attempt came from the online event: within moments, and before
  // the retry timer was due (a timer that fell due while offline dialled
  // nothing: that attempt waited for the network).
  const retry = (await events(page, 'retry')).find((e) => e.client === c);
  const dial = (await events(page, 'state')).find((e) => e.client === c && e.state === 'connecting' && e.at >= t0);
  assert.ok(dial, 'no attempt after going online');
  assert.ok(dial.at - t0 < 2_000, `first attempt ${dial.at - t0} ms after going online`);
  const due = retry.at + retry.delay_ms;
  if (due > t0) assert.ok(dial.at < due, `the attempt came when the timer was due (${due - t0} ms)`);
});
