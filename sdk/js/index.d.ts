// Types of the wsfleet client (index.js). Hand-written: the module is plain
// JavaScript so that what ships is what was reviewed; `make test` checks
// these types with tsc against test/types/usage.ts.

/** The states of a Client. */
export type State = 'connecting' | 'connected' | 'disconnected' | 'closed';

export declare const State: Readonly<{
  connecting: 'connecting';
  connected: 'connected';
  disconnected: 'disconnected';
  closed: 'closed';
}>;

/** An error class's entry, as api/errclass has it. */
export interface ClassInfo {
  /** The default sentence for an end user (errclass UserMessage). */
  message: string;
  /** What to do about it, for whoever runs the service (errclass Action). */
  whatToDo: string;
  /** The wire signal ("HTTP 403", "close 1008"). */
  signal: string;
  /** false: a client stops reconnecting (origin_rejected, unauthorized, bad_handshake). */
  retryable: boolean;
  /** The 4xxx close code of this class with reject_with: close; 0 when none. */
  rejectCloseCode: number;
}

/** Every class by name ("origin_rejected"), generated from api/errclass. */
export declare const classes: Readonly<Record<string, Readonly<ClassInfo>>>;

/** Why an attempt or a connection failed. Field names as /ws/explain has them. */
export interface Failure {
  /** The error class: "origin_rejected", "client_unreachable", … */
  class: string;
  /** A sentence for the end user: ClientOptions.messages, else the default table. */
  message: string;
  /** What to do about it (for developers and operators). */
  what_to_do: string;
  /** What the wire said, for humans ("HTTP 403", "close 1008"), from the node or the class table. */
  signal: string;
  /** The attempt's trace id; `wsctl trace ID` shows the node's side. */
  trace_id: string;
  /** false: the client stopped (state closed) and will not retry. */
  retryable: boolean;
  /** The node asked for at least this long before the next attempt; 0 when it did not. */
  retry_after_s: number;
  /** The close code the client saw (4403, 1006, …); 0 when none (timeout). */
  close_code: number;
  /** The node that explained it, when one did. */
  node_id: string;
  /** The URL of the attempt, with its trace_id. */
  url: string;
  /** What the client saw, for logs and client reports. */
  detail: string;
  /** When (ms since the epoch). */
  time: number;
}

export interface ClientOptions {
  /** First backoff cap (full jitter: the delay is uniform in [0, min(max, min·2^attempt)]). Default 500. */
  minBackoffMs?: number;
  /** Largest backoff cap. Default 20000. */
  maxBackoffMs?: number;
  /** A connection up this long resets the backoff. Default 5000. */
  stableAfterMs?: number;
  /** No welcome within this long after the attempt started: client_handshake_timeout. Default 10000. */
  openTimeoutMs?: number;
  /** Bound on a /ws/explain or /ws/client-report request. Default 5000. */
  explainTimeoutMs?: number;
  /** A publish or unsubscribe without an ack this long rejects with code "timeout". Default 10000. */
  requestTimeoutMs?: number;
  /** client_* failures kept for the next reachable node; oldest dropped beyond. Default 50. */
  maxQueuedReports?: number;
  /** Reports per /ws/client-report request (the node takes at most 32). Default 32. */
  reportBatchSize?: number;
  /** Messages by class name, over the default table: for translation. */
  messages?: Record<string, string>;
  /** WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: typeof WebSocket;
  /** fetch; default globalThis.fetch. */
  fetch?: typeof fetch;
}

export declare const defaults: Readonly<Required<Omit<ClientOptions, 'messages' | 'WebSocket' | 'fetch'>>>;

export interface StateChange {
  state: State;
  previous: State;
}

export interface Welcome {
  trace_id: string;
  node_id: string;
  heartbeat_interval_ms: number;
  heartbeat_timeout_ms: number;
}

export interface Retry {
  /** Failed attempts since the last stable connection, before this one. */
  attempt: number;
  delay_ms: number;
  failure: Failure | null;
}

export interface Message {
  channel: string;
  data: unknown;
}

export interface ServerError {
  code: string;
  message: string;
  channel?: string;
}

export interface Reported {
  status: number;
  count: number;
}

export interface ClientEventMap {
  /** Every state change. */
  state: CustomEvent<StateChange>;
  /** The node's welcome: the connection is up (state connected). */
  welcome: CustomEvent<Welcome>;
  /** Every failed attempt or lost connection; a terminal one (retryable false) comes just before state closed. */
  failure: CustomEvent<Failure>;
  /** The next attempt is scheduled. */
  retry: CustomEvent<Retry>;
  /** A message on a subscribed channel. */
  message: CustomEvent<Message>;
  /** An error frame that answers no request of this client (or a refused resubscribe). */
  servererror: CustomEvent<ServerError>;
  /** A batch of client_* reports was sent to /ws/client-report. */
  reported: CustomEvent<Reported>;
}

/** An error frame from the node, or "timeout", "disconnected", "closed" from the client. */
export declare class WsfleetError extends Error {
  constructor(code: string, message: string);
  readonly code: string;
}

export declare class Client extends EventTarget {
  /**
   * @param url ws(s):// (or http(s)://, or a path resolved against the page) of a node's WebSocket endpoint, e.g. "wss://rt.example.com/ws".
   * @throws TypeError for a bad URL or option.
   */
  constructor(url: string | URL, options?: ClientOptions);
  readonly state: State;
  /** The trace id of the current (or last) attempt. */
  readonly traceId: string;
  readonly lastFailure: Failure | null;
  readonly channels: string[];
  /** client_* failures waiting to be reported. */
  readonly pendingReports: number;
  /** Starts connecting; a no-op while running. */
  connect(): void;
  /** Closes (1000) and stops reconnecting: state closed. */
  close(): void;
  /** Subscribes (kept across reconnects); resolves once the node confirmed. */
  subscribe<T = unknown>(channel: string, handler?: (data: T, channel: string) => void): Promise<void>;
  /** Unsubscribes and drops the channel's handlers. */
  unsubscribe(channel: string): Promise<void>;
  /** Publishes any JSON value; resolves on the node's ack. */
  publish(channel: string, data: unknown): Promise<void>;

  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, ev: ClientEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, ev: ClientEventMap[K]) => any,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** The user message of a class: overrides[cls], else the default. */
export declare function userMessage(cls: string, overrides?: Record<string, string>): string;

/** One full-jitter delay: uniform in [0, min(maxMs, minMs·2^attempt)], at least retryAfterS seconds. */
export declare function backoffDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  retryAfterS?: number,
  random?: () => number,
): number;

/** 32 random hex digits from crypto.getRandomValues. */
export declare function newTraceId(): string;

/** Reads a reject close reason: "<class>" or "<class>; retry_after_s=N". */
export declare function parseRejectReason(reason: string): { name: string; retryAfterS: number };
