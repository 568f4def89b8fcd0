package wsclient_test

// The client against what may stand in front of a node, or in its place:
// a proxy answering for it, a port that accepts and never answers, a port
// with nothing behind it, a node that goes silent. These stand-ins are
// in-process servers on loopback.

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/sdk/wsclient"
)

func TestAProxyAnsweringForTheNodeIsAHandshakeFailure(t *testing.T) {
	var explained atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws/explain" {
			explained.Add(1)
			http.Error(w, `{"error":"unknown trace id"}`, http.StatusNotFound)
			return
		}
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
	}))
	defer front.Close()
	_, ev := newClient(t, wsclient.Config{URL: "ws" + strings.TrimPrefix(front.URL, "http") + "/ws", MaxBackoff: time.Minute, MinBackoff: time.Minute})
	fail, _ := ev.wait(t, 10*time.Second, "disconnected", 0, state(wsclient.StateDisconnected))
	f := fail.Failure
	if f.Name != "client_handshake_failed" || !f.Retryable || f.Signal != "HTTP 502" || !strings.Contains(f.Detail, "not from a wsfleet node") {
		t.Errorf("failure %+v: want a retryable client_handshake_failed, HTTP 502, not from a node", f)
	}
	if explained.Load() != 1 {
		t.Errorf("explain asked %d times, want 1", explained.Load())
	}
}

// blackhole accepts connections and never answers; it counts them.
type blackhole struct {
	l        net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startBlackhole(t *testing.T) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		b.wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			_ = c.Close()
		}
	})
	return b
}

func (b *blackhole) url() string { return "ws://" + b.l.Addr().String() + "/ws" }

func TestNoAnswerWithinTheOpenTimeoutIsAHandshakeTimeout(t *testing.T) {
	b := startBlackhole(t)
	_, ev := newClient(t, wsclient.Config{URL: b.url(), OpenTimeout: 300 * time.Millisecond, MinBackoff: time.Minute, MaxBackoff: time.Minute})
	fail, _ := ev.wait(t, 10*time.Second, "disconnected", 0, state(wsclient.StateDisconnected))
	if f := fail.Failure; f.Name != "client_handshake_timeout" || !f.Retryable || !strings.Contains(f.Detail, "connected, no 101") {
		t.Errorf("failure %+v: want a retryable client_handshake_timeout after connecting", f)
	}
}

func TestCloseReturnsPromptlyAndLeavesNoGoroutine(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T) (wsclient.Config, func(*events) bool)
	}{
		{"while the handshake waits for an answer", func(t *testing.T) (wsclient.Config, func(*events) bool) {
			b := startBlackhole(t)
			return wsclient.Config{URL: b.url(), OpenTimeout: time.Minute}, func(*events) bool { return b.accepted.Load() > 0 }
		}},
		{"while waiting out the backoff", func(t *testing.T) (wsclient.Config, func(*events) bool) {
			return wsclient.Config{URL: "ws://" + freeAddr(t) + "/ws", MinBackoff: time.Minute, MaxBackoff: time.Minute,
					Jitter: func(c time.Duration) time.Duration { return c }},
				func(e *events) bool {
					all := e.snapshot()
					return len(all) > 0 && all[len(all)-1].State == wsclient.StateDisconnected
				}
		}},
		{"while connected to a silent node", func(t *testing.T) (wsclient.Config, func(*events) bool) {
			s := startSilentNode(t, 60_000, 120_000)
			return wsclient.Config{URL: s.url()}, func(e *events) bool {
				all := e.snapshot()
				return len(all) > 0 && all[len(all)-1].State == wsclient.StateConnected
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ready := tt.setup(t)
			ignore := goleak.IgnoreCurrent()
			ev := newEvents()
			cfg.OnEvent, cfg.Log = ev.add, quiet()
			c, err := wsclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "ready to close", func() bool { return ready(ev) })
			start := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Close took %s", took)
			}
			if c.State() != wsclient.StateClosed {
				t.Errorf("state %s after Close", c.State())
			}
			select {
			case <-c.Done():
			default:
				t.Error("Done not closed after Close")
			}
			goleak.VerifyNone(t, ignore)
		})
	}
}

func TestTheWaitsFollowFullJitterBounds(t *testing.T) {
	// Jitter returning its ceiling makes the schedule the ceilings
	// themselves: 10, 20, 40, 40ms.
	_, ev := newClient(t, wsclient.Config{URL: "ws://" + freeAddr(t) + "/ws", MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Jitter: func(c time.Duration) time.Duration { return c }})
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}
	if got := waits(t, ev, len(want)); !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// waits returns the waits of the first n disconnections.
func waits(t *testing.T, ev *events, n int) []time.Duration {
	t.Helper()
	var got []time.Duration
	from := 0
	for range n {
		e, i := ev.wait(t, 10*time.Second, "disconnected", from, state(wsclient.StateDisconnected))
		got = append(got, e.Delay)
		from = i + 1
	}
	return got
}

// silentNode is a WebSocket server that sends the welcome frame with the
// given heartbeat and then says nothing, counting the client's pings.
type silentNode struct {
	srv   *httptest.Server
	pings atomic.Int64
	conns sync.WaitGroup
}

type silentHandler struct {
	gws.BuiltinEventHandler
	n *silentNode
}

func (h *silentHandler) OnMessage(_ *gws.Conn, m *gws.Message) {
	if strings.Contains(string(m.Bytes()), `"ping"`) {
		h.n.pings.Add(1)
	}
	_ = m.Close()
}

// OnPing: the node is silent, it answers no WebSocket ping either.
func (h *silentHandler) OnPing(*gws.Conn, []byte) {}

func startSilentNode(t *testing.T, intervalMS, timeoutMS int) *silentNode {
	t.Helper()
	n := &silentNode{}
	up := gws.NewUpgrader(&silentHandler{n: n}, nil)
	welcome := `{"type":"welcome","trace_id":"x","node_id":"silent","heartbeat_interval_ms":` +
		strconv.Itoa(intervalMS) + `,"heartbeat_timeout_ms":` + strconv.Itoa(timeoutMS) + `}`
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		_ = socket.WriteString(welcome)
		n.conns.Add(1)
		go func() {
			defer n.conns.Done()
			socket.ReadLoop()
		}()
	}))
	t.Cleanup(func() {
		n.srv.CloseClientConnections()
		n.srv.Close()
		n.conns.Wait()
	})
	return n
}

func (n *silentNode) url() string { return "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/ws" }

func TestASilentNodeIsDeadAfterTheHeartbeatTimeout(t *testing.T) {
	n := startSilentNode(t, 100, 500)
	c, ev := newClient(t, wsclient.Config{URL: n.url(), MinBackoff: time.Minute, MaxBackoff: time.Minute})
	up, i := ev.wait(t, 10*time.Second, "connected", 0, state(wsclient.StateConnected))
	fail, _ := ev.wait(t, 10*time.Second, "disconnected", i, state(wsclient.StateDisconnected))
	f := fail.Failure
	if f.Name != "client_connection_lost" || !strings.Contains(f.Detail, "no frame from the node") {
		t.Errorf("failure %+v: want client_connection_lost for a silent node", f)
	}
	// The timeout runs from the last frame received (the welcome), a little
	// before the connected event is recorded: allow that much early.
	if took := fail.Time.Sub(up.Time); took < 450*time.Millisecond || took > 5*time.Second {
		t.Errorf("declared dead %s after connecting, want about the 500ms timeout", took)
	}
	if p := n.pings.Load(); p < 2 {
		t.Errorf("%d application pings sent in 500ms at a 100ms interval", p)
	}
	if st := c.Stats(); st.ReportsQueued != 1 {
		t.Errorf("stats %+v: the lost connection is not queued for reporting", st)
	}
}

func TestANodeThatCannotExplainIsReadByItsStatus(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws/explain" {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Header().Set("X-Trace-ID", r.URL.Query().Get("trace_id"))
		w.Header().Set("Retry-After", "2")
		http.Error(w, `{"error":"rate_limited"}`, http.StatusTooManyRequests)
	}))
	defer front.Close()
	_, ev := newClient(t, wsclient.Config{URL: "ws" + strings.TrimPrefix(front.URL, "http") + "/ws",
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	fail, _ := ev.wait(t, 10*time.Second, "disconnected", 0, state(wsclient.StateDisconnected))
	if f := fail.Failure; f.Name != "rate_limited" || f.RetryAfter != 2*time.Second || fail.Delay < 2*time.Second {
		t.Errorf("failure %+v, wait %s: want rate_limited from the 429, waiting its Retry-After of 2s", f, fail.Delay)
	}
}

func TestAnUnreachableNodeSaysWhatFailed(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	for _, tt := range []struct {
		name, url, detail string
	}{
		{"nothing listening: connection refused", "ws://" + freeAddr(t) + "/ws", "tcp: connection refused"},
		{"wss to a plain HTTP server: not TLS", "wss://" + strings.TrimPrefix(plain.URL, "http://") + "/ws", "tls: "},
		{"a certificate nobody vouches for", "wss://" + strings.TrimPrefix(tlsSrv.URL, "https://") + "/ws", "tls: certificate: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ev := newClient(t, wsclient.Config{URL: tt.url, MinBackoff: time.Minute, MaxBackoff: time.Minute})
			fail, _ := ev.wait(t, 10*time.Second, "disconnected", 0, state(wsclient.StateDisconnected))
			if f := fail.Failure; f.Name != "client_unreachable" || !f.Retryable || !strings.HasPrefix(f.Detail, tt.detail) {
				t.Errorf("failure %+v: want a retryable client_unreachable whose detail starts %q", f, tt.detail)
			}
		})
	}
}

// A node that welcomes every connection and drops it at once (a crash
// loop, a broken route behind it) is a failure each time: the waits grow
// as for a node that refuses, instead of starting over at every welcome.
func TestANodeThatDropsEveryConnectionAtOnceIsNotRedialledInATightLoop(t *testing.T) {
	up := gws.NewUpgrader(&gws.BuiltinEventHandler{}, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		_ = socket.WriteString(`{"type":"welcome","trace_id":"x","node_id":"flaky","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}`)
		_ = socket.WriteClose(1011, []byte("crashing"))
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	// Jitter returning its ceiling makes the schedule the ceilings.
	_, ev := newClient(t, wsclient.Config{URL: url, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		Jitter: func(c time.Duration) time.Duration { return c }})
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}
	if got := waits(t, ev, len(want)); !slices.Equal(got, want) {
		t.Fatalf("waits %v after connections dropped at once, want %v", got, want)
	}
}
