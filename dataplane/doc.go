// Package dataplane is the wsfleet node: a WebSocket gateway on
// github.com/lxzan/gws that enforces a pool's policy and explains every
// rejected handshake and every closed connection.
//
// A request on the data path, in order (DESIGN.md "Data plane behaviour"):
//
//	ServeHTTP: trace id → admission (origin, capacity, handshake rate,
//	connect authorization behind the breaker) → upgrade check → gws upgrade
//	session:   heartbeat, pacing, frame decode → broker fan-out → bounded
//	           outgoing queue → writer
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
//   - Heartbeats are runtime timers (time.AfterFunc), not goroutines: an
//     idle connection holds one goroutine (its read loop) and no more.
//   - Policy is one immutable snapshot behind an atomic.Pointer; Apply builds
//     a new one and swaps it. The per-message path never takes a lock to read
//     it.
//   - Telemetry sinks are called synchronously on close and rejection and
//     must not block (see EventSink).
//
// Policy sources: RunWithPolicyFile (standalone, a hot-reloaded file) and
// RunWithControlPlane (sdk/policyclient watching the control plane, with a
// disk cache of the last good policy, and sdk/telemetry streaming every
// event to it). Both only call Node.Apply; a service embedding the node can
// feed Apply from anywhere else.
//
// Shutdown (Node.Shutdown) stops accepting, fails /readyz, refuses new
// handshakes with 503, closes every connection with 1001 with bounded
// concurrency, waits for their read loops within the drain timeout, then
// flushes sinks.
package dataplane
