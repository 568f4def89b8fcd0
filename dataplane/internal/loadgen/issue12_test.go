package loadgen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goBenchOutput is make bench's Go benchmark output as go test prints it:
// headers, results (one of them run twice, -count 2), a smaller run's
// names (-short) and the package lines around them.
const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/wsfleet/wsfleet/controlplane
cpu: Intel(R) Xeon(R) Processor
BenchmarkDryRun/minutes=60/nodes=1000/origins=256-2         	     194	  17521739 ns/op	  11318268 cpu-ns/op	 1406866 B/op	   10257 allocs/op
BenchmarkDryRun/minutes=60/nodes=50/origins=256-2         	     194	  2000000000 ns/op
BenchmarkErrorSeriesGRPC/minutes=1440/keys_per_minute=500-2 	      60	  77310145 ns/op	  33042467 cpu-ns/op	  147647 B/op	     282 allocs/op
ok  	github.com/wsfleet/wsfleet/controlplane	16.879s
pkg: github.com/wsfleet/wsfleet/controlplane/rollout
BenchmarkTick/pools=1/nodes=1000/baked=5m-2         	     340	   9090460 ns/op	   40000000 cpu-ns/op	 1310403 B/op	   11096 allocs/op
BenchmarkTick/pools=1/nodes=1000/baked=5m-2         	     340	   9090460 ns/op	   80000000 cpu-ns/op	 1310403 B/op	   11096 allocs/op
pkg: github.com/wsfleet/wsfleet/controlplane/telemetry
BenchmarkErrorSeries/minutes=1440/keys_per_minute=10000-2       	       4	 544764751 ns/op	 551852750 cpu-ns/op	       131.4 heap-B/key	   92456 B/op	      30 allocs/op
BenchmarkTrafficSummary/minutes=60/nodes=1000/origins=256-2     	     612	   4960908 ns/op	   3592716 cpu-ns/op	    130351 est-B/minute	    132306 heap-B/minute	  157664 B/op	     315 allocs/op
PASS
`

func writeGoBench(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "go-bench.txt")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIssue12Goals(t *testing.T) {
	bench, err := ReadGoBench(writeGoBench(t, goBenchOutput))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rep  *Report
		want []string // goal, measured, target, status: one row each, in order
	}{
		{
			name: "the Go benchmarks at the issue's sizes and the handshake scenario are judged against their targets",
			rep: &Report{GoBench: bench, HandshakeTraffic: &TrafficCostComparison{
				On: &HandshakeResult{CPUPerHandshake: 41_000}, Off: &HandshakeResult{CPUPerHandshake: 40_000}, CPURatio: 1.025, Met: true,
			}},
			want: []string{
				"dry run, 60 min x 1,000 nodes x 256 origins: ApplyPolicy dry_run over gRPC, one replica|17.5ms|< 1s|ok",
				"ErrorSeries, 24 h at 1 min, 500 keys/min: over gRPC, one replica|77.3ms|< 1s|ok",
				"ErrorSeries, 24 h at 1 min, 10,000 keys/min (the bound, full): the store|545ms|< 1s|ok",
				// -count 2: the mean of 40ms and 80ms.
				"rollout evaluator: CPU per tick, one baking pool of 1,000 nodes|60ms|< 50ms|MISSED",
				"node handshake: server CPU, traffic counting on / off|1.025x (41µs / 40µs)|<= 1.03x|ok",
				"memory per error-series key (24 h, 10,000 keys/min)|131 B Go heap|stated|-",
				"memory per retained traffic minute (1,000 nodes x 256 origins)|132,306 B Go heap|stated|-",
			},
		},
		{
			name: "without the Go benchmarks or the scenario nothing is measured, and a smaller run's names never count",
			rep:  &Report{GoBench: GoBench{"BenchmarkDryRun/minutes=60/nodes=50/origins=256": {"ns/op": 1}}},
			want: []string{
				"dry run, 60 min x 1,000 nodes x 256 origins: ApplyPolicy dry_run over gRPC, one replica|-|< 1s|not measured",
				"ErrorSeries, 24 h at 1 min, 500 keys/min: over gRPC, one replica|-|< 1s|not measured",
				"ErrorSeries, 24 h at 1 min, 10,000 keys/min (the bound, full): the store|-|< 1s|not measured",
				"rollout evaluator: CPU per tick, one baking pool of 1,000 nodes|-|< 50ms|not measured",
				"node handshake: server CPU, traffic counting on / off|-|<= 1.03x|not measured",
				"memory per error-series key (24 h, 10,000 keys/min)|-|stated|not measured",
				"memory per retained traffic minute (1,000 nodes x 256 origins)|-|stated|not measured",
			},
		},
		{
			name: "traffic counting over 3 % of the handshake's CPU misses",
			rep: &Report{HandshakeTraffic: &TrafficCostComparison{
				On: &HandshakeResult{CPUPerHandshake: 45_000}, Off: &HandshakeResult{CPUPerHandshake: 40_000}, CPURatio: 1.125, Met: false,
			}},
			want: []string{"node handshake: server CPU, traffic counting on / off|1.125x (45µs / 40µs)|<= 1.03x|MISSED"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rows []string
			for _, g := range Issue12Goals(tc.rep) {
				rows = append(rows, strings.Join([]string{g.Goal, g.Measured, g.Target, g.Status}, "|"))
			}
			if len(rows) != 7 {
				t.Fatalf("%d goals, want 7:\n%s", len(rows), strings.Join(rows, "\n"))
			}
			for _, want := range tc.want {
				found := false
				for _, r := range rows {
					found = found || r == want
				}
				if !found {
					t.Errorf("no goal row %q in:\n%s", want, strings.Join(rows, "\n"))
				}
			}
			var b strings.Builder
			tc.rep.Issue12Goals = Issue12Goals(tc.rep)
			if err := WriteTable(&b, tc.rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "goals (issue 12), measured in this run") || !strings.Contains(b.String(), "--go-bench") {
				t.Errorf("table lacks issue 12's goals and where they come from:\n%s", b.String())
			}
		})
	}
}

func TestReadGoBenchRefusesWhatHoldsNoResult(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"a missing file is an error", filepath.Join(t.TempDir(), "absent.txt")},
		{"a file without a benchmark result is an error", writeGoBench(t, "goos: linux\nPASS\nok  \tx\t0.1s\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadGoBench(tc.path); !errors.Is(err, ErrGoBench) {
				t.Errorf("ReadGoBench: %v, want ErrGoBench", err)
			}
		})
	}
}

// The handshake-traffic scenario alone starts its two nodes (no shared
// node, no echo server), compares them and reports issue 12's goals only,
// the Go benchmarks' rows from --go-bench.
func TestHandshakeTrafficAlone(t *testing.T) {
	cfg := tinyRun(t)
	cfg.Scenarios = []string{ScenarioHandshakeTraffic}
	cfg.GoBench = writeGoBench(t, goBenchOutput)
	var progress strings.Builder
	cfg.Progress = &progress
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("run failed:\n%s", strings.Join(rep.Errors, "\n"))
	}
	if h := rep.HandshakeTraffic; h == nil || h.On == nil || h.Off == nil || h.On.Total != 20 || h.Off.Total != 20 {
		t.Errorf("handshake-traffic: %+v, want 20 handshakes on each node", h)
	}
	if len(rep.Goals) != 0 || len(rep.Issue12Goals) != 7 || rep.Issue12Goals[0].Status != "ok" {
		t.Errorf("goals: issue 10 %+v, issue 12 %+v; want only issue 12's, the dry run measured", rep.Goals, rep.Issue12Goals)
	}
	for _, unwanted := range []string{"starting node", "starting echo server"} {
		if strings.Contains(progress.String(), unwanted) {
			t.Errorf("progress has %q: the scenario needs neither the shared node nor the echo server:\n%s", unwanted, progress.String())
		}
	}
}

// A --go-bench file that cannot be read fails the report, not the run.
func TestUnreadableGoBenchFailsTheReport(t *testing.T) {
	cfg := tinyRun(t)
	cfg.Scenarios = []string{ScenarioHandshakeTraffic}
	cfg.GoBench = filepath.Join(t.TempDir(), "absent.txt")
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(strings.Join(rep.Errors, "\n"), "absent.txt") || rep.HandshakeTraffic == nil {
		t.Errorf("errors %q, handshake-traffic %+v: want the file named and the scenario run", rep.Errors, rep.HandshakeTraffic)
	}
}
