// Package loadgen is the load generator behind wsfleet-bench: it measures a
// wsfleet node against a bare gws echo server with the same client code
// (gws's own client), so the ratio between the two is the node's overhead
// and not the generator's.
//
// Scenarios take their target addresses and run against anything that
// speaks the protocol, in-process or not:
//
//   - Roundtrip: C clients, one request outstanding each, for a duration.
//   - Fanout: S subscribers on one channel, one paced publisher; the
//     subscribers may be spread over several nodes sharing channels.
//   - Idle: N idle connections, server RSS read before and after.
//   - Handshakes: H complete handshakes over W workers.
//   - Channel: N connections (from several loopback source addresses, as
//     one has too few ports) subscribing to one channel at once, timed to
//     the last acknowledgement, server RSS read before and after; then
//     one publish timed to the last delivery.
//   - BrokerChannel: the node's broker alone (in this process, no sockets)
//     building one channel of N subscribers, one publish, unsubscribing
//     all: the data structure at the full size, whatever the descriptors.
//
// Each takes an optional reader of the server's CPU time (ReadCPU:
// utime + stime from /proc/PID/stat) and reads it, and this process's,
// around exactly its measured phase, for CPU per operation.
//   - Handshake traffic (issue 12): Handshakes in alternating rounds
//     against two nodes of its own, one counting traffic (the default)
//     and one started with --disable-traffic, their server CPU per
//     handshake compared: what counting accepted handshakes costs.
//   - Storm: N sdk/wsclient clients (full-jitter backoff, Retry-After
//     honoured: what an app gets) connected to a node, the node killed
//     and restarted at the same address (a Restart function the caller
//     gives), timed from the kill to the last client's welcome from the
//     restarted node (its id says which node welcomed), with the new
//     node's handshake counters read every second for the peak accepted
//     and attempted per second, and the clients that gave up counted.
//   - Propagation: N policy clients (sdk/policyclient, in this process)
//     watching a control plane, or its replicas, spread evenly; K policy
//     applies, each timed from the ApplyPolicy call to the control plane
//     receiving each client's ACK (the last_ack_time ListNodes shows),
//     and from the call's return to the clients' Apply.
//
// Run is the thin layer on top that starts the node and the echo server as
// child processes, runs the scenarios against both (idle first, while both
// are fresh; the round-trip and handshake comparisons in alternating
// rounds, so drifting background load hits both sides alike; the fan-out
// once per window; the channel and the storm each on a node of its own,
// the storm's policy limiting handshakes to --storm-rate plus
// --storm-burst) and collects a Report
// ending with Goals, every target of issue 10 beside what was measured
// (and those of issues 11 and 12: Issue12Goals also reads the Go
// benchmarks' figures from a file of `go test -bench` output, ReadGoBench);
// Main is the command line. Run raises its descriptor limit (which the
// children inherit) to what the scenarios need, or as far as the hard
// limit allows, and with a Pin starts every child on the server CPUs (the
// starting thread is pinned around the fork, so the child's every thread
// inherits the mask) and moves its own threads to the load CPUs. Given a nats-server binary, Run's fanout-nats scenario
// runs Fanout on the node alone and then across two more nodes on a
// nats-server it starts. Given a wsfleet-control binary, Run also starts a
// control plane (--dev, loopback, store in a temporary directory) and runs
// Propagation against it at each fleet size; given an etcd binary too, the
// propagation-etcd scenario does the same against replicas sharing an etcd
// it starts. Without its binaries a scenario is skipped, and only the
// children the selected scenarios need are started (the cluster
// scenarios' own children for their duration only).
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
// Storm's clients own their goroutines (sdk/wsclient: a run goroutine, and
// per connection a read loop and a heartbeat goroutine); their OnEvent
// callbacks only add to atomics and signal a one-slot channel; Storm
// closes every client (64 at a time) before it returns, and its counter
// sampler goroutine is joined before it reads the samples.
//
// Propagation runs each policy client's Run on a goroutine of its own
// (policyclient adds its apply goroutine, gRPC its stream goroutines), all
// cancelled and joined before the connections they share are closed and
// the function returns. The clients' Apply only reads the clock and stores
// it in the current round (an atomic pointer; one atomic slot per client),
// so it never blocks and the ACK follows it at once; the scenario's own
// goroutine waits on the round's done channel, bounded by AckTimeout, and
// the apply phase by Duration.
//
// Child processes: each is started from a goroutine locked to its OS thread
// for the child's life (so Linux's parent-death signal fires only when the
// bench dies), its stderr is drained by one goroutine until EOF, and Run
// stops it with SIGTERM, then SIGKILL, on every return path, in the
// reverse order of their start (nodes before nats-server, replicas before
// etcd).
//
// EchoServer is the baseline: a net/http server upgrading with gws's
// Upgrader (default options), the request goroutine gone after the upgrade,
// nothing kept per connection but gws's own state and read loop.
//
// The welcome frame (issue 11): the node's first frame on every connection
// is {"type":"welcome",...} (about 130 bytes). The node writes it in the same
// write as its 101 response, so it costs the node an encoding and a few
// bytes on the wire per handshake, not a system call. The baseline stays the
// lean one (it sends nothing after its 101): the node's figures above it
// include the welcome. Every scenario's client skips a welcome off its hot
// path.
package loadgen
