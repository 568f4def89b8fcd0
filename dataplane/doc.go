// Package dataplane is the wsfleet node: a WebSocket gateway on
// github.com/lxzan/gws that enforces a pool's policy and explains every
// rejected handshake and every closed connection.
//
// A request on the data path, in order (DESIGN.md "Data plane behaviour"):
//
//	ServeHTTP: trace id → admission (origin, capacity, handshake rate,
//	connect authorization behind the breaker) → upgrade check → gws upgrade
//	session:   heartbeat, pacing, frame decode → broker fan-out (in process,
//	           or NATS to every node of the pool) → bounded outgoing queue →
//	           writer
//
// Goroutines and blocking:
//
//   - Each connection's read loop (gws ReadLoop) runs in its own goroutine,
//     started after the upgrade so net/http's per-connection state is freed.
//     It decodes frames, paces the client (blocking only that connection:
//     TCP backpressure) and publishes. It never blocks on another
//     connection: Deliver only appends to the subscriber's bounded queue.
//   - A connection's writer goroutine exists only while its outgoing queue
//     is non-empty; every write has a deadline. A queue that overflows or a
//     write that times out closes the connection as slow_consumer, so a
//     client that stops reading costs at most its queue bound.
//   - Heartbeats come from one wheel goroutine per node (heartbeat.go) that
//     walks the session shards over each interval and queues a ping where
//     none is unanswered. A one-shot time.AfterFunc exists only while a
//     written ping is unanswered (any frame from the client answers it), so
//     an idle connection holds its read loop and nothing else between pings.
//   - Policy is one immutable snapshot behind an atomic.Pointer; Apply builds
//     a new one and swaps it. The per-message path never takes a lock to read
//     it.
//   - With NATS (Config.NATS), the broker adds its own goroutines (package
//     dataplane/broker/natsbroker): the client library's reader, writer and
//     redialler, one pump and a few dispatchers that hand messages from NATS
//     to local subscribers' queues. A publish blocks its read loop for at
//     most the NATS write timeout, and not at all while NATS is down or the
//     broker's breaker (broker.Guard, the policy's thresholds) is open.
//   - Telemetry sinks are called synchronously on close and rejection and
//     must not block (see EventSink).
//   - Rejected handshakes go through a fold table (package
//     dataplane/internal/fold, one short mutex): the first of a class,
//     status, origin and client network is recorded at once, the rest of
//     its window (Config.FoldWindow) counted. One sweeper goroutine per node
//     records the folds whose window ended, a few times per window; Shutdown
//     stops it, then records every fold still open before the sink's last
//     flush. Metrics count every rejection, folded or not.
//   - Everything a client supplies that the node keeps (origin, user agent,
//     remote address, error text) is capped in bytes and made valid UTF-8
//     where it is taken (Config.MaxOriginBytes and the rest), so no event,
//     log line or connection holds more.
//
// Every status, Retry-After and close code the node sends, and the class
// of every close frame it receives, come from the error-class table
// (api/errclass).
//
// Next to Path, Handler serves two small endpoints for browsers, in the
// handler goroutines net/http gives them: <Path>/explain (explain.go) reads
// what recordRejection and record noted — one bounded insert per rejected
// handshake and per closed connection, never per message — and
// <Path>/client-report (clientreport.go) turns what a client reports into
// events for the sink. Both are rate-limited per client address with a
// bounded table (dataplane/internal/iplimit) and block on nothing but a
// short mutex. Under handshake.reject_with: close, a refused handshake is
// answered in its handler goroutine with a 101 and a close frame
// (rejectclose.go), lingering at most closeGrace + rejectLinger; Shutdown
// waits for those.
//
// Policy sources: RunWithPolicyFile (standalone, a hot-reloaded file,
// re-read on each receive from a reload channel: the binary forwards SIGHUP,
// the library owns no signals) and RunWithControlPlane (sdk/policyclient
// watching the control plane, with a disk cache of the last good policy,
// and sdk/telemetry streaming every event to it). Both load the initial
// policy, build the node with it, then feed Node.Apply; a service embedding
// the node can feed Apply from anywhere else.
//
// Shutdown (Node.Shutdown) stops accepting, fails /readyz, refuses new
// handshakes with 503 (node_draining, Retry-After), closes every connection
// with 1001 with bounded concurrency, waits for their read loops within the
// drain timeout, then flushes the sink within FlushTimeout, never waiting
// for a control plane it is not connected to.
package dataplane
