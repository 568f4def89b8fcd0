// Package loadgen is the load generator behind wsfleet-bench: it measures a
// wsfleet node against a bare gws echo server with the same client code
// (gws's own client), so the ratio between the two is the node's overhead
// and not the generator's.
//
// Scenarios take their target addresses and run against anything that
// speaks the protocol, in-process or not:
//
//   - Roundtrip: C clients, one request outstanding each, for a duration.
//   - Fanout: S subscribers on one channel, one paced publisher.
//   - Idle: N idle connections, server RSS read before and after.
//   - Handshakes: H complete handshakes over W workers.
//
// Run is the thin layer on top that starts the node and the echo server as
// child processes, runs the scenarios against both (idle first, while both
// are fresh; the round-trip comparison in alternating rounds, so drifting
// background load hits both sides alike) and collects a Report; Main is the
// command line.
//
// Goroutines and blocking: every scenario function blocks until it is done
// and owns everything it starts. Each client connection has one read loop
// goroutine (gws's ReadLoop), owned by the scenario's connection set and
// joined before the function returns; message callbacks run on those loops
// and never block (they hand over through buffered channels and atomics).
// Roundtrip runs one goroutine per client, Idle and Fanout at most Dialers
// dialling goroutines, Handshakes Workers goroutines. Every loop is bounded
// by a count and by a deadline; a lost reply fails the scenario after
// ReplyTimeout instead of hanging it. Cancelling the context aborts dials
// and waits.
//
// Child processes: each is started from a goroutine locked to its OS thread
// for the child's life (so Linux's parent-death signal fires only when the
// bench dies), its stderr is drained by one goroutine until EOF, and Run
// stops it with SIGTERM, then SIGKILL, on every return path.
//
// EchoServer is the baseline: gws's default server and per-connection path
// behind an accept loop that can be stopped (gws.Server.RunListener cannot).
package loadgen
