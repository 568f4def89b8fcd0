package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

func TestShutdownClosesEveryConnectionWith1001(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	sk := newSink()
	n, err := New(Config{
		NodeID: "drain", ListenAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Log: log, Sink: sk,
		Policy: &wsfleetv1.PolicyRevision{Revision: 1, Policy: testPolicy()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	addr := n.Addr().String()
	readyz := "http://" + n.MetricsAddr().String() + "/readyz"

	var clients []*client
	for range 20 {
		clients = append(clients, mustDial(t, addr, dialOpts{}))
	}
	if resp, err := http.Get(readyz); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz before drain: %v %v", resp, err)
	}
	cancel()
	for i, c := range clients {
		if code := c.closeCode(t, 10*time.Second); code != 1001 {
			t.Fatalf("client %d got close code %d", i, code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sk.count(wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN); got != 20 {
		t.Fatalf("%d server_shutdown events, want 20", got)
	}
	if n.Active() != 0 {
		t.Fatalf("%d connections still counted", n.Active())
	}
}

func TestNewHandshakesAreRefusedWhileDraining(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	hold := mustDial(t, n.addr, dialOpts{})
	_ = hold
	n.draining.Store(true) // as Shutdown does first
	resp := rawGet(t, n.addr, testOrigin, nil)
	n.draining.Store(false)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// unreachableAddr is a loopback address nothing listens on.
func unreachableAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// gaugeValue reads one gauge of the node from reg.
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// rejectedHandshakes makes n handshakes the node refuses (plain GETs: no
// upgrade), each recorded as one event: each comes from its own origin, so
// none is folded into another's count.
func rejectedHandshakes(t testing.TB, addr string, n int) {
	t.Helper()
	for i := range n {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", fmt.Sprintf("https://rejected-%d.example", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusSwitchingProtocols {
			t.Fatal("a plain GET was upgraded")
		}
	}
}

// A node stopped while its control plane is down must not wait for it:
// the drain ends, the telemetry it could not deliver is counted, and the
// stop is clean.
func TestShutdownWithTheControlPlaneDownEndsCleanlyAndCountsWhatWasLost(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	conn, err := grpc.NewClient(unreachableAddr(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reporter, err := telemetry.New(telemetry.Config{Conn: conn, NodeID: "down", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	repCtx, stopReporter := context.WithCancel(context.Background())
	repDone := make(chan struct{})
	go func() { defer close(repDone); _ = reporter.Run(repCtx) }()
	defer func() { stopReporter(); <-repDone }()

	reg := prometheus.NewRegistry()
	n, err := New(Config{
		NodeID: "down", ListenAddr: "127.0.0.1:0", MetricsAddr: "-", Log: log, Sink: reporter, Registry: reg,
		// Far longer than the test waits: a node that waited for the bound
		// with nothing to wait for fails below.
		FlushTimeout: 10 * time.Minute,
		Policy:       &wsfleetv1.PolicyRevision{Revision: 1, Policy: testPolicy()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	rejectedHandshakes(t, n.Addr().String(), 3)
	eventually(t, 5*time.Second, "a failed telemetry stream", func() bool { return reporter.Stats().LastError != "" })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil: the drain was clean", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return: the flush waited for a control plane that is down")
	}
	if got := gaugeValue(t, reg, "wsfleet_node_telemetry_undelivered"); got != 3 {
		t.Fatalf("wsfleet_node_telemetry_undelivered = %v, want 3", got)
	}
}

func TestRunWithControlPlaneDownStopsCleanly(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	addr := unreachableAddr(t)
	cfg := Config{NodeID: "cp-down", ListenAddr: addr, MetricsAddr: "-", Log: log, Registry: reg, FlushTimeout: 10 * time.Minute}
	cp := ControlPlane{
		Dial:       admin.Config{Addr: unreachableAddr(t)},
		CacheFile:  filepath.Join(t.TempDir(), "policy.json"),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- RunWithControlPlane(ctx, cfg, cp) }()
	eventually(t, 10*time.Second, "the node listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	rejectedHandshakes(t, addr, 3)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunWithControlPlane = %v, want nil: the drain was clean", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunWithControlPlane did not return: the flush waited for a control plane that is down")
	}
	if got := gaugeValue(t, reg, "wsfleet_node_telemetry_undelivered"); got != 3 {
		t.Fatalf("wsfleet_node_telemetry_undelivered = %v, want 3", got)
	}
}

// eventually polls cond every 10ms until it holds, failing after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process-level tests: the real wsfleet-node binary.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func nodeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "wsfleet-node-"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "github.com/wsfleet/wsfleet/dataplane/cmd/wsfleet-node").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "wsfleet-node")
}

func removeBinaries() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

type nodeProc struct {
	cmd     *exec.Cmd
	addr    string
	metrics string
	done    chan struct{}
	mu      sync.Mutex
	logs    bytes.Buffer
}

func startNodeProc(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	bin := nodeBinary(t)
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--node-id", "proc", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var e struct {
				Msg     string `json:"msg"`
				WS      string `json:"ws_addr"`
				Metrics string `json:"metrics_addr"`
			}
			if json.Unmarshal(line, &e) == nil && e.Msg == "node listening" {
				ready <- [2]string{e.WS, e.Metrics}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case a := <-ready:
		p.addr, p.metrics = a[0], a[1]
	case <-p.done:
		t.Fatalf("node exited early:\n%s", p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("node did not start:\n%s", p.logText())
	}
	return p
}

func (p *nodeProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func writePolicyFile(t *testing.T, path string, p *wsfleetv1.Policy, revision int64) {
	t.Helper()
	b, err := policyfile.EncodeYAML(&wsfleetv1.PolicyRevision{Pool: "default", Revision: revision, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestSIGTERMClosesClientsWith1001AndExitsZero(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicyFile(t, file, testPolicy(), 1)
	p := startNodeProc(t, "--policy-file", file, "--drain-timeout", "10s")
	var clients []*client
	for range 10 {
		clients = append(clients, mustDial(t, p.addr, dialOpts{}))
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if code := c.closeCode(t, 10*time.Second); code != 1001 {
			t.Fatalf("client %d got close code %d", i, code)
		}
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("node did not exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.logText())
	}
	if !strings.Contains(p.logText(), `"class":"server_shutdown"`) {
		t.Fatalf("no server_shutdown log lines:\n%s", p.logText())
	}
}

func TestSIGTERMWithTheControlPlaneDownExitsZero(t *testing.T) {
	p := startNodeProc(t, "--control", unreachableAddr(t), "--cache-file", filepath.Join(t.TempDir(), "policy.json"),
		"--control-backoff-min", "10ms", "--control-backoff-max", "50ms", "--flush-timeout", "10m")
	rejectedHandshakes(t, p.addr, 3)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("node did not exit after SIGTERM:\n%s", p.logText())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.logText())
	}
	lines := strings.Split(strings.TrimSpace(p.logText()), "\n")
	var last struct {
		Msg         string `json:"msg"`
		Undelivered *int   `json:"undelivered_events"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Msg != "drained" ||
		last.Undelivered == nil || *last.Undelivered != 3 {
		t.Fatalf("last log line %q; want drained with undelivered_events 3", lines[len(lines)-1])
	}
}

func TestPolicyFileChangeAppliesWithoutDroppingConnections(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicyFile(t, file, testPolicy(), 1)
	p := startNodeProc(t, "--policy-file", file)
	c := mustDial(t, p.addr, dialOpts{})
	c.send(t, `{"type":"subscribe","channel":"live"}`)
	c.expect(t, `"subscribed"`)

	next := testPolicy()
	next.Origins.Allow = []string{"https://other.example.com"}
	next.Heartbeat.Interval = durationSeconds(3)
	next.Heartbeat.Timeout = durationSeconds(9)
	next.Limits.MessagesPerSecond = 300
	writePolicyFile(t, file, next, 2)

	metrics := "http://" + p.metrics + "/metrics"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(httpBody(t, metrics), `wsfleet_node_policy_revision{node_id="proc",pool="default"} 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("revision 2 not applied:\n%s", p.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := dial(t, p.addr, dialOpts{origin: testOrigin}); err == nil {
		t.Fatal("the old origin is still admitted")
	}
	mustDial(t, p.addr, dialOpts{origin: "https://other.example.com"})
	c.send(t, `{"type":"publish","channel":"live","data":"still here"}`)
	c.expect(t, `"still here"`)

	t.Run("an invalid file is refused and the running policy stays", func(t *testing.T) {
		bad := testPolicy()
		bad.Breaker.FailureRatio = 1.5
		writePolicyFile(t, file, bad, 3)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.logText(), "breaker.failure_ratio") {
			if time.Now().After(deadline) {
				t.Fatalf("no log line naming the violation:\n%s", p.logText())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(httpBody(t, metrics), `wsfleet_node_policy_revision{node_id="proc",pool="default"} 2`) {
			t.Fatal("revision changed after an invalid file")
		}
		c.send(t, `{"type":"publish","channel":"live","data":"survived"}`)
		c.expect(t, `"survived"`)
	})
}

func TestSIGHUPReReadsThePolicyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicyFile(t, file, testPolicy(), 1)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	p := startNodeProc(t, "--policy-file", file)

	// Rewritten in place with the same size and mtime: the poll trusts the
	// unchanged stat, so only the SIGHUP re-reads it.
	b, err := policyfile.EncodeYAML(&wsfleetv1.PolicyRevision{Pool: "default", Revision: 2, Policy: testPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	metrics := "http://" + p.metrics + "/metrics"
	eventually(t, 10*time.Second, "revision 2 applied after SIGHUP", func() bool {
		return strings.Contains(httpBody(t, metrics), `wsfleet_node_policy_revision{node_id="proc",pool="default"} 2`)
	})
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
