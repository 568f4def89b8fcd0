package wsclient_test

// Test helpers: the real wsfleet-node (and, for client reports,
// wsfleet-control and wsctl) built once and run as processes on loopback,
// as the control plane's end-to-end tests do. The SDK never imports the
// data plane, not even in tests.

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/sdk/wsclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBinaries() }))
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds wsfleet-node, wsfleet-control and wsctl once per run.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "wsclient-e2e-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator),
			"github.com/wsfleet/wsfleet/dataplane/cmd/wsfleet-node",
			"github.com/wsfleet/wsfleet/controlplane/cmd/wsfleet-control",
			"github.com/wsfleet/wsfleet/sdk/cmd/wsctl")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func removeBinaries() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// proc is a process under test; its stderr (JSON log lines) is kept for
// failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
}

// startProc runs bin and waits for the JSON log line whose msg is ready,
// returning that line's fields. The process is stopped when the test ends.
func startProc(t *testing.T, name, bin, ready string, args ...string) (*proc, map[string]any) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "WSFLEET_TOKEN=", "WSFLEET_ADDR=", "USER=e2e")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	readyc := make(chan map[string]any, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var entry map[string]any
			if json.Unmarshal(line, &entry) == nil && entry["msg"] == ready {
				select {
				case readyc <- entry:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case fields := <-readyc:
		return p, fields
	case <-p.done:
		t.Fatalf("%s exited early:\n%s", name, p.logText())
	case <-time.After(20 * time.Second):
		p.kill()
		t.Fatalf("%s did not start:\n%s", name, p.logText())
	}
	return nil, nil
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// stop sends SIGTERM and waits; a no-op once the process ended.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Errorf("%s ignored SIGTERM:\n%s", p.name, p.logText())
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// node is a wsfleet-node process.
type node struct {
	*proc
	id, ws, metrics string
}

// URL is the node's WebSocket endpoint.
func (n *node) URL() string { return "ws://" + n.ws + "/ws" }

// startNode runs a node listening on addr ("127.0.0.1:0" for any port)
// with the policy file policy, and more flags.
func startNode(t *testing.T, id, addr, policy string, more ...string) *node {
	t.Helper()
	dir := binaries(t)
	args := []string{"--listen", addr, "--metrics-addr", "127.0.0.1:0", "--node-id", id, "--log-format", "json"}
	if policy != "" {
		args = append(args, "--policy-file", policy)
	}
	p, fields := startProc(t, "node "+id, filepath.Join(dir, "wsfleet-node"), "node listening", append(args, more...)...)
	return &node{proc: p, id: id, ws: fmt.Sprint(fields["ws_addr"]), metrics: fmt.Sprint(fields["metrics_addr"])}
}

// metric sums the samples of the node's metric name whose labels contain
// every one of labels (`result="rate_limited"`).
func (n *node) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// control is a wsfleet-control process (--dev, embedded store).
type control struct {
	*proc
	addr string
}

func startControl(t *testing.T) *control {
	t.Helper()
	dir := binaries(t)
	p, fields := startProc(t, "control plane", filepath.Join(dir, "wsfleet-control"), "control plane listening",
		"--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json")
	return &control{proc: p, addr: fmt.Sprint(fields["grpc_addr"])}
}

// wsctl runs wsctl against the control plane; it returns stdout, and
// stderr with the exit code in err.
func (c *control) wsctl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "wsctl"), append([]string{"--addr", c.addr}, args...)...)
	cmd.Env = append(os.Environ(), "USER=e2e", "WSFLEET_TOKEN=", "WSFLEET_ADDR=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("wsctl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// policy is what the tests vary in a node's policy file.
type policy struct {
	origins      []string
	rate, burst  int
	rejectClose  bool
	hbInterval   string
	hbTimeout    string
	allowMissing bool
}

const appOrigin = "https://app.example.com"

func (p policy) yaml() string {
	quoted := make([]string, len(p.origins))
	for i, o := range p.origins {
		quoted[i] = strconv.Quote(o)
	}
	rate, burst := p.rate, p.burst
	if rate == 0 {
		rate, burst = 100_000, 100_000
	}
	hbi, hbt := p.hbInterval, p.hbTimeout
	if hbi == "" {
		hbi, hbt = "25s", "1m"
	}
	s := fmt.Sprintf(`origins: {allow: [%s], allow_missing: %t}
heartbeat: {interval: %s, timeout: %s}
limits: {max_connections: 100000, max_connections_per_ip: 100000, handshakes_per_second: %d, handshake_burst: %d, messages_per_second: 1000, message_burst: 1000, max_message_bytes: 65536}
breaker: {failure_ratio: 0.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`, strings.Join(quoted, ", "), p.allowMissing, hbi, hbt, rate, burst)
	if p.rejectClose {
		s += "handshake: {reject_with: close}\n"
	}
	return s
}

// file writes the policy to a file in t's temporary directory.
func (p policy) file(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(p.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr is a loopback address nothing listens on (a port the kernel
// just handed out and took back).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// events records a client's events for the test to wait on.
type events struct {
	mu     sync.Mutex
	all    []wsclient.Event
	notify chan struct{}
}

func newEvents() *events { return &events{notify: make(chan struct{}, 1)} }

func (e *events) add(ev wsclient.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *events) snapshot() []wsclient.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]wsclient.Event(nil), e.all...)
}

// wait returns the first event at or after index from for which ok holds,
// failing the test after timeout.
func (e *events) wait(t *testing.T, timeout time.Duration, what string, from int, ok func(wsclient.Event) bool) (wsclient.Event, int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		all := e.snapshot()
		for i := from; i < len(all); i++ {
			if ok(all[i]) {
				return all[i], i
			}
		}
		select {
		case <-e.notify:
		case <-deadline:
			t.Fatalf("no event %s within %s; events: %s", what, timeout, describe(all))
		}
	}
}

func describe(evs []wsclient.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\n  %s %s attempt %d", ev.Time.Format("15:04:05.000"), ev.State, ev.Attempt)
		if ev.Failure != nil {
			fmt.Fprintf(&b, " %s (%s) %s", ev.Failure.Name, ev.Failure.Signal, ev.Failure.Detail)
		}
		if ev.Delay > 0 {
			fmt.Fprintf(&b, " retry in %s", ev.Delay)
		}
	}
	return b.String()
}

func state(s wsclient.State) func(wsclient.Event) bool {
	return func(ev wsclient.Event) bool { return ev.State == s }
}

// quiet is a logger that discards.
func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// newClient starts a client with cfg (quiet, events recorded) and closes
// it when the test ends.
func newClient(t *testing.T, cfg wsclient.Config) (*wsclient.Client, *events) {
	t.Helper()
	ev := newEvents()
	cfg.OnEvent = ev.add
	if cfg.Log == nil {
		cfg.Log = quiet()
	}
	c, err := wsclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, ev
}

// eventually polls ok every 50ms until it holds, failing after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
