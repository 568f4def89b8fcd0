package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// Exit codes of Main.
const (
	exitOK     = 0
	exitFailed = 1 // a scenario or a child failed, or the run was interrupted
	exitUsage  = 2
)

const usageText = `usage: wsfleet-bench <command> [flags]

commands:
  run          start wsfleet-node and a bare gws echo server on loopback and
               measure both side by side, with the servers' CPU per
               operation, and a channel of 100,000 subscribers; print every
               goal of issue 10 beside its target; with --nats-bin, also the fan-out
               across two nodes through NATS against one node's; with
               --control-bin, also start wsfleet-control and measure policy
               propagation to thousands of policy clients, and with
               --etcd-bin the same over control-plane replicas on etcd;
               and a reconnect storm: 5,000 Go clients (sdk/wsclient),
               the node restarted under them; the cost of traffic
               counting per handshake (a node with --disable-traffic
               beside one without); with --go-bench, issue 12's goals
               from make bench's Go benchmarks (run -h for flags)
  echo-server  serve the bare gws echo baseline (started by run)
`

// Main runs the wsfleet-bench command line with args (without the program
// name) and returns the process exit code. Cancelling ctx (the binary does
// on SIGINT and SIGTERM) stops whatever runs, children included.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = io.WriteString(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "echo-server":
		return echoCommand(ctx, args[1:], stderr)
	case "help", "-h", "-help", "--help":
		_, _ = io.WriteString(stdout, usageText)
		return exitOK
	default:
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}

// runFlags parses the run command's flags into a RunConfig and the --out
// path.
func runFlags(args []string, stderr io.Writer) (cfg RunConfig, out string, err error) {
	fs := flag.NewFlagSet("wsfleet-bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NodeBin, "node-bin", "", "the wsfleet-node binary (required unless only propagation runs)")
	fs.StringVar(&cfg.ControlBin, "control-bin", "", "the wsfleet-control binary; without it the propagation scenarios are skipped")
	fs.StringVar(&cfg.EtcdBin, "etcd-bin", "", "an etcd 3.7 server binary; without it the propagation-etcd scenario is skipped")
	fs.IntVar(&cfg.Replicas, "replicas", DefaultReplicas, "propagation-etcd: control-plane replicas on the one etcd")
	fs.StringVar(&cfg.NATSBin, "nats-bin", "", "a nats-server binary; without it the fanout-nats scenario is skipped")
	fs.StringVar(&out, "out", "", "also write the results as JSON to this file")
	fs.DurationVar(&cfg.Duration, "duration", DefaultDuration, "roundtrip time per server; cap on fan-out publishing")
	fs.IntVar(&cfg.Rounds, "rounds", DefaultRounds, "roundtrip: alternate node and echo in this many rounds")
	fs.IntVar(&cfg.Clients, "clients", DefaultClients, "roundtrip clients and handshake workers")
	fs.IntVar(&cfg.IdleConns, "idle-conns", DefaultIdleConns, "idle connections held at once per server")
	fs.IntVar(&cfg.FanoutSubs, "fanout-subs", DefaultSubscribers, "fan-out subscribers on one channel (fanout and fanout-nats)")
	fs.IntVar(&cfg.FanoutMessages, "fanout-messages", DefaultMessages, "most messages the fan-out publisher sends")
	windows := fs.String("fanout-window", joinInts(DefaultFanoutWindows),
		"comma-separated fan-out windows (most messages not yet delivered to every subscriber), one fan-out run each; fanout-nats runs with the largest")
	fs.IntVar(&cfg.Handshakes, "handshakes", DefaultHandshakes, "handshakes per server, split over --rounds alternating rounds")
	fs.IntVar(&cfg.ChannelSubs, "channel-subs", DefaultChannelSubscribers, "channel: subscribers on the one channel (each a connection: this process and the node need a descriptor for each)")
	fs.IntVar(&cfg.StormClients, "storm-clients", DefaultStormClients, "storm: sdk/wsclient clients connected when the node restarts (each a descriptor here and in the node)")
	fs.IntVar(&cfg.StormRate, "storm-rate", DefaultStormRate, "storm: the node's limits.handshakes_per_second")
	fs.IntVar(&cfg.StormBurst, "storm-burst", DefaultStormBurst, "storm: the node's limits.handshake_burst")
	fs.DurationVar(&cfg.StormTimeout, "storm-timeout", DefaultStormTimeout, "storm: bound on connecting every client, and on every client coming back after the restart")
	fs.DurationVar(&cfg.Settle, "settle", DefaultSettle, "idle and channel: wait before reading RSS")
	pin := fs.String("pin", "off", `CPUs: "off", "auto" (servers on the highest CPU, the load on the others; with one CPU nothing is pinned), or "server=1,load=0"`)
	fs.BoolVar(&cfg.NodePprof, "node-pprof", false, "start the nodes with --pprof and print where to profile them")
	fs.StringVar(&cfg.GoBench, "go-bench", "", "a file of Go benchmark results (go test -bench output; make bench saves its own) for the goals of issue 12")
	propClients := fs.String("propagation-clients", joinInts(DefaultPropagationSizes),
		"propagation: comma-separated fleet sizes (policy clients watching at once), one run each")
	fs.IntVar(&cfg.PropagationApplies, "propagation-applies", DefaultApplies, "propagation: policy applies measured per fleet size")
	fs.IntVar(&cfg.ClientsPerConn, "propagation-per-conn", DefaultClientsPerConn, "propagation: policy clients sharing one gRPC connection")
	scenarios := fs.String("scenarios", strings.Join(AllScenarios, ","), "comma-separated scenarios to run")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	// Zero would silently mean "default" in RunConfig; on the command line
	// it is a mistake.
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"duration", int64(cfg.Duration)}, {"rounds", int64(cfg.Rounds)}, {"clients", int64(cfg.Clients)}, {"idle-conns", int64(cfg.IdleConns)},
		{"fanout-subs", int64(cfg.FanoutSubs)}, {"fanout-messages", int64(cfg.FanoutMessages)},
		{"channel-subs", int64(cfg.ChannelSubs)}, {"handshakes", int64(cfg.Handshakes)}, {"settle", int64(cfg.Settle)},
		{"storm-clients", int64(cfg.StormClients)}, {"storm-rate", int64(cfg.StormRate)}, {"storm-burst", int64(cfg.StormBurst)},
		{"storm-timeout", int64(cfg.StormTimeout)},
		{"propagation-applies", int64(cfg.PropagationApplies)}, {"propagation-per-conn", int64(cfg.ClientsPerConn)},
		{"replicas", int64(cfg.Replicas)},
	} {
		if f.v <= 0 {
			return cfg, "", fmt.Errorf("%w: --%s must be positive, got %s", ErrConfig, f.name, fs.Lookup(f.name).Value)
		}
	}
	for s := range strings.SplitSeq(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scenarios = append(cfg.Scenarios, s)
		}
	}
	if len(cfg.Scenarios) == 0 {
		return cfg, "", fmt.Errorf("%w: --scenarios is empty", ErrConfig)
	}
	if cfg.NodeBin == "" && cfg.wantsNode() {
		return cfg, "", fmt.Errorf("%w: --node-bin is required", ErrConfig)
	}
	if cfg.PropagationClients, err = parseSizes("--propagation-clients", *propClients); err != nil {
		return cfg, "", err
	}
	if cfg.FanoutWindows, err = parseSizes("--fanout-window", *windows); err != nil {
		return cfg, "", err
	}
	if cfg.Pin, err = ParsePin(*pin); err != nil {
		return cfg, "", err
	}
	return cfg, out, nil
}

// parseSizes reads a list flag (name): positive counts, comma-separated.
func parseSizes(name, s string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: %s: %q is not a positive count", ErrConfig, name, f)
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrConfig, name)
	}
	return sizes, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, out, err := runFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		// fs.Parse has already printed its own errors with the usage.
		if errors.Is(err, ErrConfig) {
			_, _ = fmt.Fprintf(stderr, "wsfleet-bench run: %v\n", err)
		}
		return exitUsage
	}
	cfg.Progress = stderr
	rep, err := Run(ctx, cfg)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench run: %v\n", err)
		if errors.Is(err, ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	code := exitOK
	if err := WriteTable(stdout, rep); err != nil {
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench run: %v\n", err)
		code = exitFailed
	}
	if out != "" {
		f, err := os.Create(out)
		if err == nil {
			err = errors.Join(WriteJSON(f, rep), f.Close())
		}
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "wsfleet-bench run: writing %s: %v\n", out, err)
			code = exitFailed
		}
	}
	if rep.Failed() || ctx.Err() != nil {
		code = exitFailed
	}
	return code
}

func echoCommand(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsfleet-bench echo-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve WebSocket on (any path)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench echo-server: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench echo-server: %v\n", err)
		return exitFailed
	}
	// The line Run waits for, in the shape of the node's "node listening".
	line, _ := json.Marshal(struct {
		Msg    string `json:"msg"`
		WSAddr string `json:"ws_addr"`
	}{echoReadyMsg, ln.Addr().String()})
	_, _ = fmt.Fprintf(stderr, "%s\n", line)
	if err := NewEchoServer().Serve(ctx, ln); err != nil {
		_, _ = fmt.Fprintf(stderr, "wsfleet-bench echo-server: %v\n", err)
		return exitFailed
	}
	return exitOK
}
