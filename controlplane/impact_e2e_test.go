package controlplane

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// impactPolicy writes a complete policy allowing origins with the given
// max_connections.
func impactPolicy(t *testing.T, dir, name string, maxConns int, origins ...string) string {
	t.Helper()
	quoted := make([]string, len(origins))
	for i, o := range origins {
		quoted[i] = strconv.Quote(o)
	}
	body := fmt.Sprintf(`origins: {allow: [%s], allow_missing: false}
heartbeat: {interval: 25s, timeout: 1m}
limits: {max_connections: %d, max_connections_per_ip: 100000, handshakes_per_second: 100000, handshake_burst: 100000, messages_per_second: 100, message_burst: 200, max_message_bytes: 65536}
breaker: {failure_ratio: 0.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`, strings.Join(quoted, ", "), maxConns)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openConn upgrades a WebSocket connection from origin and keeps it open
// until the test ends.
func openConn(t *testing.T, addr, origin string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\nOrigin: " + origin + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade from %s: status %d", origin, resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
}

// impactJSON is the part of `wsctl policy apply --dry-run -o json` the
// test reads.
type impactJSON struct {
	Impact struct {
		NodesReporting int `json:"nodes_reporting"`
		NewlyRejected  []struct {
			Origin     string `json:"origin"`
			Handshakes int64  `json:"handshakes"`
		} `json:"newly_rejected"`
		NewlyAdmitted []struct {
			Origin     string `json:"origin"`
			Handshakes int64  `json:"handshakes"`
		} `json:"newly_admitted"`
		Limits []struct {
			Field    string `json:"field"`
			Limit    int64  `json:"limit"`
			OldLimit int64  `json:"old_limit"`
			Peak     int64  `json:"peak"`
			NodeID   string `json:"node_id"`
			Exceeded bool   `json:"exceeded"`
		} `json:"limits"`
	} `json:"impact"`
}

func dryRun(t *testing.T, addr, file string) impactJSON {
	t.Helper()
	out := mustWsctl(t, addr, "", "policy", "apply", "--dry-run", "-o", "json", "-f", file)
	var r impactJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("policy apply --dry-run -o json: %v\n%s", err, out)
	}
	return r
}

func rejectedOf(r impactJSON, origin string) int64 {
	for _, o := range r.Impact.NewlyRejected {
		if o.Origin == origin {
			return o.Handshakes
		}
	}
	return 0
}

func admittedOf(r impactJSON, origin string) int64 {
	for _, o := range r.Impact.NewlyAdmitted {
		if o.Origin == origin {
			return o.Handshakes
		}
	}
	return 0
}

// TestDryRunReportsImpactOnRecentTraffic is the Done-when: after
// accepted and rejected handshakes from several origins, a dry run of an
// allowlist dropping one origin reports exactly its accepted count, one
// admitting a rejected origin exactly its rejections, and one lowering
// max_connections under the peak reports the limit exceeded — through the
// real binaries and wsctl.
func TestDryRunReportsImpactOnRecentTraffic(t *testing.T) {
	const (
		originA, originB, originC = "https://a.example.com", "https://b.example.com", "https://c.example.com"
		nA, nB, nC, held          = 5, 3, 4, 3
	)
	dir := t.TempDir()
	cp := startControl(t, t.TempDir(), "--dev")
	// Samples every 300ms instead of every minute, and rejections not
	// folded for long, so the test sees its traffic within seconds.
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "edge-1", "--cache-file", filepath.Join(dir, "c.json"),
		"--traffic-interval", "300ms", "--fold-window", "500ms")
	waitFor(t, 10*time.Second, "registered", func() bool { return nodesList(t, cp.addr)["edge-1"].Connected })

	mustWsctl(t, cp.addr, "", "policy", "apply", "-f", impactPolicy(t, dir, "ab.yaml", 100000, originA, originB), "-m", "allow a and b")
	rev := getJSON(t, cp.addr).Revision
	waitFor(t, 10*time.Second, "node on the new revision", func() bool { return nodesList(t, cp.addr)["edge-1"].AppliedRevision == rev })

	for range nA - held {
		if s := handshake(t, node.ws, originA, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("origin A: status %d", s)
		}
	}
	for range held {
		openConn(t, node.ws, originA) // held open: the node's connection peak is at least `held`
	}
	for range nB {
		if s := handshake(t, node.ws, originB, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("origin B: status %d", s)
		}
	}
	for range nC {
		if s := handshake(t, node.ws, originC, ""); s != http.StatusForbidden {
			t.Fatalf("origin C: status %d", s)
		}
	}

	dropB := impactPolicy(t, dir, "a.yaml", 100000, originA)
	var r impactJSON
	waitFor(t, 15*time.Second, "the dry run sees B's accepted handshakes", func() bool {
		r = dryRun(t, cp.addr, dropB)
		return rejectedOf(r, originB) >= nB
	})
	if got := rejectedOf(r, originB); got != nB {
		t.Errorf("newly rejected %s: %d handshakes, want exactly %d", originB, got, nB)
	}
	if got := rejectedOf(r, originA); got != 0 {
		t.Errorf("newly rejected %s: %d, want nothing: the new allowlist keeps it", originA, got)
	}
	if len(r.Impact.NewlyAdmitted) != 0 || r.Impact.NodesReporting != 1 {
		t.Errorf("newly admitted %v, nodes reporting %d; want none and 1", r.Impact.NewlyAdmitted, r.Impact.NodesReporting)
	}
	human := mustWsctl(t, cp.addr, "", "policy", "apply", "--dry-run", "-f", dropB)
	if !strings.Contains(human, "would newly reject:") || !strings.Contains(human, originB) || !strings.Contains(human, fmt.Sprintf("%d handshakes in the last hour", nB)) {
		t.Errorf("the table does not say what would be rejected:\n%s", human)
	}

	admitC := impactPolicy(t, dir, "abc.yaml", 100000, originA, originB, originC)
	waitFor(t, 15*time.Second, "the dry run sees C's rejections", func() bool {
		r = dryRun(t, cp.addr, admitC)
		return admittedOf(r, originC) >= nC
	})
	if got := admittedOf(r, originC); got != nC {
		t.Errorf("newly admitted %s: %d, want exactly its %d rejections", originC, got, nC)
	}
	if len(r.Impact.NewlyRejected) != 0 {
		t.Errorf("newly rejected %v, want none", r.Impact.NewlyRejected)
	}

	r = dryRun(t, cp.addr, impactPolicy(t, dir, "low.yaml", held-1, originA, originB))
	found := false
	for _, l := range r.Impact.Limits {
		if l.Field != "limits.max_connections" {
			continue
		}
		found = true
		if !l.Exceeded || l.Peak < held || l.Limit != held-1 || l.OldLimit != 100000 || l.NodeID != "edge-1" {
			t.Errorf("max_connections impact %+v; want exceeded, peak >= %d on edge-1, limit %d, old 100000", l, held, held-1)
		}
	}
	if !found {
		t.Errorf("no max_connections in %+v", r.Impact.Limits)
	}
	if r.Impact.Limits[0].Field != "limits.max_connections" {
		t.Errorf("limits %+v: the exceeded one is not first", r.Impact.Limits)
	}
	// A dry run stores nothing.
	if got := getJSON(t, cp.addr).Revision; got != rev {
		t.Errorf("revision %d after dry runs, want %d", got, rev)
	}
}
