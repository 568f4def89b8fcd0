package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/errclass"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBinaries() }))
}

const testOrigin = "https://app.example.com"

// testPolicy is a policy for tests: one allowed origin, fast heartbeat,
// generous limits.
func testPolicy() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{testOrigin, "https://*.example.org"}
	p.Origins.AllowMissing = false
	p.Heartbeat.Interval = durationpb.New(time.Second)
	p.Heartbeat.Timeout = durationpb.New(2 * time.Second)
	p.Limits.HandshakesPerSecond = 10_000
	p.Limits.HandshakeBurst = 10_000
	p.Limits.MessagesPerSecond = 10_000
	p.Limits.MessageBurst = 10_000
	return p
}

// sink records events for assertions.
type sink struct {
	mu     sync.Mutex
	events []*wsfleetv1.ErrorEvent
	cond   chan struct{}
}

func newSink() *sink { return &sink{cond: make(chan struct{}, 1)} }

func (s *sink) Record(ev *wsfleetv1.ErrorEvent) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	select {
	case s.cond <- struct{}{}:
	default:
	}
}

// wait returns the first event matching pred, failing after timeout.
func (s *sink) wait(t *testing.T, timeout time.Duration, what string, pred func(*wsfleetv1.ErrorEvent) bool) *wsfleetv1.ErrorEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if pred(ev) {
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		select {
		case <-s.cond:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s event within %s; events: %v", what, timeout, s.all())
			return nil
		}
	}
}

func (s *sink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.events {
		out = append(out, fmt.Sprintf("%s/%s(%s)", ev.GetKind(), errclass.Name(ev.GetClass()), ev.GetError()))
	}
	return out
}

func (s *sink) count(class wsfleetv1.ErrorClass) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		if ev.GetClass() == class {
			n++
		}
	}
	return n
}

func classIs(c wsfleetv1.ErrorClass) func(*wsfleetv1.ErrorEvent) bool {
	return func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetClass() == c }
}

type testNode struct {
	*Node
	sink *sink
	addr string
	// stop drains the node as Run does when its context ends and waits for
	// Run to return; also called when the test ends.
	stop func()
}

// startNode runs a node on loopback and drains it when the test ends.
func startNode(t testing.TB, p *wsfleetv1.Policy, mutate func(*Config)) *testNode {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	sk := newSink()
	cfg := Config{
		NodeID:      "node-test",
		ListenAddr:  "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0",
		Policy:      &wsfleetv1.PolicyRevision{Pool: "default", Revision: 1, Policy: p},
		Sink:        sk,
		Log:         log,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("node did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &testNode{Node: n, sink: sk, addr: n.Addr().String(), stop: stop}
}

// client is a gws client that records what it receives.
type client struct {
	gws.BuiltinEventHandler
	conn      *gws.Conn
	resp      *http.Response
	msgs      chan string
	closed    chan error
	noPong    bool
	closeOnce sync.Once
}

func (c *client) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	select {
	case c.msgs <- m.Data.String():
	default:
	}
}

func (c *client) OnPing(socket *gws.Conn, payload []byte) {
	if !c.noPong {
		_ = socket.WritePong(payload)
	}
}

func (c *client) OnClose(_ *gws.Conn, err error) {
	c.closeOnce.Do(func() { c.closed <- err; close(c.closed) })
}

type dialOpts struct {
	origin  string
	query   string
	header  http.Header
	noPong  bool
	noStart bool // do not start the read loop
}

func dial(t testing.TB, addr string, o dialOpts) (*client, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range o.header {
		h[k] = v
	}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	c := &client{msgs: make(chan string, 4096), closed: make(chan error, 1), noPong: o.noPong}
	url := "ws://" + addr + "/ws"
	if o.query != "" {
		url += "?" + o.query
	}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{Addr: url, RequestHeader: h, HandshakeTimeout: 5 * time.Second})
	c.resp = resp
	if err != nil {
		return c, err
	}
	c.conn = conn
	if !o.noStart {
		go conn.ReadLoop()
	}
	t.Cleanup(func() {
		_ = conn.NetConn().Close()
		if !o.noStart {
			<-c.closed
		}
	})
	return c, nil
}

func mustDial(t testing.TB, addr string, o dialOpts) *client {
	t.Helper()
	if o.origin == "" {
		o.origin = testOrigin
	}
	c, err := dial(t, addr, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func (c *client) send(t testing.TB, frame string) {
	t.Helper()
	if err := c.conn.WriteString(frame); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expect waits for a frame containing want.
func (c *client) expect(t testing.TB, want string) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("no frame containing %q", want)
			return ""
		}
	}
}

// closeCode waits for the connection to close and returns the close code
// the server sent (0 when none: the connection just ended).
func (c *client) closeCode(t testing.TB, within time.Duration) uint16 {
	t.Helper()
	select {
	case err := <-c.closed:
		var ce *gws.CloseError
		if asCloseError(err, &ce) {
			return ce.Code
		}
		return 0
	case <-time.After(within):
		t.Fatalf("connection not closed within %s", within)
		return 0
	}
}

func asCloseError(err error, target **gws.CloseError) bool {
	ce, ok := err.(*gws.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

// rawHandshake performs a WebSocket handshake over a raw TCP connection
// and returns it with the response already read.
func rawHandshake(t testing.TB, addr, origin string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: " + origin + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, br
}

// maskedFrame builds a client frame (clients must mask).
func maskedFrame(opcode byte, payload []byte) []byte {
	var b []byte
	b = append(b, 0x80|opcode)
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func durationSeconds(s int) *durationpb.Duration {
	return durationpb.New(time.Duration(s) * time.Second)
}
