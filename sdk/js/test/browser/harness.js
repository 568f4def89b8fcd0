// The browser tests' world: real wsfleet-node, wsfleet-control and wsctl
// processes (built into .bin by `make build`), two page servers on two
// loopback origins, a counting TCP proxy, and Debian's Chromium driven by
// playwright-core (never a browser download).
//
// Everything listens on 127.0.0.1; every wait is bounded; everything a test
// starts is stopped in its cleanup, so a failed test leaves no process.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sdkDir = path.resolve(here, '../..');
export const repoDir = path.resolve(sdkDir, '../..');
export const binDir = process.env.WSFLEET_BIN || path.join(repoDir, '.bin');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const resultsDir = path.join(sdkDir, 'test-results');

// The flags Chromium needs on a machine with a closed network: no
// background requests (they are refused, many at a time), no QUIC, no
// sandbox (CI runs as root). playwright-core adds --headless and a fresh
// --user-data-dir of its own.
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Resolves when cond() is truthy (awaited); polls every 25 ms, throws after ms. */
export async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A loopback port free at the time of the call. */
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = /** @type {net.AddressInfo} */ (s.address());
  await new Promise((r) => s.close(r));
  return port;
}

/** A fresh temporary directory, removed by the cleanup list. */
export function tempDir(w) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'wsfleet-browser-'));
  w.cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/**
 * A wsfleet process: JSON log lines on stderr, kept for failure messages.
 */
export class Proc {
  /**
   * @param {string} name
   * @param {string} bin
   * @param {string[]} args
   */
  constructor(name, bin, args) {
    this.name = name;
    this.logs = [];
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.child.on('error', (e) => this.logs.push(`spawn error: ${e.message}`));
    /** @type {((entry: any) => void)[]} */
    this.watchers = [];
    let buf = '';
    const onData = (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.logs.push(line);
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        for (const w of this.watchers) w(entry);
      }
    };
    this.child.stderr.setEncoding('utf8').on('data', onData);
    this.child.stdout.setEncoding('utf8').on('data', onData);
  }

  /** Waits for the log line whose msg is msg; returns its fields. */
  waitLog(msg, ms = 20_000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no "${msg}" within ${ms} ms:\n${this.logText()}`)), ms);
      this.exited.then(({ code, signal }) => {
        clearTimeout(t);
        reject(new Error(`${this.name} exited (${code ?? signal}) before "${msg}":\n${this.logText()}`));
      });
      this.watchers.push((e) => {
        if (e.msg === msg) {
          clearTimeout(t);
          resolve(e);
        }
      });
    });
  }

  logText() {
    return this.logs.slice(-80).join('\n');
  }

  /** SIGTERM, then SIGKILL after ms. */
  async stop(ms = 10_000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(t);
  }

  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * Starts wsfleet-node on 127.0.0.1:port with a policy (an object written as
 * a policy file; fields left out take their defaults), standalone unless
 * control names a control plane.
 * @param {World} w
 * @param {{port: number, policy?: object, control?: string, nodeId?: string, dir: string}} o
 */
export async function startNode(w, o) {
  const args = ['--listen', `127.0.0.1:${o.port}`, '--metrics-addr', '-', '--log-format', 'json', '--node-id', o.nodeId ?? 'browser-1'];
  if (o.policy) {
    // JSON is YAML: the policy file decoder takes either.
    const file = path.join(o.dir, `policy-${o.port}-${Date.now()}.json`);
    fs.writeFileSync(file, JSON.stringify(o.policy, null, 2));
    args.push('--policy-file', file);
  }
  if (o.control) {
    args.push('--control', o.control, '--cache-file', path.join(o.dir, `cache-${o.port}.json`), '--control-backoff-max', '1s');
  }
  const p = new Proc('wsfleet-node', path.join(binDir, 'wsfleet-node'), args);
  w.procs.push(p);
  w.cleanups.push(() => p.stop());
  await p.waitLog('node listening');
  return p;
}

/** Starts wsfleet-control (--dev, embedded store in dir). */
export async function startControl(w, dir) {
  const p = new Proc('wsfleet-control', path.join(binDir, 'wsfleet-control'), [
    '--dev', '--grpc-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--data-dir', path.join(dir, 'control'), '--log-format', 'json',
  ]);
  w.procs.push(p);
  w.cleanups.push(() => p.stop());
  const fields = await p.waitLog('control plane listening');
  return { proc: p, addr: String(fields.grpc_addr) };
}

/**
 * Runs wsctl against the control plane at addr.
 * @returns {Promise<{code: number, stdout: string, stderr: string}>}
 */
export function wsctl(addr, ...args) {
  return new Promise((resolve) => {
    execFile(
      path.join(binDir, 'wsctl'),
      ['--addr', addr, ...args],
      { env: { ...process.env, USER: 'browser-test', WSFLEET_TOKEN: '', WSFLEET_ADDR: '' }, timeout: 15_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const pageHTML = `<!doctype html>
<meta charset="utf-8">
<title>wsfleet browser test</title>
<script type="module">
import * as wsfleet from '/index.js';
window.wsfleet = wsfleet;
window.log = [];
window.clients = [];
// newClient records every event of the client in window.log, with the
// client's index and the time the page saw it.
window.newClient = (url, options) => {
  const c = new wsfleet.Client(url, options);
  const i = window.clients.push(c) - 1;
  for (const type of ['state', 'welcome', 'failure', 'retry', 'message', 'servererror', 'reported']) {
    c.addEventListener(type, (ev) => {
      window.log.push({ client: i, type, at: Date.now(), ...ev.detail });
      console.log('client', i, type, JSON.stringify(ev.detail));
    });
  }
  return i;
};
window.ready = true;
</script>
<body>wsfleet browser test</body>
`;

/**
 * Serves the SDK and a test page on 127.0.0.1:port (port 0: any).
 * @param {World} w
 */
export async function startPages(w, port = 0) {
  const files = { '/index.js': 'index.js', '/classes.js': 'classes.js' };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/' || u.pathname === '/page.html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(pageHTML);
      return;
    }
    const f = files[u.pathname];
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(fs.readFileSync(path.join(sdkDir, f)));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  w.cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  return /** @type {net.AddressInfo} */ (server.address()).port;
}

/**
 * A TCP proxy on 127.0.0.1 that records the first request line of every
 * connection (time, path) and passes the bytes on to 127.0.0.1:upstream.
 * When the upstream refuses, the client's connection is closed at once, as
 * a dead node's port would be. It counts what reaches the node's port even
 * while the node is down.
 * @param {World} w
 * @param {number} upstream
 */
export async function startProxy(w, upstream) {
  /** @type {{at: number, path: string, upgrade: boolean}[]} */
  const seen = [];
  const conns = new Set();
  const server = net.createServer((client) => {
    conns.add(client);
    client.on('close', () => conns.delete(client));
    client.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 16384) return;
      client.off('data', onData);
      client.pause();
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1');
      const [line] = text.split('\r\n');
      const [, p = ''] = line.split(' ');
      seen.push({ at: Date.now(), path: p, upgrade: /^upgrade:\s*websocket/im.test(text) });
      const up = net.connect(upstream, '127.0.0.1');
      conns.add(up);
      up.on('close', () => { conns.delete(up); client.destroy(); });
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('connect', () => {
        up.write(head);
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    client.on('data', onData);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  w.cleanups.push(() => new Promise((r) => { for (const c of conns) c.destroy(); server.close(r); }));
  const port = /** @type {net.AddressInfo} */ (server.address()).port;
  return {
    port,
    seen,
    /** WebSocket handshakes (trace ids in the path), oldest first. */
    handshakes: () => seen.filter((s) => s.upgrade && s.path.startsWith('/ws?')),
    explains: () => seen.filter((s) => s.path.startsWith('/ws/explain')),
  };
}

/**
 * Launches Chromium. Failing to start is a test failure, never a skip.
 * The caller closes it.
 */
export async function launchBrowser() {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: run 'make test-browser' as root (it installs Debian's chromium with apt-get), or 'apt-get install -y chromium', or set CHROMIUM to a Chromium binary`);
  }
  return chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true, timeout: 30_000 });
}

/**
 * One test's world: what it started (stopped in reverse order at the end,
 * pass or fail) and what to keep when it fails: every page's screenshot,
 * console and recorded events, and every process's log, under
 * test-results/<test name>/.
 */
export class World {
  /** @param {string} name */
  constructor(name) {
    this.name = name;
    /** @type {(() => any)[]} */
    this.cleanups = [];
    /** @type {{page: import('playwright-core').Page, lines: string[]}[]} */
    this.pages = [];
    /** @type {Proc[]} */
    this.procs = [];
  }

  async saveArtifacts() {
    const dir = path.join(resultsDir, this.name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80));
    fs.mkdirSync(dir, { recursive: true });
    for (const [i, { page, lines }] of this.pages.entries()) {
      await page.screenshot({ path: path.join(dir, `page-${i}.png`), timeout: 5000 }).catch(() => {});
      const log = await page.evaluate(() => JSON.stringify(window.log, null, 1)).catch(() => '[]');
      fs.writeFileSync(path.join(dir, `page-${i}-console.log`), lines.join('\n') + '\n');
      fs.writeFileSync(path.join(dir, `page-${i}-events.json`), log);
    }
    for (const [i, p] of this.procs.entries()) fs.writeFileSync(path.join(dir, `${p.name}-${i}.log`), p.logs.join('\n') + '\n');
    process.stderr.write(`browser test "${this.name}" failed; screenshots and logs in ${dir}\n`);
  }

  async cleanup() {
    for (const c of this.cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        process.stderr.write(`cleanup: ${e}\n`);
      }
    }
    this.cleanups = [];
  }

  /**
   * Opens url in a fresh context (its own cache and storage) and waits for
   * the test page's module.
   * @param {import('playwright-core').Browser} browser
   * @param {string} url
   */
  async openPage(browser, url) {
    const context = await browser.newContext();
    this.cleanups.push(() => context.close());
    const page = await context.newPage();
    const lines = [];
    page.on('console', (m) => lines.push(`${new Date().toISOString()} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => lines.push(`${new Date().toISOString()} pageerror: ${e.message}`));
    this.pages.push({ page, lines });
    await page.goto(url, { timeout: 15_000 });
    await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
    return page;
  }
}

/**
 * A test with a World, bounded by timeoutMs; artifacts kept on failure.
 * @param {typeof import('node:test').test} test
 * @param {string} name
 * @param {(w: World) => Promise<void>} fn
 * @param {number} [timeoutMs]
 */
export function scenario(test, name, fn, timeoutMs = 45_000) {
  test(name, { timeout: timeoutMs }, async () => {
    const w = new World(name);
    try {
      await fn(w);
    } catch (e) {
      await w.saveArtifacts();
      throw e;
    } finally {
      await w.cleanup();
    }
  });
}

/** The events the page recorded (window.log), optionally of one type. */
export async function events(page, type) {
  const all = await page.evaluate(() => window.log);
  return type ? all.filter((e) => e.type === type) : all;
}

/** Waits until the page has an event matching pred; returns it. */
export function waitEvent(page, pred, ms, what) {
  return until(async () => (await events(page)).find(pred), ms, what);
}
