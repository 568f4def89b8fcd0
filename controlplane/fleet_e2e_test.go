package controlplane

// The fleet loop end to end: real wsfleet-control, wsfleet-node and wsctl
// processes on loopback.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeProc is a wsfleet-node process.
type nodeProc struct {
	*proc
	ws      string
	metrics string
}

func startNodeProc(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	binaries(t)
	args = append([]string{"--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-format", "json"}, args...)
	p, fields := startProc(t, "node", filepath.Join(binDir, "wsfleet-node"), "node listening", args)
	n := &nodeProc{proc: p, ws: fmt.Sprint(fields["ws_addr"]), metrics: fmt.Sprint(fields["metrics_addr"])}
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop sends SIGTERM and waits for the node to drain.
func (p *nodeProc) stop(t *testing.T) { p.terminate(t) }

// metric reads one sample from the node's /metrics: the first series whose
// name starts with name.
func (p *nodeProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// handshake does a WebSocket upgrade and returns the HTTP status; the
// connection is closed right away.
func handshake(t *testing.T, addr, origin, query string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	path := "/ws"
	if query != "" {
		path += "?" + query
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode
}

type nodeJSON struct {
	NodeID           string `json:"node_id"`
	Pool             string `json:"pool"`
	Connected        bool   `json:"connected"`
	AppliedPool      string `json:"applied_pool"`
	AppliedRevision  int64  `json:"applied_revision"`
	LastNackRevision int64  `json:"last_nack_revision"`
	LastNackError    string `json:"last_nack_error"`
	Pushes           int64  `json:"pushes"`
	TelemetryEvents  int64  `json:"telemetry_events"`
	TelemetryDropped int64  `json:"telemetry_dropped"`
}

func nodesList(t *testing.T, addr string) map[string]nodeJSON {
	t.Helper()
	out := mustWsctl(t, addr, "", "nodes", "list", "-o", "json")
	var resp struct {
		Nodes []nodeJSON `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("nodes list -o json: %v\n%s", err, out)
	}
	m := map[string]nodeJSON{}
	for _, n := range resp.Nodes {
		m[n.NodeID] = n
	}
	return m
}

func waitFor(t *testing.T, within time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// policyFile writes a complete policy allowing origins.
func policyFile(t *testing.T, dir, name string, maxMessageBytes int, origins ...string) string {
	t.Helper()
	quoted := make([]string, len(origins))
	for i, o := range origins {
		quoted[i] = strconv.Quote(o)
	}
	body := fmt.Sprintf(`origins: {allow: [%s], allow_missing: true}
heartbeat: {interval: 25s, timeout: 1m}
limits: {max_connections: 100000, max_connections_per_ip: 100000, handshakes_per_second: 100000, handshake_burst: 100000, messages_per_second: 100, message_burst: 200, max_message_bytes: %d}
breaker: {failure_ratio: 0.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`, strings.Join(quoted, ", "), maxMessageBytes)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestFleetPushesPolicyAndRecordsNacks(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	dir := t.TempDir()
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "n1", "--max-message-bytes", "65536",
		"--cache-file", filepath.Join(dir, "cache.json"))
	waitFor(t, 5*time.Second, "n1 registered at revision 1", func() bool {
		n := nodesList(t, cp.addr)["n1"]
		return n.Connected && n.AppliedRevision == 1
	})

	t.Run("an applied policy reaches the node within 1s", func(t *testing.T) {
		allow := policyFile(t, dir, "allow.yaml", 65536, "https://app.example.com")
		mustWsctl(t, cp.addr, "", "policy", "apply", "-f", allow, "-m", "allow app")
		took := waitFor(t, time.Second, "nodes list shows revision 2", func() bool {
			return nodesList(t, cp.addr)["n1"].AppliedRevision == 2
		})
		t.Logf("revision 2 shown applied %s after apply returned", took)
		if s := handshake(t, node.ws, "https://app.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the node does not run revision 2: status %d", s)
		}
	})

	t.Run("a policy the node refuses is NACKed once and the old one stays", func(t *testing.T) {
		before := nodesList(t, cp.addr)["n1"].Pushes
		big := policyFile(t, dir, "big.yaml", 1<<20, "https://app.example.com", "https://new.example.com")
		mustWsctl(t, cp.addr, "", "policy", "apply", "-f", big, "-m", "1 MiB frames")
		waitFor(t, 2*time.Second, "NACK shown", func() bool { return nodesList(t, cp.addr)["n1"].LastNackRevision == 3 })
		n := nodesList(t, cp.addr)["n1"]
		if n.AppliedRevision != 2 || !strings.Contains(n.LastNackError, "max_message_bytes") {
			t.Fatalf("status %+v", n)
		}
		table := mustWsctl(t, cp.addr, "", "nodes", "list")
		if !strings.Contains(table, "rev 3") {
			t.Fatalf("nodes list does not show the NACK:\n%s", table)
		}
		// A commit elsewhere nudges every stream; revision 3 must not be resent.
		other := policyFile(t, dir, "other.yaml", 65536, "https://other.example.com")
		mustWsctl(t, cp.addr, "", "policy", "apply", "--pool", "other", "-f", other)
		time.Sleep(500 * time.Millisecond)
		if got := nodesList(t, cp.addr)["n1"].Pushes; got != before+1 {
			t.Fatalf("pushes went from %d to %d: revision 3 was sent %d times", before, got, got-before)
		}
		if s := handshake(t, node.ws, "https://new.example.com", ""); s != http.StatusForbidden {
			t.Fatalf("the refused revision is running: status %d", s)
		}
		if s := handshake(t, node.ws, "https://app.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the last good revision is not running: status %d", s)
		}
	})
}

func TestNodeSurvivesTheControlPlaneGoingAway(t *testing.T) {
	dataDir, dir := t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	cp := startControl(t, dataDir, "--dev", "--grpc-addr", addr)
	cache := filepath.Join(dir, "cache.json")
	node := startNodeProc(t, "--control", addr, "--node-id", "n1", "--cache-file", cache,
		"--control-backoff-min", "200ms", "--control-backoff-max", "2s")
	allow := policyFile(t, dir, "allow.yaml", 65536, "https://app.example.com")
	mustWsctl(t, addr, "", "policy", "apply", "-f", allow)
	waitFor(t, 3*time.Second, "revision 2 applied", func() bool { return nodesList(t, addr)["n1"].AppliedRevision == 2 })

	cp.kill()
	dials0 := node.metric(t, "wsfleet_node_control_dials_total")
	for i := 0; i < 10; i++ {
		if s := handshake(t, node.ws, "https://app.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("node stopped serving with the control plane down: status %d", s)
		}
		time.Sleep(time.Second)
	}
	dials := node.metric(t, "wsfleet_node_control_dials_total") - dials0
	t.Logf("%v dials in 10s with the control plane down", dials)
	if dials < 2 || dials > 40 {
		t.Fatalf("%v dials in 10s: want a few (backoff 200ms..2s), not none and not a tight loop", dials)
	}

	startControl(t, dataDir, "--dev", "--grpc-addr", addr)
	restarted := time.Now()
	mustWsctl(t, addr, "", "policy", "apply", "-f", policyFile(t, dir, "v3.yaml", 65536, "https://app.example.com", "https://v3.example.com"))
	took := waitFor(t, 5*time.Second, "node on revision 3 after the restart", func() bool {
		if nodesList(t, addr)["n1"].AppliedRevision == 3 {
			return true
		}
		if time.Since(restarted) > 4900*time.Millisecond {
			t.Logf("nodes: %+v\nnode log:\n%s", nodesList(t, addr), node.logText())
		}
		return false
	})
	t.Logf("on the latest revision %s after the restart's apply", took)
	if s := handshake(t, node.ws, "https://v3.example.com", ""); s != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", s)
	}

	t.Run("a node restarted while the control plane is down serves its cached policy", func(t *testing.T) {
		// Make sure the cache holds revision 3, then take both down.
		waitFor(t, 3*time.Second, "cache written", func() bool {
			b, _ := os.ReadFile(cache)
			return bytes.Contains(b, []byte("v3.example.com"))
		})
		node.stop(t)
		cpKillAll(t)
		again := startNodeProc(t, "--control", addr, "--node-id", "n1", "--cache-file", cache,
			"--control-backoff-min", "200ms", "--control-backoff-max", "2s")
		if s := handshake(t, again.ws, "https://v3.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("restarted node does not serve its cached policy: status %d\n%s", s, again.logText())
		}
		resp, err := http.Get("http://" + again.metrics + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz %d with a cached policy", resp.StatusCode)
		}
	})
}

// controlProcs tracks the control planes a test started, so a subtest can
// take them all down.
var (
	controlProcsMu sync.Mutex
	controlProcs   []*controlProc
)

func cpKillAll(t *testing.T) {
	t.Helper()
	controlProcsMu.Lock()
	defer controlProcsMu.Unlock()
	for _, p := range controlProcs {
		p.kill()
	}
	controlProcs = nil
}

func TestTelemetryStallLosesNothingSilently(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	const buffer = 300
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "n1", "--cache-file", filepath.Join(t.TempDir(), "c.json"),
		"--telemetry-buffer", strconv.Itoa(buffer))
	waitFor(t, 5*time.Second, "n1 registered", func() bool { return nodesList(t, cp.addr)["n1"].Connected })

	// The control plane stops reading: frozen, its sockets open.
	if err := cp.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = cp.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	const rejected = 3000
	start := time.Now()
	for i := 0; i < rejected; i++ {
		// A distinct origin each: the node folds repeated rejections of one
		// origin into one event, and this test needs one event apiece.
		if s := handshake(t, node.ws, fmt.Sprintf("https://evil-%d.example.net", i), ""); s != http.StatusForbidden {
			t.Fatalf("handshake %d: status %d", i, s)
		}
		if i%500 == 0 {
			if b := node.metric(t, "wsfleet_node_telemetry_buffered"); b > buffer {
				t.Fatalf("buffer at %v, over its bound %d", b, buffer)
			}
		}
	}
	t.Logf("%d rejected handshakes in %s with the control plane frozen", rejected, time.Since(start))
	if s := handshake(t, node.ws, "", ""); s != http.StatusSwitchingProtocols {
		t.Fatalf("the data path is affected: status %d", s)
	}
	dropped := node.metric(t, "wsfleet_node_telemetry_dropped_total")
	if dropped == 0 {
		t.Fatal("no drops counted with the control plane frozen")
	}

	_ = cp.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	var recorded float64
	var n nodeJSON
	waitFor(t, 15*time.Second, "the control plane catches up", func() bool {
		recorded = node.metric(t, "wsfleet_node_telemetry_recorded_total")
		dropped = node.metric(t, "wsfleet_node_telemetry_dropped_total")
		n = nodesList(t, cp.addr)["n1"]
		return node.metric(t, "wsfleet_node_telemetry_buffered") == 0 && float64(n.TelemetryDropped) == dropped
	})
	t.Logf("recorded %v, dropped %v, control plane ingested %d (dropped reported %d)", recorded, dropped, n.TelemetryEvents, n.TelemetryDropped)
	if float64(n.TelemetryEvents) != recorded-dropped || float64(n.TelemetryDropped) != dropped {
		t.Fatalf("control plane has %d events and %d reported drops; node recorded %v and dropped %v", n.TelemetryEvents, n.TelemetryDropped, recorded, dropped)
	}
}

func TestATraceIsExplainedAcrossTheFleet(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "edge-7", "--cache-file", filepath.Join(t.TempDir(), "c.json"))
	waitFor(t, 5*time.Second, "registered", func() bool { return nodesList(t, cp.addr)["edge-7"].Connected })
	if s := handshake(t, node.ws, "https://not-allowed.example.com", "trace_id=abc"); s != http.StatusForbidden {
		t.Fatalf("status %d", s)
	}
	var out string
	took := waitFor(t, 2*time.Second, "wsctl trace abc shows the event", func() bool {
		r := runWsctl(t, cp.addr, "", "trace", "abc")
		out = r.stdout
		return r.code == 0
	})
	t.Logf("trace visible %s after the handshake", took)
	for _, want := range []string{"origin_rejected", "edge-7", "https://not-allowed.example.com", "403"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace output lacks %q:\n%s", want, out)
		}
	}
	top := mustWsctl(t, cp.addr, "", "errors", "top")
	if !strings.Contains(top, "origin_rejected") || !regexp.MustCompile(`(?i)allowlist`).MatchString(top) {
		t.Errorf("errors top lacks the class or its hint:\n%s", top)
	}
}
