package controlplane

// Backend publish end to end: a real wsfleet-control with a tokens file,
// real wsfleet-node processes with WebSocket clients subscribed, and
// wsctl publish and the HTTP form driven as a backend would; then the
// same control plane binary in front of NATS.

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsfleet/wsfleet/api/subject"
)

const (
	e2ePublisherToken = "e2e-publisher-token-0123456789"
	e2eShopNodeToken  = "e2e-shop-node-token-0123456789"
)

// publishTokens writes a tokens file with an admin, a publisher of pool
// shop and a node token for shop-* in pool shop.
func publishTokens(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "tokens.yaml")
	writeFile(t, path, "tokens:\n"+
		"  - {name: alice, role: admin, token: "+e2eAdminToken+"}\n"+
		"  - {name: orders, role: publisher, token: "+e2ePublisherToken+", pools: [shop]}\n"+
		"  - {name: shop-nodes, role: node, token: "+e2eShopNodeToken+", nodes: [shop-*], pools: [shop]}\n")
	return path
}

// subscriber is a WebSocket client without an Origin (the default policy
// admits those) subscribed to one channel.
type subscriber struct {
	gws.BuiltinEventHandler
	name string
	msgs chan string
}

func (s *subscriber) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	select {
	case s.msgs <- m.Data.String():
	default:
	}
}

func subscribeTo(t *testing.T, name, addr, ch string) *subscriber {
	t.Helper()
	s := &subscriber{name: name, msgs: make(chan string, 64)}
	conn, _, err := gws.NewClient(s, &gws.ClientOption{Addr: "ws://" + addr + "/ws", HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn.ReadLoop()
	}()
	t.Cleanup(func() {
		_ = conn.WriteClose(1000, nil)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = conn.NetConn().Close()
			<-done
		}
	})
	s.expectWelcome(t)
	if err := conn.WriteString(`{"type":"subscribe","channel":"` + ch + `"}`); err != nil {
		t.Fatal(err)
	}
	s.expect(t, `{"type":"subscribed","channel":"`+ch+`"}`)
	return s
}

// expectWelcome waits for the node's first frame, the welcome (its trace
// id differs from connection to connection).
func (s *subscriber) expectWelcome(t *testing.T) {
	t.Helper()
	select {
	case m := <-s.msgs:
		if !strings.HasPrefix(m, `{"type":"welcome",`) {
			t.Fatalf("%s: first frame %s, want the welcome", s.name, m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no welcome within 10s", s.name)
	}
}

// expect waits for exactly the frame want.
func (s *subscriber) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m == want {
				return
			}
			t.Fatalf("%s: got %s, want %s", s.name, m, want)
		case <-deadline:
			t.Fatalf("%s: no %s within 10s", s.name, want)
		}
	}
}

func TestABackendPublishReachesTheSubscribersOfEveryNodeOfThePool(t *testing.T) {
	dir := t.TempDir()
	httpAddr := freeAddr(t)
	cp := startControl(t, t.TempDir(), "--tokens-file", publishTokens(t, dir), "--http-addr", httpAddr)
	var nodes []*nodeProc
	for _, id := range []string{"shop-1", "shop-2"} {
		nodes = append(nodes, startNodeProc(t, "--control", cp.addr, "--token", e2eShopNodeToken, "--node-id", id, "--pool", "shop",
			"--cache-file", filepath.Join(dir, id+".json")))
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "the node's delivery stream attached", func() bool {
			return n.metric(t, "wsfleet_node_deliveries_connected") == 1
		})
	}
	subs := []*subscriber{subscribeTo(t, "client of shop-1", nodes[0].ws, "orders:42"), subscribeTo(t, "client of shop-2", nodes[1].ws, "orders:42")}

	t.Run("wsctl publish reaches a client on each node", func(t *testing.T) {
		out := mustWsctl(t, cp.addr, "", "--token", e2ePublisherToken, "publish", "--pool", "shop", "orders:42", `{"status": "paid"}`)
		if !strings.Contains(out, "queued for 2 nodes") {
			t.Fatalf("wsctl: %s", out)
		}
		for _, s := range subs {
			s.expect(t, `{"type":"message","channel":"orders:42","data":{"status":"paid"}}`)
		}
	})
	t.Run("POST /v1/publish reaches them too", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/publish", strings.NewReader(`{"pool":"shop","channel":"orders:42","data":[1, 2]}`))
		req.Header.Set("Authorization", "Bearer "+e2ePublisherToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"nodes":2`) {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		for _, s := range subs {
			s.expect(t, `{"type":"message","channel":"orders:42","data":[1,2]}`)
		}
	})
	t.Run("a publisher may not publish to another pool, nor a node at all", func(t *testing.T) {
		for _, tc := range []struct{ token, pool string }{{e2ePublisherToken, "default"}, {e2eShopNodeToken, "shop"}} {
			r := runWsctl(t, cp.addr, "", "--token", tc.token, "publish", "--pool", tc.pool, "orders:42", "1")
			if r.code != 1 || !strings.Contains(r.stderr, "permission denied") {
				t.Fatalf("token for pool %s: exit %d\n%s", tc.pool, r.code, r.stderr)
			}
		}
	})
	t.Run("a pool without an attached node is not delivered: exit 6", func(t *testing.T) {
		r := runWsctl(t, cp.addr, "", "--token", e2eAdminToken, "publish", "--pool", "blog", "news", "1")
		if r.code != 6 || !strings.Contains(r.stderr, `no node of pool "blog" is attached`) {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
	for _, n := range nodes {
		if got := n.metric(t, "wsfleet_node_backend_publishes_total"); got != 2 {
			t.Errorf("a node counted %v backend publishes, want 2", got)
		}
	}
}

func TestWithNATSTheControlPlanePublishesOnTheChannelsSubject(t *testing.T) {
	binaries(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	stopped := false
	stopNATS := func() {
		if !stopped {
			stopped = true
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}
	t.Cleanup(stopNATS)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subject.Channel("shop", "orders:42"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cp := startControl(t, t.TempDir(), "--tokens-file", publishTokens(t, t.TempDir()), "--nats-url", ns.ClientURL())
	publish := func() result {
		return runWsctl(t, cp.addr, "", "--token", e2ePublisherToken, "publish", "--pool", "shop", "orders:42", `{"status":"paid"}`)
	}
	// The control plane connects in the background.
	var r result
	waitFor(t, 10*time.Second, "the control plane publishing through NATS", func() bool {
		r = publish()
		return r.code == 0
	})
	if !strings.Contains(r.stdout, "through NATS") {
		t.Fatalf("wsctl: %s", r.stdout)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != `{"status":"paid"}` {
		t.Fatalf("payload %q", msg.Data)
	}

	stopNATS()
	waitFor(t, 10*time.Second, "publishes refused with NATS down", func() bool {
		r = publish()
		return r.code == 6
	})
	if !strings.Contains(r.stderr, "NATS is not connected") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}
