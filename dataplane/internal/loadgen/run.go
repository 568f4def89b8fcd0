package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsfleet/wsfleet/sdk/admin"
)

// Scenario names, as --scenarios takes them.
const (
	ScenarioRoundtrip = "roundtrip"
	ScenarioFanout    = "fanout"
	ScenarioIdle      = "idle"
	ScenarioHandshake = "handshake"
	// ScenarioChannel is one channel with RunConfig.ChannelSubs
	// subscribers (100,000 by default) on a node of its own: how long
	// building it takes, its memory per subscription, and one publish to
	// all of them.
	ScenarioChannel = "channel"
	// ScenarioFanoutNATS is the fan-out across two nodes sharing channels
	// through NATS, against the same fan-out on the node alone (its
	// in-process broker), with the servers' CPU per delivery: it runs only
	// when RunConfig.NATSBin is set.
	ScenarioFanoutNATS = "fanout-nats"
	// ScenarioPropagation measures the control plane, not the node: it
	// runs only when RunConfig.ControlBin is set.
	ScenarioPropagation = "propagation"
	// ScenarioPropagationEtcd is the same against RunConfig.Replicas
	// control-plane replicas on one etcd: it runs only when ControlBin and
	// EtcdBin are set.
	ScenarioPropagationEtcd = "propagation-etcd"
	// ScenarioStorm is the reconnect storm of issue 11: RunConfig.StormClients
	// sdk/wsclient clients on a node of its own, the node restarted, the
	// recovery measured.
	ScenarioStorm = "storm"
)

// AllScenarios in the order Run runs them. Idle goes first, while both
// servers are fresh: heap an earlier scenario left behind would be reused
// by the idle connections and hide part of their cost. Propagation goes
// last: its thousands of in-process clients leave this process's heap and
// scheduler busier than the node scenarios should find them.
var AllScenarios = []string{ScenarioIdle, ScenarioRoundtrip, ScenarioFanout, ScenarioFanoutNATS, ScenarioHandshake,
	ScenarioHandshakeTraffic, ScenarioChannel, ScenarioStorm, ScenarioPropagation, ScenarioPropagationEtcd}

// nodeScenarios are those that need the node (the channel and
// handshake-traffic scenarios start nodes of their own, from the same
// binary).
var nodeScenarios = []string{ScenarioIdle, ScenarioRoundtrip, ScenarioFanout, ScenarioFanoutNATS, ScenarioHandshake, ScenarioHandshakeTraffic,
	ScenarioChannel, ScenarioStorm}

// sharedNodeScenarios are those that run on the node Run starts first.
var sharedNodeScenarios = []string{ScenarioIdle, ScenarioRoundtrip, ScenarioFanout, ScenarioFanoutNATS, ScenarioHandshake}

// Targets issue 10 sets for the node, measured side by side with bare gws
// in one run.
const (
	// TargetRoundtripCPURatio is the most node/echo server CPU per round
	// trip (with the full policy on: origin, limits, pacing, UTF-8 check,
	// metrics).
	TargetRoundtripCPURatio = 1.10
	// TargetIdleDiffBytes is the most extra RSS per idle connection over
	// the lean bare gws.
	TargetIdleDiffBytes = 1024
	// TargetHandshakeRatio is the least node/echo handshakes per second.
	TargetHandshakeRatio = 0.90
	// TargetFanoutDeliveries is the least deliveries per second of a
	// fan-out to TargetFanoutSubscribers with TargetFanoutWindow
	// publishes in flight, and TargetFanoutCPU the most server CPU per
	// delivery.
	TargetFanoutDeliveries  = 1_000_000
	TargetFanoutCPU         = time.Microsecond
	TargetFanoutSubscribers = 1000
	TargetFanoutWindow      = 32
	// TargetChannelBuild is the longest building a channel of
	// TargetChannelSubscribers may take (first subscribe written to last
	// acknowledgement).
	TargetChannelBuild       = time.Second
	TargetChannelSubscribers = 100_000
)

// DefaultFanoutWindows are the fan-out runs: each publish waiting for
// every delivery, and 32 in flight.
var DefaultFanoutWindows = []int{1, 32}

// descriptorSlack is descriptors beyond a scenario's connections: the
// children's pipes, the publishers, listeners, the runtime's own.
const descriptorSlack = 256

// minChannelSubs is the fewest subscribers the channel scenario cuts
// itself down to when descriptors are short; below it the figures would
// say little about a large channel, and it fails instead.
const minChannelSubs = 1000

// Run defaults for the child processes.
const (
	DefaultStartTimeout = 15 * time.Second
	// DefaultRounds splits the round-trip comparison into alternating
	// rounds (node, echo, echo, node, ...), so a change in background load
	// during the run hits both sides alike instead of skewing the ratio.
	DefaultRounds = 5
	// DefaultStopTimeout is how long a child gets to exit after SIGTERM;
	// the node closes every connection with 1001 first.
	DefaultStopTimeout = 30 * time.Second
	// channelStopTimeout is the channel scenario's node's: it may still
	// be unsubscribing its 100,000 closed connections.
	channelStopTimeout = 3 * time.Minute
	nodeReadyMsg       = "node listening"
	echoReadyMsg       = "echo listening"
	// controlReadyMsg is wsfleet-control's info line naming its bound
	// addresses; its "grpc_addr" is the one the clients dial.
	controlReadyMsg  = "control plane listening"
	controlAddrField = "grpc_addr"
	// etcdReadyMsg is etcd's (3.7) line naming its client address, which
	// it logs once it serves requests; the address is its "address".
	etcdReadyMsg  = "serving client traffic insecurely; this is strongly discouraged!"
	etcdAddrField = "address"
	// DefaultReplicas is the number of control-plane replicas of the
	// propagation-etcd scenario.
	DefaultReplicas = 3
)

// natsReady is nats-server's line naming its client address.
var natsReady = regexp.MustCompile(`Listening for client connections on (\S+:\d+)`)

// RunConfig configures Run. Zero fields take the defaults.
type RunConfig struct {
	// NodeBin is the wsfleet-node binary. Required unless propagation is
	// the only scenario.
	NodeBin string
	// NodeArgs are appended to the node's command line.
	NodeArgs []string
	// ControlBin is the wsfleet-control binary, started in --dev mode on
	// loopback with a store in a temporary directory. Without it the
	// propagation scenario is skipped (and noted in Report.Skipped).
	ControlBin string
	// ControlArgs are appended to the control plane's command line; they
	// must leave its info-level "control plane listening" line on.
	ControlArgs []string
	// EtcdBin is an etcd server binary (3.7: its ready line is
	// etcdReadyMsg). With ControlBin, the propagation-etcd scenario starts
	// one etcd on loopback with its data in a temporary directory and
	// Replicas control planes on it (--store etcd); without it that
	// scenario is skipped.
	EtcdBin string
	// Replicas is the number of control-plane replicas on etcd. Default
	// DefaultReplicas.
	Replicas int
	// NATSBin is a nats-server binary. The fanout-nats scenario starts it
	// on loopback and two more nodes with --broker on it; without it that
	// scenario is skipped.
	NATSBin string
	// EchoBin is the binary serving the echo baseline. Default: this
	// process's own executable.
	EchoBin string
	// EchoArgs is its command line. Default: echo-server --listen 127.0.0.1:0.
	EchoArgs []string
	// Env is added to both children's environment.
	Env []string
	// Origin every handshake sends and the bench policy allows. Default
	// DefaultOrigin.
	Origin string
	// Scenarios to run, in any order (they run in AllScenarios order).
	// Default AllScenarios.
	Scenarios []string

	Duration       time.Duration // roundtrip time per server and fan-out publishing cap
	Rounds         int           // roundtrip: Duration is split into this many alternating rounds
	Clients        int           // roundtrip clients and handshake workers
	IdleConns      int
	FanoutSubs     int
	FanoutMessages int
	// FanoutWindows: one fan-out run per window (messages in flight).
	// Default DefaultFanoutWindows. fanout-nats runs with the largest.
	FanoutWindows []int
	Handshakes    int
	// ChannelSubs is the channel scenario's subscribers. Default
	// DefaultChannelSubscribers.
	ChannelSubs int
	// StormClients, StormRate and StormBurst are the reconnect storm's
	// clients and its node's handshake rate and burst. Defaults
	// DefaultStormClients, DefaultStormRate, DefaultStormBurst.
	StormClients, StormRate, StormBurst int
	// StormTimeout bounds the storm's initial connect and its recovery,
	// each. Default DefaultStormTimeout.
	StormTimeout time.Duration
	Dialers      int
	Settle       time.Duration // idle and channel: wait before an RSS reading

	// Pin places the servers and the load on CPUs of their own (see
	// ParsePin); the zero Pin places nothing.
	Pin Pin
	// NodePprof starts every node with --pprof, so it can be profiled
	// under load at the metrics address the progress lines name.
	NodePprof bool
	// GoBench is a file of Go benchmark results (`go test -bench` output;
	// make bench saves its own) read for issue 12's goals; optional.
	GoBench string

	// PropagationClients lists the fleet sizes measured, one run each, in
	// order. Default DefaultPropagationSizes.
	PropagationClients []int
	// PropagationApplies is the number of applies per fleet size. Default
	// DefaultApplies.
	PropagationApplies int
	// ClientsPerConn is how many policy clients share a gRPC connection.
	// Default DefaultClientsPerConn.
	ClientsPerConn int

	StartTimeout time.Duration
	StopTimeout  time.Duration
	// Progress receives one line per phase; nil discards them.
	Progress io.Writer
}

func (c *RunConfig) fill() error {
	if len(c.Scenarios) == 0 {
		c.Scenarios = AllScenarios
	}
	if c.NodeBin == "" && c.wantsNode() {
		return fmt.Errorf("%w: no node binary", ErrConfig)
	}
	if c.EchoBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: cannot find own executable for the echo server: %v", ErrConfig, err)
		}
		c.EchoBin = exe
	}
	if c.EchoArgs == nil {
		c.EchoArgs = []string{"echo-server", "--listen", "127.0.0.1:0"}
	}
	c.Origin = withDefault(c.Origin, DefaultOrigin)
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return fmt.Errorf("%w: unknown scenario %q (want some of %s)", ErrConfig, s, strings.Join(AllScenarios, ","))
		}
	}
	if c.Duration < 0 || c.Rounds < 0 || c.Clients < 0 || c.IdleConns < 0 || c.FanoutSubs < 0 || c.FanoutMessages < 0 ||
		c.ChannelSubs < 0 || c.Handshakes < 0 || c.Dialers < 0 || c.Settle < 0 || c.StartTimeout < 0 || c.StopTimeout < 0 ||
		c.PropagationApplies < 0 || c.ClientsPerConn < 0 || c.Replicas < 0 ||
		c.StormClients < 0 || c.StormRate < 0 || c.StormBurst < 0 || c.StormTimeout < 0 {
		return fmt.Errorf("%w: negative count or duration", ErrConfig)
	}
	for _, n := range c.PropagationClients {
		if n <= 0 {
			return fmt.Errorf("%w: propagation fleet size %d is not positive", ErrConfig, n)
		}
	}
	if len(c.PropagationClients) == 0 {
		c.PropagationClients = DefaultPropagationSizes
	}
	c.PropagationApplies = withDefault(c.PropagationApplies, DefaultApplies)
	c.ClientsPerConn = withDefault(c.ClientsPerConn, DefaultClientsPerConn)
	c.Replicas = withDefault(c.Replicas, DefaultReplicas)
	c.Duration = withDefault(c.Duration, DefaultDuration)
	c.Rounds = withDefault(c.Rounds, DefaultRounds)
	c.Clients = withDefault(c.Clients, DefaultClients)
	c.IdleConns = withDefault(c.IdleConns, DefaultIdleConns)
	c.FanoutSubs = withDefault(c.FanoutSubs, DefaultSubscribers)
	c.FanoutMessages = withDefault(c.FanoutMessages, DefaultMessages)
	for _, w := range c.FanoutWindows {
		if w <= 0 {
			return fmt.Errorf("%w: fan-out window %d is not positive", ErrConfig, w)
		}
	}
	if len(c.FanoutWindows) == 0 {
		c.FanoutWindows = DefaultFanoutWindows
	}
	c.ChannelSubs = withDefault(c.ChannelSubs, DefaultChannelSubscribers)
	c.StormClients = withDefault(c.StormClients, DefaultStormClients)
	c.StormRate = withDefault(c.StormRate, DefaultStormRate)
	c.StormBurst = withDefault(c.StormBurst, DefaultStormBurst)
	c.StormTimeout = withDefault(c.StormTimeout, DefaultStormTimeout)
	c.Handshakes = withDefault(c.Handshakes, DefaultHandshakes)
	c.Dialers = withDefault(c.Dialers, DefaultDialers)
	c.Settle = withDefault(c.Settle, DefaultSettle)
	c.StartTimeout = withDefault(c.StartTimeout, DefaultStartTimeout)
	c.StopTimeout = withDefault(c.StopTimeout, DefaultStopTimeout)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

func (c *RunConfig) wants(s string) bool { return slices.Contains(c.Scenarios, s) }

func (c *RunConfig) wantsNode() bool {
	return slices.ContainsFunc(c.Scenarios, func(s string) bool { return slices.Contains(nodeScenarios, s) })
}

func (c *RunConfig) wantsSharedNode() bool {
	return slices.ContainsFunc(c.Scenarios, func(s string) bool { return slices.Contains(sharedNodeScenarios, s) })
}

// descriptors is how many file descriptors the selected scenarios need in
// this process (one per client connection, the largest scenario's) and,
// as many, in the node.
func (c *RunConfig) descriptors() uint64 {
	n := 0
	if c.wants(ScenarioIdle) {
		n = max(n, c.IdleConns)
	}
	if c.wants(ScenarioFanout) || c.wants(ScenarioFanoutNATS) {
		n = max(n, c.FanoutSubs)
	}
	if c.wants(ScenarioChannel) {
		n = max(n, c.ChannelSubs)
	}
	if c.wants(ScenarioStorm) {
		n = max(n, c.StormClients)
	}
	return uint64(n + descriptorSlack)
}

// maxWindow is the largest fan-out window.
func (c *RunConfig) maxWindow() int { return slices.Max(c.FanoutWindows) }

// DefaultPropagationSizes are the fleet sizes the issue asks about.
var DefaultPropagationSizes = []int{1000, 10_000}

// Report is the outcome of Run. A scenario that failed has no result and a
// line in Errors.
type Report struct {
	Started   time.Time `json:"started"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	Settings  Settings  `json:"settings"`
	// Pin is where the servers and the load ran; PinNote says why they
	// were not pinned as asked, when they were not.
	Pin     Pin    `json:"pin"`
	PinNote string `json:"pin_note,omitempty"`
	// Files is this process's descriptor limit as Run set it.
	Files     FileLimit            `json:"files"`
	Roundtrip *RoundtripComparison `json:"roundtrip,omitempty"`
	// Fanout is one run per window, in RunConfig.FanoutWindows order.
	Fanout []FanoutResult `json:"fanout,omitempty"`
	// Channel is the 100,000-subscriber channel; nil when not run.
	Channel *ChannelResult `json:"channel,omitempty"`
	// BrokerChannel is the channel scenario's measurement of the node's
	// broker alone, at the full --channel-subs whatever the descriptors.
	BrokerChannel *BrokerChannelResult `json:"broker_channel,omitempty"`
	// Storm is the reconnect storm; nil when not run.
	Storm *StormResult `json:"storm,omitempty"`
	// Goals is every target of issue 10 with what this run measured;
	// StormGoals those of issue 11 (the reconnect storm).
	Goals      []Goal `json:"goals,omitempty"`
	StormGoals []Goal `json:"storm_goals,omitempty"`
	// HandshakeTraffic is the handshake-traffic scenario's result;
	// Issue12Goals the goals of issue 12, from it and from GoBench (the
	// Go benchmarks' results, RunConfig.GoBench).
	HandshakeTraffic *TrafficCostComparison `json:"handshake_traffic,omitempty"`
	Issue12Goals     []Goal                 `json:"issue12_goals,omitempty"`
	GoBench          GoBench                `json:"-"`
	// FanoutNATS is the fan-out across nodes through NATS against the
	// node alone; nil when skipped.
	FanoutNATS *FanoutComparison    `json:"fanout_nats,omitempty"`
	Idle       *IdleComparison      `json:"idle,omitempty"`
	Handshake  *HandshakeComparison `json:"handshake,omitempty"`
	// Propagation measures the control plane on its embedded store, one
	// replica; PropagationEtcd on etcd, several replicas. Nil when skipped.
	Propagation     *PropagationRuns `json:"propagation,omitempty"`
	PropagationEtcd *PropagationRuns `json:"propagation_etcd,omitempty"`
	// Skipped names selected scenarios that did not run and why.
	Skipped []string `json:"skipped,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// Failed reports whether anything went wrong (a missed target is not a
// failure).
func (r *Report) Failed() bool { return len(r.Errors) > 0 }

func (r *Report) fail(err error) { r.Errors = append(r.Errors, err.Error()) }

// Settings records what a run was asked to do.
type Settings struct {
	Scenarios      []string `json:"scenarios"`
	Origin         string   `json:"origin"`
	Duration       string   `json:"duration"`
	Rounds         int      `json:"rounds"`
	Clients        int      `json:"clients"`
	IdleConns      int      `json:"idle_conns"`
	FanoutSubs     int      `json:"fanout_subscribers"`
	FanoutMessages int      `json:"fanout_messages"`
	FanoutWindows  []int    `json:"fanout_windows"`
	Handshakes     int      `json:"handshakes"`
	ChannelSubs    int      `json:"channel_subscribers"`
	StormClients   int      `json:"storm_clients,omitempty"`
	Settle         string   `json:"settle"`
	// Propagation settings; empty when neither propagation scenario runs.
	PropagationClients []int `json:"propagation_clients,omitempty"`
	PropagationApplies int   `json:"propagation_applies,omitempty"`
	ClientsPerConn     int   `json:"clients_per_conn,omitempty"`
	// Replicas on etcd; 0 when propagation-etcd does not run.
	Replicas int `json:"replicas,omitempty"`
}

// PropagationRuns is a propagation scenario at each fleet size, with the
// issue's target judged on the TargetClients run.
type PropagationRuns struct {
	// Setup names the control plane measured: its store and replicas.
	Setup         string              `json:"setup"`
	Runs          []PropagationResult `json:"runs"`
	TargetClients int                 `json:"target_clients"`
	TargetMax     time.Duration       `json:"target_max_ns"`
	// Judged: a run of TargetClients completed; Met: the time from every
	// apply call to the last ACK received is under TargetMax.
	Judged bool `json:"target_judged"`
	Met    bool `json:"target_met"`
}

// FanoutComparison is one fan-out through two nodes sharing channels over
// NATS (subscribers split between them, the publisher on the first)
// against the same fan-out on one node with its in-process broker.
type FanoutComparison struct {
	InProcess *FanoutResult `json:"in_process,omitempty"`
	NATS      *FanoutResult `json:"nats,omitempty"`
	// NATSServerCPU is nats-server's share of NATS.ServerCPU.
	NATSServerCPU time.Duration `json:"nats_server_cpu_ns,omitempty"`
}

// RoundtripComparison is the node against bare gws, same clients and
// frames, judged on the servers' CPU per round trip (throughput on a
// machine the load generator shares says more about the load).
type RoundtripComparison struct {
	Node     *RoundtripResult `json:"node,omitempty"`
	Echo     *RoundtripResult `json:"echo,omitempty"`
	Ratio    float64          `json:"ratio"`     // node / echo round trips per second
	CPURatio float64          `json:"cpu_ratio"` // node / echo server CPU per round trip
	Target   float64          `json:"target_max_cpu_ratio"`
	Met      bool             `json:"target_met"`
}

// IdleComparison is the node against bare gws, same number of connections.
type IdleComparison struct {
	Node             *IdleResult `json:"node,omitempty"`
	Echo             *IdleResult `json:"echo,omitempty"`
	DiffBytesPerConn float64     `json:"diff_bytes_per_conn"` // node − echo
	TargetMaxDiff    float64     `json:"target_max_diff_bytes"`
	Met              bool        `json:"target_met"`
}

// HandshakeComparison is the node (origin check and limits on) against bare
// gws, in alternating rounds.
type HandshakeComparison struct {
	Node     *HandshakeResult `json:"node,omitempty"`
	Echo     *HandshakeResult `json:"echo,omitempty"`
	Ratio    float64          `json:"ratio"`     // node / echo handshakes per second
	CPURatio float64          `json:"cpu_ratio"` // node / echo server CPU per handshake
	Target   float64          `json:"target_min_ratio"`
	Met      bool             `json:"target_met"`
}

// Run starts the node (with BenchPolicy in a temporary policy file), the
// echo baseline and the control plane as child processes on loopback, each
// only if a selected scenario needs it, runs the selected scenarios
// against them, and stops them all. Scenario failures are collected in the
// report and the run goes on; the error is for a run that could not start
// (bad config, a child that did not come up). Every child is stopped before
// Run returns, on every path.
func Run(ctx context.Context, cfg RunConfig) (rep *Report, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	rep = &Report{
		Started:   time.Now().UTC(),
		GoVersion: runtime.Version(),
		CPUs:      runtime.NumCPU(),
		Settings: Settings{
			Scenarios: cfg.Scenarios, Origin: cfg.Origin, Duration: cfg.Duration.String(), Rounds: cfg.Rounds,
			Clients: cfg.Clients, IdleConns: cfg.IdleConns, FanoutSubs: cfg.FanoutSubs,
			FanoutMessages: cfg.FanoutMessages, FanoutWindows: cfg.FanoutWindows,
			Handshakes: cfg.Handshakes, ChannelSubs: cfg.ChannelSubs, Settle: cfg.Settle.String(),
		},
	}
	// A scenario whose servers' binaries were not given is skipped, and
	// the report says which flag it needs.
	skip := map[string]string{}
	if cfg.ControlBin == "" {
		skip[ScenarioPropagation] = "no control-plane binary (--control-bin)"
		skip[ScenarioPropagationEtcd] = skip[ScenarioPropagation]
	} else if cfg.EtcdBin == "" {
		skip[ScenarioPropagationEtcd] = "no etcd binary (--etcd-bin)"
	}
	if cfg.NATSBin == "" {
		skip[ScenarioFanoutNATS] = "no nats-server binary (--nats-bin)"
	}
	runs := func(s string) bool { _, skipped := skip[s]; return cfg.wants(s) && !skipped }
	for _, sc := range AllScenarios {
		if why, skipped := skip[sc]; skipped && cfg.wants(sc) {
			rep.Skipped = append(rep.Skipped, sc+": "+why)
		}
	}
	if runs(ScenarioPropagation) || runs(ScenarioPropagationEtcd) {
		rep.Settings.PropagationClients = cfg.PropagationClients
		rep.Settings.PropagationApplies = cfg.PropagationApplies
		rep.Settings.ClientsPerConn = cfg.ClientsPerConn
	}
	if runs(ScenarioPropagationEtcd) {
		rep.Settings.Replicas = cfg.Replicas
	}
	if runs(ScenarioStorm) {
		rep.Settings.StormClients = cfg.StormClients
	}
	if cfg.GoBench != "" {
		// A file that cannot be read fails the run's report, not the run:
		// the scenarios' figures still count.
		if rep.GoBench, err = ReadGoBench(cfg.GoBench); err != nil {
			rep.fail(err)
			err = nil
		}
	}

	// Descriptors before anything starts: the children inherit the limit.
	if rep.Files, err = raiseFileLimit(cfg.descriptors()); err != nil {
		return nil, err
	}
	if rep.Files.Note != "" {
		logf(cfg.Progress, "%s", rep.Files.Note)
	}
	undo, err := applyPin(&cfg, rep)
	if err != nil {
		return nil, err
	}
	defer undo()

	dir, err := os.MkdirTemp("", "wsfleet-bench-")
	if err != nil {
		return nil, fmt.Errorf("loadgen: policy directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	policyPath, err := writePolicyFile(dir, cfg.Origin)
	if err != nil {
		return nil, err
	}

	var node *child
	var nodeTarget Target
	if slices.ContainsFunc(sharedNodeScenarios, runs) {
		logf(cfg.Progress, "starting node %s", cfg.NodeBin)
		node, err = startNode(ctx, cfg, "node", "bench", policyPath)
		if err != nil {
			return nil, err
		}
		// Children are stopped last-started first; a child that does not
		// exit cleanly on SIGTERM fails the run.
		defer stopChild(node, cfg.StopTimeout, &rep, &err)
		nodeTarget = Target{Name: "node", URL: "ws://" + node.addr + "/ws", Origin: cfg.Origin}
	}

	var echo *child
	var echoTarget Target
	if cfg.wants(ScenarioRoundtrip) || cfg.wants(ScenarioIdle) || cfg.wants(ScenarioHandshake) {
		logf(cfg.Progress, "starting echo server %s %s", cfg.EchoBin, strings.Join(cfg.EchoArgs, " "))
		echo, err = startChild(ctx, childSpec{
			name:     "echo",
			bin:      cfg.EchoBin,
			args:     cfg.EchoArgs,
			env:      cfg.Env,
			readyMsg: echoReadyMsg,
			timeout:  cfg.StartTimeout,
			cpus:     cfg.Pin.Server,
		})
		if err != nil {
			return nil, err
		}
		defer stopChild(echo, cfg.StopTimeout, &rep, &err)
		echoTarget = Target{Name: "echo", URL: "ws://" + echo.addr + "/ws", Origin: cfg.Origin}
	}

	var control *child
	if runs(ScenarioPropagation) {
		logf(cfg.Progress, "starting control plane %s", cfg.ControlBin)
		control, err = startControl(ctx, cfg, "control plane", filepath.Join(dir, "control"))
		if err != nil {
			return nil, err
		}
		defer stopChild(control, cfg.StopTimeout, &rep, &err)
	}

	r := runner{cfg: cfg, rep: rep, dir: dir, policyPath: policyPath, node: node, echo: echo, control: control,
		nodeTarget: nodeTarget, echoTarget: echoTarget}
	for _, s := range AllScenarios {
		if !runs(s) {
			continue
		}
		if ctx.Err() != nil {
			rep.fail(fmt.Errorf("%s: not run: %w", s, context.Cause(ctx)))
			continue
		}
		r.scenario(ctx, s)
	}
	// Issue 10's goals when one of its scenarios ran (handshake-traffic
	// alone has only issue 12's).
	if slices.ContainsFunc(cfg.Scenarios, func(s string) bool { return s != ScenarioHandshakeTraffic && slices.Contains(nodeScenarios, s) }) {
		rep.Goals = Goals(rep)
	}
	if cfg.wants(ScenarioStorm) {
		rep.StormGoals = StormGoals(rep)
	}
	if cfg.wants(ScenarioHandshakeTraffic) || rep.GoBench != nil {
		rep.Issue12Goals = Issue12Goals(rep)
	}
	return rep, nil
}

// startControl starts a wsfleet-control in --dev mode on loopback ports
// the kernel picks, with its embedded store in dataDir; more flags (the
// etcd store's) come before cfg.ControlArgs. The default (info) log level
// is kept: the ready line is an info line, and the address is only known
// from it.
func startControl(ctx context.Context, cfg RunConfig, name, dataDir string, more ...string) (*child, error) {
	args := []string{"--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}
	args = append(append(args, more...), cfg.ControlArgs...)
	return startChild(ctx, childSpec{
		name:      name,
		bin:       cfg.ControlBin,
		args:      args,
		env:       cfg.Env,
		readyMsg:  controlReadyMsg,
		addrField: controlAddrField,
		timeout:   cfg.StartTimeout,
		cpus:      cfg.Pin.Server,
	})
}

// startNode starts a wsfleet-node on loopback ports the kernel picks,
// running the bench policy from policyPath (no control plane), with more
// flags before cfg.NodeArgs.
func startNode(ctx context.Context, cfg RunConfig, name, id, policyPath string, more ...string) (*child, error) {
	args := []string{"--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--policy-file", policyPath, "--node-id", id, "--log-format", "json"}
	if cfg.NodePprof {
		args = append(args, "--pprof")
	}
	args = append(append(args, more...), cfg.NodeArgs...)
	c, err := startChild(ctx, childSpec{
		name:     name,
		bin:      cfg.NodeBin,
		args:     args,
		env:      cfg.Env,
		readyMsg: nodeReadyMsg,
		timeout:  cfg.StartTimeout,
		cpus:     cfg.Pin.Server,
	})
	if err == nil && cfg.NodePprof {
		logf(cfg.Progress, "%s: profiles at http://%s/debug/pprof/ (go tool pprof http://%s/debug/pprof/profile?seconds=10)",
			name, c.readyField("metrics_addr"), c.readyField("metrics_addr"))
	}
	return c, err
}

// applyPin resolves cfg.Pin against the CPUs this process may use, pins
// this process (every thread; GOMAXPROCS follows) to the load CPUs and
// leaves the server CPUs in cfg.Pin for startChild, recording both in rep.
// undo puts this process back as it was.
func applyPin(cfg *RunConfig, rep *Report) (undo func(), err error) {
	undo = func() {}
	if !cfg.Pin.On() && !cfg.Pin.Auto {
		return undo, nil
	}
	allowed, err := allowedCPUs()
	if err != nil {
		return undo, err
	}
	pin, note, err := cfg.Pin.resolve(allowed)
	if err != nil {
		return undo, err
	}
	cfg.Pin, rep.Pin, rep.PinNote = pin, pin, note
	if !pin.On() {
		logf(cfg.Progress, "%s", note)
		return undo, nil
	}
	if err := pinProcess(os.Getpid(), pin.Load); err != nil {
		return undo, err
	}
	procs := runtime.GOMAXPROCS(len(pin.Load))
	logf(cfg.Progress, "pinned: servers on CPU %s, load (this process, GOMAXPROCS %d) on CPU %s",
		cpuList(pin.Server), len(pin.Load), cpuList(pin.Load))
	return func() {
		runtime.GOMAXPROCS(procs)
		if err := pinProcess(os.Getpid(), allowed); err != nil {
			logf(cfg.Progress, "unpinning: %v", err)
		}
	}, nil
}

// stopChild stops c at the end of Run: its failure goes into the report,
// or joins Run's error when Run is failing without one.
func stopChild(c *child, timeout time.Duration, rep **Report, err *error) {
	serr := c.stop(timeout)
	switch {
	case serr == nil:
	case *rep != nil:
		(*rep).fail(serr)
	default:
		*err = errors.Join(*err, serr)
	}
}

// runner runs one scenario at a time against the children.
type runner struct {
	cfg                    RunConfig
	rep                    *Report
	dir, policyPath        string
	node, echo, control    *child
	nodeTarget, echoTarget Target
}

// stop stops a child a scenario started; a failure to stop cleanly fails
// the run.
func (r *runner) stop(c *child) {
	if err := c.stop(r.cfg.StopTimeout); err != nil {
		r.rep.fail(err)
	}
}

// alive fails the scenario if a child it needs has died.
func (r *runner) alive(scenario string, children ...*child) bool {
	for _, c := range children {
		if err := c.alive(); err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", scenario, err))
			return false
		}
	}
	return true
}

func (r *runner) scenario(ctx context.Context, s string) {
	cfg := r.cfg
	switch s {
	case ScenarioIdle:
		if !r.alive(s, r.node, r.echo) {
			return
		}
		cmp := &IdleComparison{TargetMaxDiff: TargetIdleDiffBytes}
		// One server after the other: this process holds every client
		// descriptor, and two sets of IdleConns may not fit its limit.
		for _, side := range []struct {
			c   *child
			t   Target
			out **IdleResult
		}{{r.node, r.nodeTarget, &cmp.Node}, {r.echo, r.echoTarget, &cmp.Echo}} {
			logf(cfg.Progress, "idle: %s: %d connections, settle %s", side.t.Name, cfg.IdleConns, cfg.Settle)
			pid := side.c.pid
			res, err := Idle(ctx, IdleConfig{
				Target: side.t, Conns: cfg.IdleConns, Dialers: cfg.Dialers, Settle: cfg.Settle,
				RSS: func() (int64, error) { return ReadRSS(pid) }, CPU: cpuOf(pid),
			})
			if err != nil {
				r.rep.fail(err)
				continue
			}
			*side.out = &res
		}
		if cmp.Node != nil && cmp.Echo != nil {
			cmp.DiffBytesPerConn = cmp.Node.BytesPerConn - cmp.Echo.BytesPerConn
			cmp.Met = cmp.DiffBytesPerConn <= cmp.TargetMaxDiff
		}
		r.rep.Idle = cmp

	case ScenarioRoundtrip:
		if !r.alive(s, r.node, r.echo) {
			return
		}
		r.rep.Roundtrip = r.roundtrip(ctx)

	case ScenarioFanout:
		for _, w := range cfg.FanoutWindows {
			if !r.alive(s, r.node) {
				return
			}
			logf(cfg.Progress, "fanout: node: %d subscribers, up to %d messages, window %d", cfg.FanoutSubs, cfg.FanoutMessages, w)
			res, err := Fanout(ctx, FanoutConfig{
				Target: r.nodeTarget, Subscribers: cfg.FanoutSubs, Messages: cfg.FanoutMessages,
				Window: w, Duration: cfg.Duration, Dialers: cfg.Dialers, CPU: cpuOf(r.node.pid),
			})
			if err != nil {
				r.rep.fail(fmt.Errorf("window %d: %w", w, err))
				continue
			}
			r.rep.Fanout = append(r.rep.Fanout, res)
		}

	case ScenarioHandshake:
		if !r.alive(s, r.node, r.echo) {
			return
		}
		r.rep.Handshake = r.handshakes(ctx)

	case ScenarioHandshakeTraffic:
		r.rep.HandshakeTraffic = r.handshakeTraffic(ctx)

	case ScenarioChannel:
		logf(r.cfg.Progress, "channel: the broker alone: %d subscribers on one channel", r.cfg.ChannelSubs)
		if res, err := BrokerChannel(ctx, r.cfg.ChannelSubs); err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", ScenarioChannel, err))
		} else {
			r.rep.BrokerChannel = &res
		}
		r.rep.Channel = r.channel(ctx)

	case ScenarioStorm:
		r.rep.Storm = r.storm(ctx)

	case ScenarioFanoutNATS:
		if !r.alive(s, r.node) {
			return
		}
		r.rep.FanoutNATS = r.fanoutNATS(ctx)

	case ScenarioPropagation:
		r.rep.Propagation = r.propagation(ctx, s, "bolt, 1 replica", []*child{r.control})

	case ScenarioPropagationEtcd:
		r.rep.PropagationEtcd = r.propagationEtcd(ctx)
	}
}

// fanoutNATS runs the fan-out twice with the same settings: on the node
// alone (its in-process broker: every subscriber and the publisher on it),
// then on two more nodes sharing channels through a nats-server started
// for it (subscribers split between them, the publisher on the first), and
// reads the servers' CPU time around each loaded phase. The NATS side is
// stopped before it returns.
func (r *runner) fanoutNATS(ctx context.Context) *FanoutComparison {
	cfg := r.cfg
	out := &FanoutComparison{}
	fc := FanoutConfig{
		Channel: "fanout-nats", Subscribers: cfg.FanoutSubs, Messages: cfg.FanoutMessages,
		Window: cfg.maxWindow(), Duration: cfg.Duration, Dialers: cfg.Dialers,
	}

	logf(cfg.Progress, "fanout-nats: in-process: %d subscribers on the node, up to %d messages", cfg.FanoutSubs, cfg.FanoutMessages)
	in := fc
	in.Target, in.CPU = r.nodeTarget, cpuOf(r.node.pid)
	if res, err := Fanout(ctx, in); err != nil {
		r.rep.fail(fmt.Errorf("%s: in-process: %w", ScenarioFanoutNATS, err))
	} else {
		out.InProcess = &res
	}

	logf(cfg.Progress, "fanout-nats: starting nats-server %s and two nodes on it", cfg.NATSBin)
	ns, err := startChild(ctx, childSpec{
		name: "nats-server", bin: cfg.NATSBin, args: []string{"-a", "127.0.0.1", "-p", "-1"},
		env: cfg.Env, readyRe: natsReady, timeout: cfg.StartTimeout, cpus: cfg.Pin.Server,
	})
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioFanoutNATS, err))
		return out
	}
	defer r.stop(ns)
	var nodes []*child
	var targets []Target
	var nodePids []int
	for i := range 2 {
		n, err := startNode(ctx, cfg, fmt.Sprintf("NATS node %d", i+1), fmt.Sprintf("bench-nats-%d", i+1), r.policyPath,
			"--broker", "nats://"+ns.addr)
		if err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", ScenarioFanoutNATS, err))
			return out
		}
		// Stopped before nats-server (deferred later, run earlier).
		defer r.stop(n)
		nodes = append(nodes, n)
		targets = append(targets, Target{Name: n.name, URL: "ws://" + n.addr + "/ws", Origin: cfg.Origin})
		nodePids = append(nodePids, n.pid)
	}
	logf(cfg.Progress, "fanout-nats: NATS: %d subscribers split over 2 nodes, publisher on node 1, up to %d messages", cfg.FanoutSubs, cfg.FanoutMessages)
	nc := fc
	nc.Target, nc.SubscriberTargets = targets[0], targets
	// The nodes' and nats-server's CPU; nats-server's readings are kept
	// for its own share.
	var natsReads []time.Duration
	nc.CPU = func() (time.Duration, error) {
		own, err := ReadCPU(ns.pid)
		if err != nil {
			return 0, err
		}
		natsReads = append(natsReads, own)
		nodesCPU, err := cpuOf(nodePids...)()
		return own + nodesCPU, err
	}
	if !r.alive(ScenarioFanoutNATS, append([]*child{ns}, nodes...)...) {
		return out
	}
	if res, err := Fanout(ctx, nc); err != nil {
		r.rep.fail(fmt.Errorf("%s: NATS: %w", ScenarioFanoutNATS, err))
	} else {
		out.NATS = &res
		if len(natsReads) == 2 {
			out.NATSServerCPU = natsReads[1] - natsReads[0]
		}
	}
	return out
}

// propagationEtcd starts an etcd and cfg.Replicas control planes on it,
// one after the other (the first creates the store), runs the propagation
// scenario against them and stops them all, etcd last.
func (r *runner) propagationEtcd(ctx context.Context) *PropagationRuns {
	cfg := r.cfg
	setup := fmt.Sprintf("etcd, %d replicas", cfg.Replicas)
	logf(cfg.Progress, "propagation-etcd: starting etcd %s", cfg.EtcdBin)
	etcdDir := filepath.Join(r.dir, "etcd")
	etcd, err := startChild(ctx, childSpec{
		name: "etcd", bin: cfg.EtcdBin,
		// Port 0 everywhere: a one-member cluster never dials its peer URL,
		// and the ready line gives the client port.
		args: []string{"--name", "bench", "--data-dir", etcdDir,
			"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:0",
			"--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:0",
			"--initial-cluster", "bench=http://127.0.0.1:0"},
		env: cfg.Env, readyMsg: etcdReadyMsg, addrField: etcdAddrField, timeout: cfg.StartTimeout,
		diesOfSIGTERM: true, cpus: cfg.Pin.Server,
	})
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioPropagationEtcd, err))
		return nil
	}
	defer r.stop(etcd)
	replicas := make([]*child, cfg.Replicas)
	for i := range replicas {
		name := fmt.Sprintf("control plane replica %d", i+1)
		logf(cfg.Progress, "propagation-etcd: starting %s on etcd %s", name, etcd.addr)
		replicas[i], err = startControl(ctx, cfg, name, filepath.Join(r.dir, fmt.Sprint("replica-", i+1)),
			"--store", "etcd", "--etcd-endpoints", etcd.addr)
		if err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", ScenarioPropagationEtcd, err))
			return nil
		}
		defer r.stop(replicas[i])
	}
	return r.propagation(ctx, ScenarioPropagationEtcd, setup, replicas)
}

// propagation runs Propagation at each fleet size against the control
// plane's replicas (applies through the first), one size after the
// other. A size that fails is reported and the next one still runs: the
// control plane stays up between them, and the clients of a failed size
// are gone before the next starts.
func (r *runner) propagation(ctx context.Context, scenario, setup string, replicas []*child) *PropagationRuns {
	cfg := r.cfg
	out := &PropagationRuns{Setup: setup, TargetClients: TargetPropagationClients, TargetMax: TargetPropagation}
	addrs := make([]admin.Config, len(replicas))
	pids := make([]int, len(replicas))
	for i, c := range replicas {
		addrs[i], pids[i] = admin.Config{Addr: c.addr}, c.pid
	}
	for _, n := range cfg.PropagationClients {
		if !r.alive(scenario, replicas...) {
			break
		}
		if ctx.Err() != nil {
			r.rep.fail(fmt.Errorf("%s %d clients: not run: %w", scenario, n, context.Cause(ctx)))
			continue
		}
		logf(cfg.Progress, "%s: %d policy clients over %d connections to %s, %d applies",
			scenario, n, ConnCount(n, cfg.ClientsPerConn, len(replicas)), plural(len(replicas), "replica"), cfg.PropagationApplies)
		res, err := Propagation(ctx, PropagationConfig{
			Control:        addrs[0],
			Replicas:       addrs,
			Clients:        n,
			ClientsPerConn: cfg.ClientsPerConn,
			Applies:        cfg.PropagationApplies,
			RSS:            rssOf(pids...),
		})
		if err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", scenario, err))
			continue
		}
		out.Runs = append(out.Runs, res)
		if n == out.TargetClients {
			out.Judged = true
			out.Met = res.ReceivedLastMax < out.TargetMax
		}
	}
	return out
}

// plural is "1 replica", "3 replicas".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// rssOf sums ReadRSS over pids.
func rssOf(pids ...int) func() (int64, error) {
	return func() (int64, error) {
		var total int64
		for _, pid := range pids {
			n, err := ReadRSS(pid)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
}

// roundtrip compares round trips in cfg.Rounds alternating rounds of
// Duration/Rounds each, so both servers get Duration in total.
func (r *runner) roundtrip(ctx context.Context) *RoundtripComparison {
	cfg := r.cfg
	cmp := &RoundtripComparison{Target: TargetRoundtripCPURatio}
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	node := func() error {
		res, err := Roundtrip(ctx, RoundtripConfig{Target: r.nodeTarget, Mode: ModeChannel, Clients: cfg.Clients, Duration: slice,
			CPU: cpuOf(r.node.pid)})
		if err == nil {
			cmp.Node = merged(cmp.Node, res)
		}
		return err
	}
	echo := func() error {
		res, err := Roundtrip(ctx, RoundtripConfig{Target: r.echoTarget, Mode: ModeEcho, Clients: cfg.Clients, Duration: slice,
			CPU: cpuOf(r.echo.pid)})
		if err == nil {
			cmp.Echo = merged(cmp.Echo, res)
		}
		return err
	}
	logf(cfg.Progress, "roundtrip: node and echo: %d clients, %d alternating rounds of %s", cfg.Clients, cfg.Rounds, slice)
	for round := range cfg.Rounds {
		first, second := node, echo
		if round%2 == 1 {
			first, second = echo, node
		}
		if err := errors.Join(first(), second()); err != nil {
			r.rep.fail(err)
			cmp.Node, cmp.Echo = nil, nil
			return cmp
		}
	}
	if cmp.Echo.PerSecond > 0 {
		cmp.Ratio = cmp.Node.PerSecond / cmp.Echo.PerSecond
	}
	if cmp.Echo.CPUPerRoundTrip > 0 {
		cmp.CPURatio = cmp.Node.CPUPerRoundTrip / cmp.Echo.CPUPerRoundTrip
		cmp.Met = cmp.CPURatio <= cmp.Target
	}
	return cmp
}

// handshakesPerRound is each side's handshakes in one round of
// alternateHandshakes.
func (r *runner) handshakesPerRound() int { return max(1, r.cfg.Handshakes/r.cfg.Rounds) }

// alternateHandshakes measures handshakes against a and b (server pids
// pidA and pidB) in RunConfig.Rounds rounds of handshakesPerRound each,
// a first in even rounds and b first in odd ones, and returns each side's
// merged result.
func (r *runner) alternateHandshakes(ctx context.Context, a Target, pidA int, b Target, pidB int) (resA, resB *HandshakeResult, err error) {
	cfg := r.cfg
	per := r.handshakesPerRound()
	side := func(t Target, pid int, out **HandshakeResult) func() error {
		return func() error {
			res, err := Handshakes(ctx, HandshakeConfig{Target: t, Total: per, Workers: cfg.Clients, CPU: cpuOf(pid)})
			if err == nil {
				if *out == nil {
					*out = &res
				} else {
					(*out).Merge(res)
				}
			}
			return err
		}
	}
	sideA, sideB := side(a, pidA, &resA), side(b, pidB, &resB)
	for round := range cfg.Rounds {
		first, second := sideA, sideB
		if round%2 == 1 {
			first, second = sideB, sideA
		}
		if err := errors.Join(first(), second()); err != nil {
			return nil, nil, err
		}
	}
	return resA, resB, nil
}

// handshakes compares handshakes in cfg.Rounds alternating rounds of
// Handshakes/Rounds each per server, as roundtrip does.
func (r *runner) handshakes(ctx context.Context) *HandshakeComparison {
	cfg := r.cfg
	cmp := &HandshakeComparison{Target: TargetHandshakeRatio}
	logf(cfg.Progress, "handshake: node and echo: %d handshakes over %d workers, %d alternating rounds", r.handshakesPerRound()*cfg.Rounds, cfg.Clients, cfg.Rounds)
	var err error
	if cmp.Node, cmp.Echo, err = r.alternateHandshakes(ctx, r.nodeTarget, r.node.pid, r.echoTarget, r.echo.pid); err != nil {
		r.rep.fail(err)
		return cmp
	}
	if cmp.Echo.PerSecond > 0 {
		cmp.Ratio = cmp.Node.PerSecond / cmp.Echo.PerSecond
		cmp.Met = cmp.Ratio >= cmp.Target
	}
	if cmp.Echo.CPUPerHandshake > 0 {
		cmp.CPURatio = cmp.Node.CPUPerHandshake / cmp.Echo.CPUPerHandshake
	}
	return cmp
}

// channel runs the channel scenario on a node started for it alone, so
// its connections find a fresh node and leave nothing behind for the next
// scenario; the node is stopped before it returns (it may first have to
// unsubscribe every connection the scenario closed, hence the longer
// stop timeout).
func (r *runner) channel(ctx context.Context) *ChannelResult {
	cfg := r.cfg
	// Each subscriber is a descriptor here and one in the node, which
	// inherits this process's limit. With too few, the channel is as large
	// as they allow, and the report says so.
	subs, limited := cfg.ChannelSubs, ""
	if have := r.rep.Files.Soft; have < uint64(subs+descriptorSlack) {
		subs = int(have) - descriptorSlack
		if subs < minChannelSubs {
			r.rep.fail(fmt.Errorf("%s: %w: %d subscribers need %d descriptors here and in the node; %s",
				ScenarioChannel, ErrFiles, cfg.ChannelSubs, cfg.ChannelSubs+descriptorSlack, r.rep.Files.Note))
			return nil
		}
		limited = fmt.Sprintf("%s subscribers, not %s: the descriptor limit is %s per process (hard %s), "+
			"and the node and the load each need one per subscriber", grouped(float64(subs)), grouped(float64(cfg.ChannelSubs)),
			grouped(float64(have)), grouped(float64(r.rep.Files.Hard)))
		logf(cfg.Progress, "channel: %s", limited)
	}
	logf(cfg.Progress, "channel: starting a node of its own")
	n, err := startNode(ctx, cfg, "channel node", "bench-channel", r.policyPath)
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioChannel, err))
		return nil
	}
	defer func() {
		if err := n.stop(max(cfg.StopTimeout, channelStopTimeout)); err != nil {
			r.rep.fail(fmt.Errorf("%s: %w", ScenarioChannel, err))
		}
	}()
	logf(cfg.Progress, "channel: %d subscribers on one channel, then one publish", subs)
	res, err := Channel(ctx, ChannelConfig{
		Target:      Target{Name: "node", URL: "ws://" + n.addr + "/ws", Origin: cfg.Origin},
		Subscribers: subs, Dialers: cfg.Dialers, Settle: cfg.Settle,
		RSS: func() (int64, error) { return ReadRSS(n.pid) }, CPU: cpuOf(n.pid),
	})
	if err != nil {
		r.rep.fail(err)
		return nil
	}
	res.Requested, res.Limited = cfg.ChannelSubs, limited
	return &res
}

// merged adds res to acc, the first round becoming acc.
func merged(acc *RoundtripResult, res RoundtripResult) *RoundtripResult {
	if acc == nil {
		return &res
	}
	acc.Merge(res)
	return acc
}

func logf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, "wsfleet-bench: "+format+"\n", args...)
}

// storm runs the reconnect storm on a node of its own, started with the
// bench policy at the storm's handshake rate and burst, and restarted
// (SIGKILL, then the same binary at the same address) once every client
// is connected. The node is stopped before it returns.
func (r *runner) storm(ctx context.Context) *StormResult {
	cfg := r.cfg
	// Each client is a descriptor here and one in the node.
	if have := r.rep.Files.Soft; have < uint64(cfg.StormClients+descriptorSlack) {
		r.rep.fail(fmt.Errorf("%s: %w: %d clients need %d descriptors here and in the node; %s",
			ScenarioStorm, ErrFiles, cfg.StormClients, cfg.StormClients+descriptorSlack, r.rep.Files.Note))
		return nil
	}
	p := BenchPolicy(cfg.Origin)
	p.Limits.HandshakesPerSecond = int32(cfg.StormRate)
	p.Limits.HandshakeBurst = int32(cfg.StormBurst)
	policyPath, err := writePolicy(r.dir, "storm-policy.yaml", p)
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioStorm, err))
		return nil
	}
	const id = "bench-storm"
	logf(cfg.Progress, "storm: starting a node of its own (handshakes %d/s, burst %d)", cfg.StormRate, cfg.StormBurst)
	n, err := startNode(ctx, cfg, "storm node", id, policyPath)
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioStorm, err))
		return nil
	}
	addr := n.addr
	// A closure: the restart below replaces n, and the node to stop is
	// the one running then.
	defer func() { r.stopOwn(ScenarioStorm, n) }()
	res, err := Storm(ctx, StormConfig{
		Target:  Target{Name: "node", URL: "ws://" + addr + "/ws", Origin: cfg.Origin},
		NodeID:  id,
		Clients: cfg.StormClients, Rate: cfg.StormRate, Burst: cfg.StormBurst, Timeout: cfg.StormTimeout,
		Restart: func(ctx context.Context) (func() (HandshakeCount, error), error) {
			if err := n.kill(); err != nil {
				return nil, err
			}
			restarted, err := startNode(ctx, cfg, "restarted storm node", id+restartedSuffix, policyPath, "--listen", addr)
			if err != nil {
				return nil, err
			}
			n = restarted
			metrics := restarted.readyField("metrics_addr")
			return func() (HandshakeCount, error) { return ReadHandshakes(metrics) }, nil
		},
		Progress: func(format string, args ...any) { logf(cfg.Progress, format, args...) },
	})
	if err != nil {
		r.rep.fail(err)
		if res.Clients == 0 {
			return nil
		}
	}
	return &res
}
