// A stand-in for a wsfleet node that speaks the client contract (welcome,
// ids and acks, ping/pong, /ws/explain, /ws/client-report, reject closes),
// scripted per test. The browser tests run the real node; this one lets the
// unit tests decide exactly what the node answers and when.

import http from 'node:http';
import { WebSocketServer } from 'ws';

export class FakeNode {
  /** @type {http.Server} */ server;
  port = 0;
  /** handshakes seen: {time, traceId, origin} */
  handshakes = [];
  /** explain requests seen: trace ids */
  explains = [];
  /** client reports received */
  reports = [];
  /** frames received from clients */
  frames = [];
  /** open sockets */
  sockets = new Set();
  maxOpen = 0;
  /** traceId → explain body */
  records = new Map();
  /**
   * decide(req, traceId) → 'accept' | {status, class, retryAfterS, proxy}
   * (HTTP rejection, recorded for explain unless proxy) | {closeCode, reason} (reject close)
   * | 'hang' (never answer).
   */
  decide = () => 'accept';
  welcome = { heartbeat_interval_ms: 25000, heartbeat_timeout_ms: 60000 };
  /** answer pings (false: a node gone silent) */
  answerPings = true;
  /** channel → error code for subscribes and publishes */
  refuse = new Map();

  constructor() {
    this.wss = new WebSocketServer({ noServer: true });
    this.server = http.createServer((req, res) => this.#http(req, res));
    this.server.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
    // Every TCP connection, so close() ends hung and upgraded ones too.
    this.conns = new Set();
    this.server.on('connection', (s) => {
      this.conns.add(s);
      s.on('close', () => this.conns.delete(s));
    });
  }

  /** @param {number} [port] */
  async listen(port = 0) {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', resolve);
    });
    this.port = /** @type {import('node:net').AddressInfo} */ (this.server.address()).port;
    return this;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async close() {
    for (const ws of this.sockets) ws.terminate();
    const closed = new Promise((resolve) => this.server.close(() => resolve(undefined)));
    for (const s of this.conns) s.destroy();
    await closed;
  }

  /** Drops every connection without a close frame (the client sees 1006). */
  dropAll() {
    for (const ws of this.sockets) ws.terminate();
  }

  #http(req, res) {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/ws/explain') {
      const id = u.searchParams.get('trace_id') ?? '';
      this.explains.push(id);
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Content-Type', 'application/json');
      const rec = this.records.get(id);
      if (!rec) {
        res.writeHead(404).end(JSON.stringify({ trace_id: id, error: 'unknown trace id' }));
        return;
      }
      res.writeHead(200).end(JSON.stringify({ trace_id: id, node_id: 'fake-1', ...rec }));
      return;
    }
    if (u.pathname === '/ws/client-report' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const parsed = JSON.parse(body);
        this.reports.push(...parsed.reports);
        res.writeHead(202, { 'Content-Type': 'application/json' }).end(JSON.stringify({ accepted: parsed.reports.length }));
      });
      return;
    }
    res.writeHead(404).end();
  }

  #upgrade(req, socket, head) {
    const u = new URL(req.url, 'http://x');
    const traceId = u.searchParams.get('trace_id') ?? '';
    this.handshakes.push({ time: Date.now(), traceId, origin: req.headers.origin });
    const d = this.decide(req, traceId);
    if (d === 'hang') return; // the socket stays open, unanswered
    if (d !== 'accept' && d.status) {
      const info = { class: d.class, retryable: d.retryable ?? true, retry_after_s: d.retryAfterS ?? 0, what_to_do: 'node says', message: 'node message', signal: `HTTP ${d.status}` };
      // proxy: something in front of the node answered; the node has no record.
      if (!d.proxy) this.records.set(traceId, info);
      socket.end(`HTTP/1.1 ${d.status} No\r\nContent-Length: 0\r\n${d.retryAfterS ? `Retry-After: ${d.retryAfterS}\r\n` : ''}\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (d !== 'accept') {
        ws.close(d.closeCode, d.reason);
        return;
      }
      this.sockets.add(ws);
      this.maxOpen = Math.max(this.maxOpen, this.sockets.size);
      ws.traceId = traceId;
      ws.channels = new Set();
      ws.on('close', () => this.sockets.delete(ws));
      ws.send(JSON.stringify({ type: 'welcome', trace_id: traceId, node_id: 'fake-1', ...this.welcome }));
      ws.on('message', (raw) => this.#frame(ws, JSON.parse(String(raw))));
    });
  }

  #frame(ws, f) {
    this.frames.push({ traceId: ws.traceId, ...f });
    const ack = (type) => ws.send(JSON.stringify({ type, channel: f.channel, ...(f.id ? { id: f.id } : {}) }));
    const refused = this.refuse.get(f.channel);
    if (refused && (f.type === 'subscribe' || f.type === 'publish')) {
      ws.send(JSON.stringify({ type: 'error', code: refused, message: `refused ${f.channel}`, id: f.id }));
      return;
    }
    switch (f.type) {
      case 'ping':
        if (this.answerPings) ws.send(JSON.stringify({ type: 'pong', ...(f.id ? { id: f.id } : {}) }));
        return;
      case 'subscribe':
        ws.channels.add(f.channel);
        ack('subscribed');
        return;
      case 'unsubscribe':
        ws.channels.delete(f.channel);
        ack('unsubscribed');
        return;
      case 'publish':
        this.publish(f.channel, f.data);
        if (f.id) ack('published');
        return;
    }
  }

  publish(channel, data) {
    for (const s of this.sockets) {
      if (s.channels.has(channel)) s.send(JSON.stringify({ type: 'message', channel, data }));
    }
  }
}

/** Resolves when cond() is true; polls every 10 ms, fails after ms. */
export async function until(cond, ms = 10_000, what = 'condition') {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The next event of type on target. */
export function next(target, type, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${type} event within ${ms} ms`)), ms);
    target.addEventListener(type, (ev) => { clearTimeout(t); resolve(ev.detail); }, { once: true });
  });
}
