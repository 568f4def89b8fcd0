// Compiled (never run) by `make test` with tsc: the README example and every
// public name, so that index.d.ts matches what apps write.
import { Client, State, WsfleetError, backoffDelay, classes, defaults, newTraceId, parseRejectReason, userMessage } from '../../index.js';
import type { ClassInfo, ClientOptions, Failure } from '../../index.js';

const options: ClientOptions = {
  minBackoffMs: 500,
  maxBackoffMs: 20_000,
  requestTimeoutMs: 5_000,
  maxQueuedReports: 20,
  messages: { origin_rejected: 'Ce site ne peut pas se connecter au service.' },
};
const client = new Client('wss://rt.example.com/ws', options);
client.addEventListener('state', (ev) => {
  const s: State = ev.detail.state;
  const p: State = ev.detail.previous;
  console.log(s, p, client.state === State.connected);
});
client.addEventListener('failure', (ev) => {
  const f: Failure = ev.detail;
  const text: string = f.message;
  const hint: string = f.what_to_do;
  const id: string = f.trace_id;
  const again: boolean = f.retryable;
  const wait: number = f.retry_after_s;
  console.log(text, hint, id, again, wait, f.class, f.close_code, f.signal);
});
client.addEventListener('welcome', (ev) => console.log(ev.detail.node_id, ev.detail.heartbeat_interval_ms));
client.addEventListener('retry', (ev) => console.log(ev.detail.attempt, ev.detail.delay_ms, ev.detail.failure?.class));
client.addEventListener('message', (ev) => console.log(ev.detail.channel, ev.detail.data));
client.addEventListener('servererror', (ev) => console.log(ev.detail.code));
client.addEventListener('reported', (ev) => console.log(ev.detail.count));
client.addEventListener('custom-not-in-map', (ev: Event) => console.log(ev.type));
client.connect();

async function use(): Promise<void> {
  await client.subscribe<{ price: number }>('ticker', (data, channel) => console.log(channel, data.price));
  await client.publish('ticker', { price: 1 });
  await client.unsubscribe('ticker');
  try {
    await client.publish('x', null);
  } catch (e) {
    if (e instanceof WsfleetError) console.log(e.code);
  }
  const f: Failure | null = client.lastFailure;
  const channels: string[] = client.channels;
  const n: number = client.pendingReports;
  console.log(f, channels, n, client.traceId);
  client.close();
}
void use();

const info: Readonly<ClassInfo> | undefined = classes['origin_rejected'];
const code: number = info?.rejectCloseCode ?? 0;
const d: number = backoffDelay(3, defaults.minBackoffMs, defaults.maxBackoffMs, 0, Math.random);
const t: string = newTraceId();
const r: { name: string; retryAfterS: number } = parseRejectReason('rate_limited; retry_after_s=2');
const m: string = userMessage('capacity', { capacity: 'Plein' });
console.log(code, d, t, r, m);

// @ts-expect-error: a state that does not exist
const bad: State = 'open';
// @ts-expect-error: options are numbers
new Client('ws://x/ws', { minBackoffMs: '5' });
console.log(bad);
