// Command wsfleet-bench measures wsfleet-node against a lean bare gws echo
// server on loopback with the same load generator, with the servers' CPU
// time per operation beside every rate: round trips, idle RSS per
// connection, handshakes; the node's fan-out with 1 and 32 messages in
// flight; one channel of 100,000 subscribers (build time, memory per
// subscription, one publish to all); given nats-server, the fan-out across
// two nodes through NATS against one node's; given the control plane's
// binary, policy propagation from an apply to the control plane receiving
// the ACKs of 1,000 and 10,000 watching policy clients, and given etcd,
// the same over control-plane replicas on it. It ends with every goal of
// issue 10 beside its target. --pin places the servers and the load on
// CPUs of their own. Everything but process wiring lives in
// dataplane/internal/loadgen.
//
//	wsfleet-bench run --node-bin .bin/wsfleet-node [--pin auto] [--control-bin .bin/wsfleet-control]
//		[--etcd-bin .bin/etcd-v3.7.3] [--nats-bin .bin/nats-server-v2.15.2] [--out bench.json]
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsfleet/wsfleet/dataplane/internal/loadgen"
)

func main() {
	// SIGTERM as well as Ctrl-C: run stops its child servers on the way
	// out, and echo-server is stopped by run with SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loadgen.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
