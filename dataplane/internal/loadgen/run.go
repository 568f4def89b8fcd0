package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
	// ScenarioPropagation measures the control plane, not the node: it
	// runs only when RunConfig.ControlBin is set.
	ScenarioPropagation = "propagation"
)

// AllScenarios in the order Run runs them. Idle goes first, while both
// servers are fresh: heap an earlier scenario left behind would be reused
// by the idle connections and hide part of their cost. Propagation goes
// last: its thousands of in-process clients leave this process's heap and
// scheduler busier than the node scenarios should find them.
var AllScenarios = []string{ScenarioIdle, ScenarioRoundtrip, ScenarioFanout, ScenarioHandshake, ScenarioPropagation}

// nodeScenarios are those that need the node.
var nodeScenarios = []string{ScenarioIdle, ScenarioRoundtrip, ScenarioFanout, ScenarioHandshake}

// Targets the issue sets for the node against bare gws.
const (
	// TargetRoundtripRatio is the least node/echo round-trip ratio.
	TargetRoundtripRatio = 0.85
	// TargetIdleDiffBytes is the most extra RSS per idle connection.
	TargetIdleDiffBytes = 2048
)

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
	nodeReadyMsg       = "node listening"
	echoReadyMsg       = "echo listening"
	// controlReadyMsg is wsfleet-control's info line naming its bound
	// addresses; its "grpc_addr" is the one the clients dial.
	controlReadyMsg  = "control plane listening"
	controlAddrField = "grpc_addr"
)

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
	FanoutWindow   int
	Handshakes     int
	Dialers        int
	Settle         time.Duration // idle: wait before the second RSS reading

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
		c.FanoutWindow < 0 || c.Handshakes < 0 || c.Dialers < 0 || c.Settle < 0 || c.StartTimeout < 0 || c.StopTimeout < 0 ||
		c.PropagationApplies < 0 || c.ClientsPerConn < 0 {
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
	c.Duration = withDefault(c.Duration, DefaultDuration)
	c.Rounds = withDefault(c.Rounds, DefaultRounds)
	c.Clients = withDefault(c.Clients, DefaultClients)
	c.IdleConns = withDefault(c.IdleConns, DefaultIdleConns)
	c.FanoutSubs = withDefault(c.FanoutSubs, DefaultSubscribers)
	c.FanoutMessages = withDefault(c.FanoutMessages, DefaultMessages)
	c.FanoutWindow = withDefault(c.FanoutWindow, DefaultWindow)
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

// DefaultPropagationSizes are the fleet sizes the issue asks about.
var DefaultPropagationSizes = []int{1000, 10_000}

// Report is the outcome of Run. A scenario that failed has no result and a
// line in Errors.
type Report struct {
	Started   time.Time            `json:"started"`
	GoVersion string               `json:"go_version"`
	CPUs      int                  `json:"cpus"`
	Settings  Settings             `json:"settings"`
	Roundtrip *RoundtripComparison `json:"roundtrip,omitempty"`
	Fanout    *FanoutResult        `json:"fanout,omitempty"`
	Idle      *IdleComparison      `json:"idle,omitempty"`
	Handshake *HandshakeComparison `json:"handshake,omitempty"`
	// Propagation measures the control plane; nil when skipped.
	Propagation *PropagationRuns `json:"propagation,omitempty"`
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
	FanoutWindow   int      `json:"fanout_window"`
	Handshakes     int      `json:"handshakes"`
	Settle         string   `json:"settle"`
	// Propagation settings; empty when the scenario does not run.
	PropagationClients []int `json:"propagation_clients,omitempty"`
	PropagationApplies int   `json:"propagation_applies,omitempty"`
	ClientsPerConn     int   `json:"clients_per_conn,omitempty"`
}

// PropagationRuns is the propagation scenario at each fleet size, with the
// issue's target judged on the TargetClients run.
type PropagationRuns struct {
	Runs          []PropagationResult `json:"runs"`
	TargetClients int                 `json:"target_clients"`
	TargetP99     time.Duration       `json:"target_p99_ns"`
	// Judged: a run of TargetClients completed; Met: its time-to-last-ACK
	// p99 is under TargetP99.
	Judged bool `json:"target_judged"`
	Met    bool `json:"target_met"`
}

// RoundtripComparison is the node against bare gws, same clients and frames.
type RoundtripComparison struct {
	Node   *RoundtripResult `json:"node,omitempty"`
	Echo   *RoundtripResult `json:"echo,omitempty"`
	Ratio  float64          `json:"ratio"` // node / echo round trips per second
	Target float64          `json:"target_min_ratio"`
	Met    bool             `json:"target_met"`
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
// gws, for reference.
type HandshakeComparison struct {
	Node  *HandshakeResult `json:"node,omitempty"`
	Echo  *HandshakeResult `json:"echo,omitempty"`
	Ratio float64          `json:"ratio"` // node / echo handshakes per second
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
			FanoutMessages: cfg.FanoutMessages, FanoutWindow: cfg.FanoutWindow,
			Handshakes: cfg.Handshakes, Settle: cfg.Settle.String(),
		},
	}
	runPropagation := cfg.wants(ScenarioPropagation) && cfg.ControlBin != ""
	if runPropagation {
		rep.Settings.PropagationClients = cfg.PropagationClients
		rep.Settings.PropagationApplies = cfg.PropagationApplies
		rep.Settings.ClientsPerConn = cfg.ClientsPerConn
	} else if cfg.wants(ScenarioPropagation) {
		rep.Skipped = append(rep.Skipped, ScenarioPropagation+": no control-plane binary (--control-bin)")
	}

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
	if cfg.wantsNode() {
		logf(cfg.Progress, "starting node %s", cfg.NodeBin)
		node, err = startChild(ctx, childSpec{
			name: "node",
			bin:  cfg.NodeBin,
			args: append([]string{
				"--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
				"--policy-file", policyPath, "--node-id", "bench", "--log-format", "json",
			}, cfg.NodeArgs...),
			env:      cfg.Env,
			readyMsg: nodeReadyMsg,
			timeout:  cfg.StartTimeout,
		})
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
		})
		if err != nil {
			return nil, err
		}
		defer stopChild(echo, cfg.StopTimeout, &rep, &err)
		echoTarget = Target{Name: "echo", URL: "ws://" + echo.addr + "/ws", Origin: cfg.Origin}
	}

	var control *child
	if runPropagation {
		logf(cfg.Progress, "starting control plane %s", cfg.ControlBin)
		// The default (info) log level is kept: the ready line is an info
		// line, and the address is only known from it (port 0).
		control, err = startChild(ctx, childSpec{
			name: "control plane",
			bin:  cfg.ControlBin,
			args: append([]string{
				"--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
				"--data-dir", filepath.Join(dir, "control"), "--log-format", "json",
			}, cfg.ControlArgs...),
			env:       cfg.Env,
			readyMsg:  controlReadyMsg,
			addrField: controlAddrField,
			timeout:   cfg.StartTimeout,
		})
		if err != nil {
			return nil, err
		}
		defer stopChild(control, cfg.StopTimeout, &rep, &err)
	}

	r := runner{cfg: cfg, rep: rep, node: node, echo: echo, control: control, nodeTarget: nodeTarget, echoTarget: echoTarget}
	for _, s := range AllScenarios {
		if !cfg.wants(s) || (s == ScenarioPropagation && !runPropagation) {
			continue
		}
		if ctx.Err() != nil {
			rep.fail(fmt.Errorf("%s: not run: %w", s, context.Cause(ctx)))
			continue
		}
		r.scenario(ctx, s)
	}
	return rep, nil
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

// runner runs one scenario at a time against the two children.
type runner struct {
	cfg                    RunConfig
	rep                    *Report
	node, echo, control    *child
	nodeTarget, echoTarget Target
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
				RSS: func() (int64, error) { return ReadRSS(pid) },
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
		if !r.alive(s, r.node) {
			return
		}
		logf(cfg.Progress, "fanout: node: %d subscribers, up to %d messages, window %d", cfg.FanoutSubs, cfg.FanoutMessages, cfg.FanoutWindow)
		res, err := Fanout(ctx, FanoutConfig{
			Target: r.nodeTarget, Subscribers: cfg.FanoutSubs, Messages: cfg.FanoutMessages,
			Window: cfg.FanoutWindow, Duration: cfg.Duration, Dialers: cfg.Dialers,
		})
		if err != nil {
			r.rep.fail(err)
			return
		}
		r.rep.Fanout = &res

	case ScenarioHandshake:
		if !r.alive(s, r.node, r.echo) {
			return
		}
		cmp := &HandshakeComparison{}
		for _, side := range []struct {
			t   Target
			out **HandshakeResult
		}{{r.nodeTarget, &cmp.Node}, {r.echoTarget, &cmp.Echo}} {
			logf(cfg.Progress, "handshake: %s: %d handshakes over %d workers", side.t.Name, cfg.Handshakes, cfg.Clients)
			res, err := Handshakes(ctx, HandshakeConfig{Target: side.t, Total: cfg.Handshakes, Workers: cfg.Clients})
			if err != nil {
				r.rep.fail(err)
				continue
			}
			*side.out = &res
		}
		if cmp.Node != nil && cmp.Echo != nil && cmp.Echo.PerSecond > 0 {
			cmp.Ratio = cmp.Node.PerSecond / cmp.Echo.PerSecond
		}
		r.rep.Handshake = cmp

	case ScenarioPropagation:
		r.rep.Propagation = r.propagation(ctx)
	}
}

// propagation runs Propagation at each fleet size against the control
// plane, one size after the other. A size that fails is reported and the
// next one still runs: the control plane stays up between them, and the
// clients of a failed size are gone before the next starts.
func (r *runner) propagation(ctx context.Context) *PropagationRuns {
	cfg := r.cfg
	out := &PropagationRuns{TargetClients: TargetPropagationClients, TargetP99: TargetPropagationP99}
	pid := r.control.pid
	for _, n := range cfg.PropagationClients {
		if !r.alive(ScenarioPropagation, r.control) {
			break
		}
		if ctx.Err() != nil {
			r.rep.fail(fmt.Errorf("%s %d clients: not run: %w", ScenarioPropagation, n, context.Cause(ctx)))
			continue
		}
		logf(cfg.Progress, "propagation: %d policy clients over %d connections, %d applies",
			n, (n+cfg.ClientsPerConn-1)/cfg.ClientsPerConn, cfg.PropagationApplies)
		res, err := Propagation(ctx, PropagationConfig{
			Control:        admin.Config{Addr: r.control.addr},
			Clients:        n,
			ClientsPerConn: cfg.ClientsPerConn,
			Applies:        cfg.PropagationApplies,
			RSS:            func() (int64, error) { return ReadRSS(pid) },
		})
		if err != nil {
			r.rep.fail(err)
			continue
		}
		out.Runs = append(out.Runs, res)
		if n == out.TargetClients {
			out.Judged = true
			out.Met = res.LastAckP99 < out.TargetP99
		}
	}
	return out
}

// roundtrip compares round trips in cfg.Rounds alternating rounds of
// Duration/Rounds each, so both servers get Duration in total.
func (r *runner) roundtrip(ctx context.Context) *RoundtripComparison {
	cfg := r.cfg
	cmp := &RoundtripComparison{Target: TargetRoundtripRatio}
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	node := func() error {
		res, err := Roundtrip(ctx, RoundtripConfig{Target: r.nodeTarget, Mode: ModeChannel, Clients: cfg.Clients, Duration: slice})
		if err == nil {
			cmp.Node = merged(cmp.Node, res)
		}
		return err
	}
	echo := func() error {
		res, err := Roundtrip(ctx, RoundtripConfig{Target: r.echoTarget, Mode: ModeEcho, Clients: cfg.Clients, Duration: slice})
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
		cmp.Met = cmp.Ratio >= cmp.Target
	}
	return cmp
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
