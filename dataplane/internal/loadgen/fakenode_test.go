package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// fakeNode speaks the node's channel protocol (the welcome, subscribe and
// its acknowledgement, publish, message, error frames) and checks Origin, and nothing else: the seam the scenarios
// need, without the real node.
type fakeNode struct {
	origin string
	// dropEvery, when > 0, drops the first subscriber's copy of every
	// dropEvery-th publish: a node that loses messages.
	dropEvery int64
	// errorOnPublish answers every publish with an error frame.
	errorOnPublish bool
	// closeAfterOpen closes every connection this long after its upgrade.
	closeAfterOpen time.Duration
	// noAck subscribes without acknowledging.
	noAck bool

	upgrader *gws.Upgrader
	srv      *http.Server
	ln       net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[*gws.Conn]struct{}
	subs   map[string][]*gws.Conn
	loops  sync.WaitGroup
	timers []*time.Timer

	upgrades  atomic.Int64
	rejected  atomic.Int64
	maxOpen   atomic.Int64
	publishes atomic.Int64
}

type fakeOption func(*fakeNode)

func startFakeNode(t *testing.T, opts ...fakeOption) *fakeNode {
	t.Helper()
	f, err := newFakeNode("127.0.0.1:0", DefaultOrigin, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.shutdown)
	return f
}

func newFakeNode(addr, origin string, opts ...fakeOption) (*fakeNode, error) {
	f := &fakeNode{origin: origin, conns: map[*gws.Conn]struct{}{}, subs: map[string][]*gws.Conn{}}
	for _, o := range opts {
		o(f)
	}
	f.upgrader = gws.NewUpgrader(fakeHandler{f}, &gws.ServerOption{})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f.ln = ln
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

func (f *fakeNode) addr() string { return f.ln.Addr().String() }

func (f *fakeNode) target() Target {
	return Target{Name: "fake", URL: "ws://" + f.addr() + "/ws", Origin: f.origin}
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/ws" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Origin") != f.origin {
		f.rejected.Add(1)
		http.Error(w, `{"error":"origin_rejected"}`, http.StatusForbidden)
		return
	}
	conn, err := f.upgrader.Upgrade(w, r)
	if err != nil {
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = conn.WriteClose(1001, nil)
		return
	}
	f.conns[conn] = struct{}{}
	if n := int64(len(f.conns)); n > f.maxOpen.Load() {
		f.maxOpen.Store(n)
	}
	f.upgrades.Add(1)
	// The node's first frame, which every scenario must skip.
	_ = conn.WriteString(`{"type":"welcome","trace_id":"fake","node_id":"fake","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}`)
	f.loops.Go(conn.ReadLoop)
	if f.closeAfterOpen > 0 {
		f.timers = append(f.timers, time.AfterFunc(f.closeAfterOpen, func() { _ = conn.WriteClose(1008, nil) }))
	}
	f.mu.Unlock()
}

// open is the number of server-side connections not yet closed.
func (f *fakeNode) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// shutdown stops accepting, closes every connection with 1001 as the node
// does on SIGTERM, and waits for the read loops.
func (f *fakeNode) shutdown() {
	_ = f.srv.Close()
	f.mu.Lock()
	f.closed = true
	for _, t := range f.timers {
		t.Stop()
	}
	conns := make([]*gws.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.WriteClose(1001, nil)
	}
	f.loops.Wait()
}

type fakeHandler struct{ f *fakeNode }

func (h fakeHandler) OnOpen(*gws.Conn) {}

func (h fakeHandler) OnPing(c *gws.Conn, _ []byte) { _ = c.WritePong(nil) }

func (h fakeHandler) OnPong(*gws.Conn, []byte) {}

func (h fakeHandler) OnClose(c *gws.Conn, _ error) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	for ch, subs := range f.subs {
		for i, s := range subs {
			if s == c {
				f.subs[ch] = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
	}
}

func (h fakeHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer func() { _ = m.Close() }()
	f := h.f
	var in struct {
		Type    string          `json:"type"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(m.Bytes(), &in); err != nil || in.Channel == "" {
		_ = c.WriteString(`{"type":"error","code":"bad_frame","message":"bad frame"}`)
		return
	}
	switch in.Type {
	case "subscribe":
		f.mu.Lock()
		f.subs[in.Channel] = append(f.subs[in.Channel], c)
		f.mu.Unlock()
		// Acknowledged as the real node does; the scenarios skip it.
		if f.noAck {
			return
		}
		_ = c.WriteString(`{"type":"subscribed","channel":` + strconv.Quote(in.Channel) + `}`)
	case "publish":
		if f.errorOnPublish {
			_ = c.WriteString(`{"type":"error","code":"internal","message":"publish refused"}`)
			return
		}
		out, _ := json.Marshal(struct {
			Type    string          `json:"type"`
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}{"message", in.Channel, in.Data})
		f.mu.Lock()
		subs := append([]*gws.Conn(nil), f.subs[in.Channel]...)
		f.mu.Unlock()
		n := f.publishes.Add(1)
		for i, s := range subs {
			if i == 0 && f.dropEvery > 0 && n%f.dropEvery == 0 {
				continue
			}
			_ = s.WriteMessage(gws.OpcodeText, out)
		}
	default:
		_ = c.WriteString(`{"type":"error","code":"unknown_type","message":"unknown type"}`)
	}
}

var _ gws.Event = fakeHandler{}

// startEcho runs the real EchoServer on loopback for one test.
func startEcho(t *testing.T) (*EchoServer, Target) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewEchoServer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo server: %v", err)
		}
		// Every scenario closes its connections; a read loop still
		// running here would be a leak.
		s.Wait()
	})
	return s, Target{Name: "echo", URL: "ws://" + ln.Addr().String() + "/ws", Origin: DefaultOrigin}
}

// eventually polls cond for up to 5s: a server notices a client's close a
// moment after the client returns.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantErr fails unless err wraps want and mentions every fragment.
func wantErr(t *testing.T, err, want error, fragments ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
