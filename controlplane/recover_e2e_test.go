package controlplane

// The control plane loses its store while the fleet runs: real
// wsfleet-control, wsfleet-node and wsctl processes on loopback, and live
// WebSocket clients held open through the whole story.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// liveClient is a WebSocket client held open across a test; it answers
// the node's pings (gws's built-in handler) and records every text frame.
type liveClient struct {
	gws.BuiltinEventHandler
	name   string
	conn   *gws.Conn
	msgs   chan string
	closed chan struct{} // closed by OnClose
	done   chan struct{} // closed when ReadLoop returned
	mu     sync.Mutex
	err    error // why the connection closed
}

func (c *liveClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	select {
	case c.msgs <- m.Data.String():
	default: // the test reads what it waits for; never block the read loop
	}
}

func (c *liveClient) OnClose(_ *gws.Conn, err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.closed)
}

// dialLive opens a client to a node's /ws with origin; it is closed when
// the test ends.
func dialLive(t *testing.T, name, addr, origin string) *liveClient {
	t.Helper()
	c := &liveClient{name: name, msgs: make(chan string, 64), closed: make(chan struct{}), done: make(chan struct{})}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{
		Addr:             "ws://" + addr + "/ws",
		RequestHeader:    http.Header{"Origin": []string{origin}},
		HandshakeTimeout: 5 * time.Second,
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("%s: handshake: %v (HTTP %d)", name, err, status)
	}
	c.conn = conn
	go func() {
		defer close(c.done)
		conn.ReadLoop()
	}()
	t.Cleanup(func() {
		_ = conn.WriteClose(1000, nil)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = conn.NetConn().Close()
			<-c.done
		}
	})
	return c
}

// open fails the test if the connection was closed.
func (c *liveClient) open(t *testing.T) {
	t.Helper()
	select {
	case <-c.closed:
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("%s: the live connection was dropped: %v", c.name, c.err)
	default:
	}
}

// roundTrip subscribes to a channel, publishes a token on it and waits
// for the node to deliver it back: the connection carries traffic.
func (c *liveClient) roundTrip(t *testing.T, channel, token string) {
	t.Helper()
	c.open(t)
	c.send(t, fmt.Sprintf(`{"type":"subscribe","channel":%q}`, channel))
	c.await(t, `"subscribed"`, channel)
	c.send(t, fmt.Sprintf(`{"type":"publish","channel":%q,"data":%q}`, channel, token))
	c.await(t, `"message"`, token)
}

func (c *liveClient) send(t *testing.T, frame string) {
	t.Helper()
	if err := c.conn.WriteString(frame); err != nil {
		t.Fatalf("%s: write %s: %v", c.name, frame, err)
	}
}

// await waits for a frame containing every one of parts.
func (c *liveClient) await(t *testing.T, parts ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(m, p)
			}
			if ok {
				return
			}
		case <-c.closed:
			c.open(t)
		case <-deadline:
			t.Fatalf("%s: no frame with %q within 10s", c.name, parts)
		}
	}
}

// nodeAhead is the part of `wsctl nodes list -o json` this test reads.
type nodeAhead struct {
	NodeID           string `json:"node_id"`
	Connected        bool   `json:"connected"`
	AppliedPool      string `json:"applied_pool"`
	AppliedRevision  int64  `json:"applied_revision"`
	AppliedStoreID   string `json:"applied_store_id"`
	Ahead            bool   `json:"ahead"`
	HeadRevision     int64  `json:"head_revision"`
	LastNackRevision int64  `json:"last_nack_revision"`
	LastNackError    string `json:"last_nack_error"`
}

func nodesAhead(t *testing.T, addr string) map[string]nodeAhead {
	t.Helper()
	out := mustWsctl(t, addr, "", "nodes", "list", "-o", "json")
	var resp struct {
		Nodes []nodeAhead `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("nodes list -o json: %v\n%s", err, out)
	}
	m := map[string]nodeAhead{}
	for _, n := range resp.Nodes {
		m[n.NodeID] = n
	}
	return m
}

// TestAResetStoreNeverRollsTheFleetBack is issue 7's story: the control
// plane's store is lost while two nodes run revision 4 with live clients;
// the restarted control plane (a new, empty store) offers revision 1, which
// would forbid the app's origin. The nodes refuse it and keep serving, are
// shown ahead, and `wsctl policy recover` makes what they run revision 5,
// which they apply without dropping a connection.
func TestAResetStoreNeverRollsTheFleetBack(t *testing.T) {
	const (
		app   = "https://app.example.com"
		late  = "https://late.example.com" // allowed from revision 4 only
		evil  = "https://evil.example.com"
		nodes = 2
	)
	dataDir, dir := t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	cp := startControl(t, dataDir, "--dev", "--grpc-addr", addr)
	ids := []string{"n1", "n2"}
	var ns []*nodeProc
	for i, id := range ids {
		args := []string{"--control", addr, "--node-id", id, "--cache-file", filepath.Join(dir, id+".json"),
			"--control-backoff-min", "100ms", "--control-backoff-max", "1s"}
		if i == 1 {
			args = append(args, "--pool", "edge") // a pool without a policy of its own runs default's
		}
		ns = append(ns, startNodeProc(t, args...))
	}
	fleetOn := func(what string, rev int64, extra func(nodeAhead) bool) {
		t.Helper()
		waitFor(t, 15*time.Second, what, func() bool {
			all := nodesAhead(t, addr)
			for _, id := range ids {
				n := all[id]
				if !n.Connected || n.AppliedRevision != rev || (extra != nil && !extra(n)) {
					return false
				}
			}
			return true
		})
	}
	fleetOn("both nodes on revision 1", 1, nil)

	// Revisions 2..4; the nodes run 4.
	mustWsctl(t, addr, "", "policy", "apply", "-f", policyFile(t, dir, "r2.yaml", 65536, app), "-m", "allow the app")
	mustWsctl(t, addr, "", "policy", "apply", "-f", policyFile(t, dir, "r3.yaml", 65536, app, "https://b.example.com"))
	mustWsctl(t, addr, "", "policy", "apply", "-f", policyFile(t, dir, "r4.yaml", 65536, app, "https://b.example.com", late), "-m", "allow late")
	fleetOn("both nodes on revision 4", 4, nil)
	before := getJSON(t, addr)

	live := make([]*liveClient, nodes)
	for i, n := range ns {
		live[i] = dialLive(t, ids[i]+" client", n.ws, app)
		live[i].roundTrip(t, "before", "token-before-"+ids[i])
	}

	// The store is lost: stop, move policy.db away, start on the same
	// address with a new store.
	cp.stop(t)
	if err := os.Rename(filepath.Join(dataDir, "policy.db"), filepath.Join(dir, "lost-policy.db")); err != nil {
		t.Fatal(err)
	}
	cp2 := startControl(t, dataDir, "--dev", "--grpc-addr", addr)
	if r := getJSON(t, addr); r.Revision != 1 {
		t.Fatalf("the new store's head is revision %d, want 1", r.Revision)
	}

	t.Run("the nodes refuse revision 1 and keep serving what they run", func(t *testing.T) {
		fleetOn("both nodes NACKed revision 1, still on 4", 4, func(n nodeAhead) bool { return n.LastNackRevision == 1 })
		for id, n := range nodesAhead(t, addr) {
			if !strings.Contains(n.LastNackError, "revision went backwards: running default@4 from store") ||
				!strings.Contains(n.LastNackError, "offered default@1 from store") {
				t.Errorf("%s: NACK %q", id, n.LastNackError)
			}
			if !n.Ahead || n.HeadRevision != 1 || n.AppliedStoreID == "" {
				t.Errorf("%s not shown ahead: %+v", id, n)
			}
		}
		for i, n := range ns {
			live[i].roundTrip(t, "during", "token-during-"+ids[i])
			for _, origin := range []string{app, late} {
				if s := handshake(t, n.ws, origin, ""); s != http.StatusSwitchingProtocols {
					t.Fatalf("%s answers %d to %s: it does not run revision 4 any more", ids[i], s, origin)
				}
			}
			if s := handshake(t, n.ws, evil, ""); s != http.StatusForbidden {
				t.Fatalf("%s answers %d to %s", ids[i], s, evil)
			}
		}
		table := mustWsctl(t, addr, "", "nodes", "list")
		if strings.Count(table, "default@4 AHEAD of control plane (@1)") != nodes || !strings.Contains(table, "wsctl policy recover --pool default") {
			t.Fatalf("nodes list does not show both nodes ahead:\n%s", table)
		}
	})

	t.Run("recover makes what the fleet runs revision 5 and every node applies it", func(t *testing.T) {
		out := mustWsctl(t, addr, "", "policy", "recover")
		if !strings.Contains(out, "recovered default@4 of store bolt-") || !strings.Contains(out, "pool default: revision 1 -> 5") {
			t.Fatalf("policy recover printed:\n%s", out)
		}
		after := getJSON(t, addr)
		if after.Revision != 5 || after.Author != "dev:e2e" || !jsonEqual(t, after.Policy, before.Policy) {
			t.Fatalf("head after recover: %+v\nwant revision 5 with revision 4's content %s", after, before.Policy)
		}
		fleetOn("both nodes ACKed revision 5", 5, func(n nodeAhead) bool { return !n.Ahead && n.HeadRevision == 5 })
		for i, n := range ns {
			live[i].roundTrip(t, "after", "token-after-"+ids[i])
			if s := handshake(t, n.ws, late, ""); s != http.StatusSwitchingProtocols {
				t.Fatalf("%s answers %d to %s after the recovery", ids[i], s, late)
			}
		}
		hist := mustWsctl(t, addr, "", "policy", "history")
		if !strings.Contains(hist, "recovered from node") || !strings.Contains(hist, "default@4") {
			t.Fatalf("history does not show the recovered revision:\n%s", hist)
		}
	})

	// No connection was dropped through any of it.
	for _, c := range live {
		c.open(t)
	}
	if t.Failed() {
		t.Logf("control plane log:\n%s", cp2.logText())
		for i, n := range ns {
			t.Logf("%s log:\n%s", ids[i], n.logText())
		}
	}
}
