package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// tinyRun is a run at test scale against the test binary acting as node
// and echo server.
func tinyRun(t *testing.T) RunConfig {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return RunConfig{
		NodeBin: exe, EchoBin: exe, Env: []string{childRoleEnv + "=" + roleServers},
		Duration: 300 * time.Millisecond, Rounds: 2, Clients: 2, IdleConns: 20, FanoutSubs: 10, FanoutMessages: 50,
		FanoutWindows: []int{1, 4}, Handshakes: 20, ChannelSubs: 30, Settle: 100 * time.Millisecond, StopTimeout: 10 * time.Second,
		StormClients: 20, StormRate: 1000, StormBurst: 10, StormTimeout: 30 * time.Second,
	}
}

// processGone reports whether pid no longer exists (reaped, not a zombie).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func pidFrom(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(string(readFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestRunMeasuresNodeAndEchoSideBySide(t *testing.T) {
	cfg := tinyRun(t)
	pidFile := filepath.Join(t.TempDir(), "node.pid")
	cfg.Env = append(cfg.Env, pidFileEnv+"="+pidFile)
	var progress strings.Builder
	cfg.Progress = &progress
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("run failed:\n%s", strings.Join(rep.Errors, "\n"))
	}

	rt := rep.Roundtrip
	if rt == nil || rt.Node == nil || rt.Echo == nil || rt.Node.RoundTrips <= 0 || rt.Echo.RoundTrips <= 0 || rt.Ratio <= 0 {
		t.Errorf("roundtrip comparison incomplete: %+v", rt)
	} else if rt.Node.Mode != "channel" || rt.Echo.Mode != "echo" {
		t.Errorf("roundtrip modes node %q echo %q, want channel and echo", rt.Node.Mode, rt.Echo.Mode)
	} else if rt.Node.Elapsed < 300*time.Millisecond || rt.Echo.Elapsed < 300*time.Millisecond {
		t.Errorf("roundtrip elapsed node %s echo %s: want both rounds of 150ms added up", rt.Node.Elapsed, rt.Echo.Elapsed)
	}
	if f := rep.Fanout; len(f) != 2 || f[0].Window != 1 || f[1].Window != 4 {
		t.Errorf("fanout: %+v, want a run with window 1 and one with 4", f)
	} else {
		for _, r := range f {
			if r.Deliveries != 500 || r.DeliveriesPerSecond <= 0 {
				t.Errorf("fanout window %d: %+v, want 500 deliveries", r.Window, r)
			}
		}
	}
	if c := rep.Channel; c == nil || c.Subscribers != 30 || !c.SubscribeComplete || c.Subscribed != 30 || !c.DeliveryComplete ||
		c.Delivered != 30 || c.RSSOpen <= 0 || c.RSSSubscribed <= 0 {
		t.Errorf("channel: %+v, want 30 subscribed and delivered, RSS read", c)
	}
	if len(rep.Goals) != 10 {
		t.Errorf("goals: %+v, want the 10 rows of issue 10's goals", rep.Goals)
	}
	if b := rep.BrokerChannel; b == nil || b.Subscribers != 30 || b.Delivered != 30 || b.Build <= 0 {
		t.Errorf("broker channel: %+v, want 30 subscribers built and delivered to", b)
	}
	if s := rep.Storm; s == nil || s.Clients != 20 || !s.AllBack || s.Back != 20 || s.GaveUp != 0 || s.PeakAccepted < 1 ||
		s.BackAfter < s.Down || s.Rate != 1000 || s.Burst != 10 {
		t.Errorf("storm: %+v, want 20 clients all back after the restart, none gave up", s)
	}
	if len(rep.StormGoals) != 3 {
		t.Errorf("storm goals: %+v, want 3", rep.StormGoals)
	}
	idle := rep.Idle
	if idle == nil || idle.Node == nil || idle.Echo == nil || idle.Node.Conns != 20 || idle.Echo.Conns != 20 ||
		idle.Node.RSSBefore <= 0 || idle.Echo.RSSAfter <= 0 {
		t.Errorf("idle comparison incomplete: %+v", idle)
	} else if idle.DiffBytesPerConn != idle.Node.BytesPerConn-idle.Echo.BytesPerConn {
		t.Errorf("idle diff %f, want node − echo", idle.DiffBytesPerConn)
	}
	if h := rep.Handshake; h == nil || h.Node == nil || h.Echo == nil || h.Ratio <= 0 {
		t.Errorf("handshake comparison incomplete: %+v", h)
	}
	if h := rep.HandshakeTraffic; h == nil || h.On == nil || h.Off == nil || h.On.Total != 20 || h.Off.Total != 20 {
		t.Errorf("handshake-traffic comparison incomplete: %+v, want 20 handshakes on each node", h)
	}
	if len(rep.Issue12Goals) != 7 {
		t.Errorf("issue 12 goals: %+v, want 7", rep.Issue12Goals)
	}
	for _, want := range []string{"starting node", "starting echo server", "2 alternating rounds of 150ms", "idle: node", "fanout: node", "handshake: node and echo: 20 handshakes", "handshake-traffic: 20 handshakes each", "channel: 30 subscribers", "storm: 20 clients connected in"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	if pid := pidFrom(t, pidFile); !processGone(pid) {
		t.Errorf("node process %d still exists after Run", pid)
	}
}

func TestRunOnlyStartsWhatTheScenariosNeed(t *testing.T) {
	cfg := tinyRun(t)
	cfg.Scenarios = []string{ScenarioFanout}
	cfg.EchoBin = "/nonexistent/echo" // would fail the run if started
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || len(rep.Fanout) == 0 || rep.Roundtrip != nil || rep.Idle != nil || rep.Handshake != nil || rep.Channel != nil {
		t.Errorf("want only a fan-out result, got %+v", rep)
	}
}

func TestRunFailures(t *testing.T) {
	t.Run("a node that crashes on start fails the run with its last output", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.Env = []string{childRoleEnv + "=" + roleCrash}
		_, err := Run(context.Background(), cfg)
		wantErr(t, err, ErrChild, "node exited before announcing", "the node fell over")
	})

	t.Run("an echo server that cannot start stops the node already running", func(t *testing.T) {
		cfg := tinyRun(t)
		pidFile := filepath.Join(t.TempDir(), "node.pid")
		cfg.Env = append(cfg.Env, pidFileEnv+"="+pidFile)
		cfg.EchoBin = "/nonexistent/echo"
		_, err := Run(context.Background(), cfg)
		wantErr(t, err, ErrChild, "echo")
		if pid := pidFrom(t, pidFile); !processGone(pid) {
			t.Errorf("node process %d still exists after Run", pid)
		}
	})

	t.Run("an unknown scenario is refused before anything starts", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.Scenarios = []string{"roundtrip", "latency"}
		_, err := Run(context.Background(), cfg)
		wantErr(t, err, ErrConfig, `"latency"`)
	})

	t.Run("a cancelled run reports the scenarios it did not run", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.Scenarios = []string{ScenarioHandshake}
		ctx, cancel := context.WithCancel(context.Background())
		cfg.Progress = writerFunc(func(p []byte) {
			if strings.Contains(string(p), "starting echo") {
				cancel()
			}
		})
		rep, err := Run(ctx, cfg)
		if err != nil {
			wantErr(t, err, context.Canceled) // cancelled while the echo server started
			return
		}
		if !rep.Failed() || !strings.Contains(strings.Join(rep.Errors, "\n"), "not run") {
			t.Errorf("errors %q, want the handshake scenario reported as not run", rep.Errors)
		}
	})
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestStartChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := func(role string, timeout time.Duration) childSpec {
		return childSpec{name: "node", bin: exe, env: []string{childRoleEnv + "=" + role},
			readyMsg: nodeReadyMsg, timeout: timeout}
	}

	t.Run("a child that never announces itself is killed after the timeout", func(t *testing.T) {
		_, err := startChild(context.Background(), spec(roleSilent, 300*time.Millisecond))
		wantErr(t, err, ErrChild, `did not log "node listening" within 300ms`, "no output")
	})

	t.Run("a child that ignores SIGTERM is killed and reported", func(t *testing.T) {
		c, err := startChild(context.Background(), spec(roleStubborn, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if c.addr != "127.0.0.1:1" || c.alive() != nil {
			t.Fatalf("addr %q alive %v, want the announced address and a live process", c.addr, c.alive())
		}
		err = c.stop(200 * time.Millisecond)
		wantErr(t, err, ErrChild, "killed")
		if !processGone(c.pid) {
			t.Errorf("process %d still exists", c.pid)
		}
		wantErr(t, c.alive(), ErrChild, "exited")
	})

	t.Run("a binary that does not exist is an error", func(t *testing.T) {
		s := spec(roleSilent, time.Second)
		s.bin = "/nonexistent/node"
		_, err := startChild(context.Background(), s)
		wantErr(t, err, ErrChild, "/nonexistent/node")
	})
}

func TestMainCommandLine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command prints the usage", nil, exitUsage, "usage: wsfleet-bench"},
		{"an unknown command is a usage error", []string{"bench"}, exitUsage, `unknown command "bench"`},
		{"help goes to stdout and succeeds", []string{"help"}, exitOK, ""},
		{"run without the node binary is a usage error", []string{"run"}, exitUsage, "--node-bin is required"},
		{"run with zero clients is a usage error", []string{"run", "--node-bin", exe, "--clients", "0"}, exitUsage, "--clients must be positive"},
		{"run with an unknown flag is a usage error", []string{"run", "--node-bin", exe, "--turbo"}, exitUsage, "-turbo"},
		{"run with an unknown scenario is a usage error", []string{"run", "--node-bin", exe, "--scenarios", "warp"}, exitUsage, `"warp"`},
		{"echo-server with a stray argument is a usage error", []string{"echo-server", "now"}, exitUsage, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}

	t.Run("run prints the table and writes the JSON report", func(t *testing.T) {
		t.Setenv(childRoleEnv, roleServers) // inherited by the children
		out := filepath.Join(t.TempDir(), "bench.json")
		var stdout, stderr strings.Builder
		code := Main(context.Background(), []string{"run", "--node-bin", exe, "--out", out,
			"--duration", "200ms", "--clients", "2", "--idle-conns", "10", "--fanout-subs", "5",
			"--fanout-messages", "20", "--handshakes", "10", "--channel-subs", "12", "--settle", "50ms"}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"roundtrip", "fan-out on the node", "idle", "handshake", "bare gws", "12 subscribers on a node of its own", "goals (issue 10)"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, stdout.String())
			}
		}
		var rep Report
		if err := json.Unmarshal(readFile(t, out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Settings.Clients != 2 || rep.Roundtrip == nil || len(rep.Fanout) != 2 || rep.Idle == nil || rep.Handshake == nil ||
			rep.Channel == nil || len(rep.Goals) == 0 {
			t.Errorf("JSON report incomplete: %+v", rep)
		}
	})

	t.Run("echo-server announces its address, echoes and stops on cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, []string{"echo-server", "--listen", "127.0.0.1:0"}, io.Discard, pw)
			_ = pw.Close()
		}()
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		var ready struct {
			Msg    string `json:"msg"`
			WSAddr string `json:"ws_addr"`
		}
		if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Msg != echoReadyMsg {
			t.Fatalf("first line %q (%v), want the echo ready line", line, err)
		}
		res, err := Roundtrip(ctx, RoundtripConfig{
			Target: Target{Name: "echo", URL: "ws://" + ready.WSAddr + "/ws"}, Mode: ModeEcho,
			Clients: 1, Duration: 100 * time.Millisecond,
		})
		if err != nil || res.RoundTrips == 0 {
			t.Fatalf("round trips %d, error %v", res.RoundTrips, err)
		}
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("echo-server exited %d after cancel, want 0", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("echo-server did not stop on cancel")
		}
	})
}

// The lean baseline keeps nothing per connection, so it cannot close its
// connections when it stops: it stops accepting, and the connections it
// upgraded serve on until their clients close them.
func TestEchoServerStopsAcceptingAndLeavesConnectionsToTheirClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewEchoServer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	var dropped atomic.Int64
	set := newConnSet(func(error) { dropped.Add(1) })
	target := Target{Name: "echo", URL: "ws://" + ln.Addr().String() + "/ws"}
	if err := openMany(context.Background(), []Target{target}, 5, 2, set, func(int) gws.Event {
		return &handler{onClose: set.closeHook()}
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server holds 5 connections", func() bool { return s.Open() == 5 })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, err := dial(context.Background(), target, &handler{}); !errors.Is(err, ErrDial) {
		t.Errorf("a dial after Serve returned: %v, want ErrDial", err)
	}
	if n, d := s.Open(), dropped.Load(); n != 5 || d != 0 {
		t.Errorf("after Serve returned: %d connections open on the server, %d dropped; want 5 and 0", n, d)
	}
	if err := set.closeAll(); err != nil {
		t.Error(err)
	}
	waited := make(chan struct{})
	go func() { s.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("read loops still running 10s after the clients closed")
	}
	if n := s.Open(); n != 0 {
		t.Errorf("%d connections open after Wait", n)
	}
}

func TestRunPropagation(t *testing.T) {
	t.Run("the control plane is started, measured at each fleet size and stopped", func(t *testing.T) {
		cfg := tinyRun(t)
		pidFile := filepath.Join(t.TempDir(), "control.pid")
		cfg.Env = append(cfg.Env, pidFileEnv+"="+pidFile)
		cfg.NodeBin, cfg.EchoBin = "", "/nonexistent/echo" // neither is needed, nor started
		cfg.ControlBin, _ = os.Executable()
		cfg.Scenarios = []string{ScenarioPropagation}
		cfg.PropagationClients, cfg.PropagationApplies, cfg.ClientsPerConn = []int{10, 25}, 2, 8
		var progress strings.Builder
		cfg.Progress = &progress
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() {
			t.Fatalf("run failed:\n%s", strings.Join(rep.Errors, "\n"))
		}
		p := rep.Propagation
		if p == nil || len(p.Runs) != 2 || p.Runs[0].Clients != 10 || p.Runs[1].Clients != 25 {
			t.Fatalf("propagation runs %+v, want one of 10 clients and one of 25", p)
		}
		// The control plane stays up between the sizes: the second run
		// starts where the first left the default pool.
		if r0, r1 := p.Runs[0], p.Runs[1]; r0.Applies != 2 || r1.Applies != 2 || r0.FirstRevision != 1 || r1.FirstRevision != 3 ||
			r1.Conns != 4 || r1.RSSWatching <= 0 {
			t.Errorf("runs %+v and %+v: want 2 applies each, revisions from 1 then 3, 4 connections for 25 clients, RSS read", r0, r1)
		}
		if p.Judged || p.Met {
			t.Errorf("judged %t met %t with no run of %d clients", p.Judged, p.Met, TargetPropagationClients)
		}
		if s := rep.Settings; !slices.Equal(s.PropagationClients, []int{10, 25}) || s.PropagationApplies != 2 || s.ClientsPerConn != 8 {
			t.Errorf("settings %+v do not record the propagation run", s)
		}
		for _, want := range []string{"starting control plane", "propagation: 25 policy clients over 4 connections to 1 replica, 2 applies"} {
			if !strings.Contains(progress.String(), want) {
				t.Errorf("progress lacks %q:\n%s", want, progress.String())
			}
		}
		if strings.Contains(progress.String(), "starting node") {
			t.Errorf("the node was started for propagation alone:\n%s", progress.String())
		}
		if pid := pidFrom(t, pidFile); !processGone(pid) {
			t.Errorf("control plane process %d still exists after Run", pid)
		}
	})

	t.Run("without a control-plane binary the scenario is skipped and the others run", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.Scenarios = []string{ScenarioFanout, ScenarioPropagation}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() || len(rep.Fanout) == 0 || rep.Propagation != nil {
			t.Errorf("want a fan-out result and no propagation, got %+v", rep)
		}
		if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0], "--control-bin") {
			t.Errorf("skipped %q, want propagation named with --control-bin", rep.Skipped)
		}
		var b strings.Builder
		if err := WriteTable(&b, rep); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "skipped: propagation") || !strings.Contains(b.String(), "deliveries/s") {
			t.Errorf("table lacks the skip note or the fan-out row:\n%s", b.String())
		}
	})

	t.Run("a control plane that does not come up fails the run", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.Scenarios = []string{ScenarioPropagation}
		cfg.ControlBin = cfg.NodeBin
		cfg.Env = []string{childRoleEnv + "=" + roleCrash}
		_, err := Run(context.Background(), cfg)
		wantErr(t, err, ErrChild, "control plane exited before announcing")
	})
}

func TestMainCommandLinePropagation(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"a node scenario without the node binary is a usage error", []string{"run", "--scenarios", "fanout,propagation"}, exitUsage, "--node-bin is required"},
		{"a fleet size of zero is a usage error", []string{"run", "--scenarios", "propagation", "--propagation-clients", "1000,0"}, exitUsage, `"0" is not a positive count`},
		{"a fleet size that is not a number is a usage error", []string{"run", "--scenarios", "propagation", "--propagation-clients", "lots"}, exitUsage, `"lots"`},
		{"zero applies is a usage error", []string{"run", "--node-bin", exe, "--propagation-applies", "0"}, exitUsage, "--propagation-applies must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}

	t.Run("propagation alone without --control-bin needs no node and is skipped", func(t *testing.T) {
		var stdout, stderr strings.Builder
		code := Main(context.Background(), []string{"run", "--scenarios", "propagation"}, &stdout, &stderr)
		if code != exitOK || !strings.Contains(stdout.String(), "skipped: propagation: no control-plane binary (--control-bin)") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	})

	t.Run("run --control-bin prints the propagation table and writes it to the JSON report", func(t *testing.T) {
		t.Setenv(childRoleEnv, roleServers) // inherited by the children
		out := filepath.Join(t.TempDir(), "bench.json")
		var stdout, stderr strings.Builder
		code := Main(context.Background(), []string{"run", "--control-bin", exe, "--scenarios", "propagation", "--out", out,
			"--propagation-clients", "12", "--propagation-applies", "2", "--propagation-per-conn", "5"}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"policy propagation", "2 applies per fleet size", "bolt, 1 replica",
			"apply called -> last ACK received, p50 / max", "(3 gRPC conns)", "control plane RSS"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, stdout.String())
			}
		}
		if strings.Contains(stdout.String(), "bare gws") {
			t.Errorf("the node table is printed with no node scenario:\n%s", stdout.String())
		}
		var rep Report
		if err := json.Unmarshal(readFile(t, out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Propagation == nil || len(rep.Propagation.Runs) != 1 || rep.Propagation.Runs[0].Clients != 12 || rep.Propagation.Runs[0].Applies != 2 {
			t.Errorf("JSON report propagation %+v, want one run of 12 clients and 2 applies", rep.Propagation)
		}
	})
}
