package loadgen

import (
	"context"
	"fmt"
)

// ScenarioHandshakeTraffic is issue 12's cost of traffic counting on the
// handshake path: two nodes of its own from the same binary and policy,
// one counting traffic (the default) and one started with
// --disable-traffic, compared by server CPU per handshake in alternating
// rounds of RunConfig.Handshakes/Rounds each.
const ScenarioHandshakeTraffic = "handshake-traffic"

// TargetTrafficCPURatio is the most server CPU per handshake with traffic
// counting over the same without (issue 12: within 3 %).
const TargetTrafficCPURatio = 1.03

// TrafficCostComparison is the handshake-traffic scenario's result.
type TrafficCostComparison struct {
	On  *HandshakeResult `json:"on,omitempty"`
	Off *HandshakeResult `json:"off,omitempty"`
	// CPURatio is On's server CPU per handshake over Off's.
	CPURatio float64 `json:"cpu_ratio"`
	Target   float64 `json:"target_max_cpu_ratio"`
	Met      bool    `json:"target_met"`
}

// handshakeTraffic runs ScenarioHandshakeTraffic; both nodes are stopped
// before it returns.
func (r *runner) handshakeTraffic(ctx context.Context) *TrafficCostComparison {
	cfg := r.cfg
	cmp := &TrafficCostComparison{Target: TargetTrafficCPURatio}
	logf(cfg.Progress, "%s: starting two nodes of its own, traffic counting on and off", ScenarioHandshakeTraffic)
	on, err := startNode(ctx, cfg, "traffic node", "bench-traffic-on", r.policyPath)
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioHandshakeTraffic, err))
		return nil
	}
	defer r.stopOwn(ScenarioHandshakeTraffic, on)
	off, err := startNode(ctx, cfg, "no-traffic node", "bench-traffic-off", r.policyPath, "--disable-traffic")
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioHandshakeTraffic, err))
		return nil
	}
	defer r.stopOwn(ScenarioHandshakeTraffic, off)

	target := func(c *child, name string) Target {
		return Target{Name: name, URL: "ws://" + c.addr + "/ws", Origin: cfg.Origin}
	}
	logf(cfg.Progress, "%s: %d handshakes each over %d workers, %d alternating rounds", ScenarioHandshakeTraffic, r.handshakesPerRound()*cfg.Rounds, cfg.Clients, cfg.Rounds)
	cmp.On, cmp.Off, err = r.alternateHandshakes(ctx, target(on, "traffic on"), on.pid, target(off, "traffic off"), off.pid)
	if err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", ScenarioHandshakeTraffic, err))
		return nil
	}
	// /proc counts CPU in ticks (10 ms): a side that read none is not
	// measured, rather than free.
	if cmp.On.CPUPerHandshake > 0 && cmp.Off.CPUPerHandshake > 0 {
		cmp.CPURatio = cmp.On.CPUPerHandshake / cmp.Off.CPUPerHandshake
		cmp.Met = cmp.CPURatio <= cmp.Target
	}
	return cmp
}

// stopOwn stops a child a scenario started for itself, failing the run if
// it does not exit cleanly.
func (r *runner) stopOwn(scenario string, c *child) {
	if err := c.stop(r.cfg.StopTimeout); err != nil {
		r.rep.fail(fmt.Errorf("%s: %w", scenario, err))
	}
}

// The Go benchmarks issue 12's goals read (make bench runs them before
// the load tool and hands their output over with --go-bench); the names
// carry the sizes, so figures from smaller runs (-short) never count.
const (
	benchDryRun       = "BenchmarkDryRun/minutes=60/nodes=1000/origins=256"
	benchSeriesGRPC   = "BenchmarkErrorSeriesGRPC/minutes=1440/keys_per_minute=500"
	benchSeriesFull   = "BenchmarkErrorSeries/minutes=1440/keys_per_minute=10000"
	benchTick         = "BenchmarkTick/pools=1/nodes=1000/baked=5m"
	benchTrafficTable = "BenchmarkTrafficSummary/minutes=60/nodes=1000/origins=256"
)

// Targets of issue 12 (proposed in the README's bench section).
const (
	// TargetDryRun is the longest a dry run may take over an hour of a
	// 1,000-node pool's traffic, and TargetSeries an ErrorSeries of 24
	// hours at one-minute steps.
	TargetDryRun = 1e9 // ns
	TargetSeries = 1e9 // ns
	// TargetTickCPU is the most CPU one evaluator tick may take per baking
	// pool of 1,000 nodes (a tick runs every 5 s on every replica).
	TargetTickCPU = 50e6 // ns
)

// Issue12Goals lists issue 12's goals: the handshake cost of traffic
// counting from the handshake-traffic scenario, the rest from the Go
// benchmarks in rep.GoBench (read from --go-bench).
func Issue12Goals(rep *Report) []Goal {
	g := rep.GoBench
	fromBench := func(goal, target, name, unit string, limit float64) Goal {
		v, ok := g.value(name, unit)
		return goalOf(goal, target, ok, func() (string, string) {
			return nanos(v), verdict(v < limit)
		})
	}
	stated := func(goal, name, unit, what string) Goal {
		v, ok := g.value(name, unit)
		return goalOf(goal, "stated", ok, func() (string, string) {
			return grouped(v) + " B " + what, statusStated
		})
	}
	tc := rep.HandshakeTraffic
	return []Goal{
		fromBench("dry run, 60 min x 1,000 nodes x 256 origins: ApplyPolicy dry_run over gRPC, one replica", "< 1s",
			benchDryRun, "ns/op", TargetDryRun),
		fromBench("ErrorSeries, 24 h at 1 min, 500 keys/min: over gRPC, one replica", "< 1s",
			benchSeriesGRPC, "ns/op", TargetSeries),
		fromBench("ErrorSeries, 24 h at 1 min, 10,000 keys/min (the bound, full): the store", "< 1s",
			benchSeriesFull, "ns/op", TargetSeries),
		fromBench("rollout evaluator: CPU per tick, one baking pool of 1,000 nodes", "< 50ms",
			benchTick, "cpu-ns/op", TargetTickCPU),
		goalOf("node handshake: server CPU, traffic counting on / off", fmt.Sprintf("<= %.2fx", TargetTrafficCPURatio),
			tc != nil && tc.On != nil && tc.Off != nil && tc.CPURatio > 0, func() (string, string) {
				return fmt.Sprintf("%.3fx (%s / %s)", tc.CPURatio, nanos(tc.On.CPUPerHandshake), nanos(tc.Off.CPUPerHandshake)), verdict(tc.Met)
			}),
		stated("memory per error-series key (24 h, 10,000 keys/min)", benchSeriesFull, "heap-B/key", "Go heap"),
		stated("memory per retained traffic minute (1,000 nodes x 256 origins)", benchTrafficTable, "heap-B/minute", "Go heap"),
	}
}

// Issue12Footnote says where the figures of issue 12's goals come from.
const Issue12Footnote = "The handshake row is measured here (two nodes of their own, server CPU from /proc). " +
	"The others are the Go benchmarks' figures from the same make bench (--go-bench): " +
	"the time and CPU of the whole test process (client and server in one process, garbage collector included), " +
	"one control-plane replica (with more, the fan-out adds one call per replica), " +
	"the tables filled directly (see each benchmark's comment)."
