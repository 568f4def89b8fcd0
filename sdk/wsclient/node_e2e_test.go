package wsclient_test

// The client against the real wsfleet-node binary.

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/wsclient"
)

// received collects a channel's messages.
type received struct {
	mu   sync.Mutex
	data []string
	got  chan struct{}
}

func newReceived() *received { return &received{got: make(chan struct{}, 64)} }

func (r *received) handler(_ string, data json.RawMessage) {
	r.mu.Lock()
	r.data = append(r.data, string(data))
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
}

func (r *received) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.data {
		if d == s {
			return true
		}
	}
	return false
}

// waitFor waits until data arrived, publishing it through pub meanwhile
// (a publish that reaches the node before the subscription counts for
// nothing, so it is repeated).
func (r *received) waitFor(t *testing.T, pub *wsclient.Client, ch, data string) {
	t.Helper()
	eventually(t, 10*time.Second, "message "+data+" received on "+ch, func() bool {
		if r.has(data) {
			return true
		}
		if err := pub.Publish(ctxFor(t, 5*time.Second), ch, json.RawMessage(data)); err != nil && !errors.Is(err, wsclient.ErrNotConnected) {
			t.Logf("publish: %v", err)
		}
		select {
		case <-r.got:
		case <-time.After(200 * time.Millisecond):
		}
		return r.has(data)
	})
}

func TestAllowedOriginConnectsAndReceives(t *testing.T) {
	n := startNode(t, "n1", "127.0.0.1:0", policy{origins: []string{appOrigin}}.file(t))
	sub, subEv := newClient(t, wsclient.Config{URL: n.URL(), Origin: appOrigin})
	pub, _ := newClient(t, wsclient.Config{URL: n.URL(), Origin: appOrigin})

	ev, _ := subEv.wait(t, 10*time.Second, "connected", 0, state(wsclient.StateConnected))
	if ev.NodeID != "n1" || len(ev.TraceID) != 32 {
		t.Errorf("connected event: node %q, trace id %q; want n1 and 32 hex digits", ev.NodeID, ev.TraceID)
	}
	r := newReceived()
	if err := sub.Subscribe(ctxFor(t, 10*time.Second), "room:1", r.handler); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	eventually(t, 10*time.Second, "publisher connected", func() bool { return pub.State() == wsclient.StateConnected })
	if err := pub.Publish(ctxFor(t, 10*time.Second), "room:1", json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case <-r.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber got nothing")
	}
	if !r.has(`{"n":1}`) {
		t.Fatalf("received %q", r.data)
	}
	var se *wsclient.ServerError
	if err := pub.Publish(ctxFor(t, 10*time.Second), "bad channel", json.RawMessage(`1`)); !errors.As(err, &se) || se.Code != "bad_channel" {
		t.Errorf("publish on a bad channel: %v, want the node's bad_channel error", err)
	}
	if st := sub.Stats(); st.Attempts != 1 || st.Connects != 1 {
		t.Errorf("stats %+v: want one attempt, one connect", st)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if s := sub.State(); s != wsclient.StateClosed {
		t.Errorf("state after Close: %s", s)
	}
}

func TestDisallowedOriginStopsWithTheNodesReason(t *testing.T) {
	want := errclass.Lookup(wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED)
	for _, tt := range []struct {
		name        string
		rejectClose bool
		signal      string
	}{
		{"an HTTP 403 is explained by /ws/explain", false, "HTTP 403"},
		{"reject_with close gives the class in the close code", true, "close 4403"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, "n1", "127.0.0.1:0", policy{origins: []string{appOrigin}, rejectClose: tt.rejectClose}.file(t))
			c, ev := newClient(t, wsclient.Config{URL: n.URL(), Origin: "https://evil.example.com",
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
			select {
			case <-c.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("the client did not stop; events: %s", describe(ev.snapshot()))
			}
			f := c.Failure()
			if f == nil {
				t.Fatalf("no failure; events: %s", describe(ev.snapshot()))
			}
			if f.Class != want.Class || f.Name != "origin_rejected" || f.Retryable || f.WhatToDo != want.Action || f.Message != want.UserMessage {
				t.Errorf("failure %+v; want origin_rejected, not retryable, what to do %q, message %q", f, want.Action, want.UserMessage)
			}
			if f.Signal != tt.signal || len(f.TraceID) != 32 {
				t.Errorf("signal %q, trace id %q; want %q and the attempt's id", f.Signal, f.TraceID, tt.signal)
			}
			last, _ := ev.wait(t, time.Second, "closed", 0, state(wsclient.StateClosed))
			if last.Failure != f || c.State() != wsclient.StateClosed {
				t.Errorf("closed event failure %v, state %s", last.Failure, c.State())
			}
			if st := c.Stats(); st.Attempts != 1 || st.ReportsQueued != 0 {
				t.Errorf("stats %+v: want one attempt and nothing to report (the node saw it)", st)
			}
			// The node saw exactly one attempt: no retry.
			if got := n.metric(t, "wsfleet_node_handshakes_total", `result="origin_rejected"`); got != 1 {
				t.Errorf("the node counted %v origin rejections, want 1", got)
			}
		})
	}
}

func TestRateLimitedAttemptWaitsForRetryAfter(t *testing.T) {
	n := startNode(t, "n1", "127.0.0.1:0", policy{origins: []string{appOrigin}, rate: 1, burst: 1}.file(t))
	first, _ := newClient(t, wsclient.Config{URL: n.URL(), Origin: appOrigin})
	eventually(t, 10*time.Second, "the first client connected", func() bool { return first.State() == wsclient.StateConnected })
	// The first took the only token: the second gets 429 + Retry-After,
	// and would retry within 20ms if it ignored it.
	_, ev := newClient(t, wsclient.Config{URL: n.URL(), Origin: appOrigin,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	fail, i := ev.wait(t, 10*time.Second, "rate limited", 0, func(e wsclient.Event) bool {
		return e.State == wsclient.StateDisconnected
	})
	f := fail.Failure
	if f.Name != "rate_limited" || !f.Retryable || f.RetryAfter < time.Second || fail.Delay < f.RetryAfter {
		t.Fatalf("failure %+v, delay %s: want rate_limited, retryable, retry after >= 1s, delay >= it", f, fail.Delay)
	}
	next, _ := ev.wait(t, 10*time.Second, "the next attempt", i+1, state(wsclient.StateConnecting))
	if gap := next.Time.Sub(fail.Time); gap < f.RetryAfter {
		t.Errorf("next attempt %s after the 429, want >= Retry-After %s", gap, f.RetryAfter)
	}
	ev.wait(t, 10*time.Second, "connected", i+1, state(wsclient.StateConnected))
	if got := n.metric(t, "wsfleet_node_handshakes_total", `result="rate_limited"`); got > 2 {
		t.Errorf("the node refused %v handshakes as rate_limited: the client did not wait", got)
	}
}

// standIn listens where a killed node listened and counts the WebSocket
// handshakes that reach it (not the explain requests), closing each at
// once, as a port with nothing behind it would.
type standIn struct {
	l     net.Listener
	mu    sync.Mutex
	times []time.Time
	wg    sync.WaitGroup
}

func listenStandIn(t *testing.T, addr string) *standIn {
	t.Helper()
	var l net.Listener
	var err error
	eventually(t, 5*time.Second, "the port free again", func() bool {
		l, err = net.Listen("tcp", addr)
		return err == nil
	})
	s := &standIn{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 64)
			k, _ := c.Read(buf)
			if strings.HasPrefix(string(buf[:k]), "GET /ws?") {
				s.mu.Lock()
				s.times = append(s.times, time.Now())
				s.mu.Unlock()
			}
			_ = c.Close()
		}
	}()
	return s
}

func (s *standIn) close() []time.Time {
	_ = s.l.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.times
}

func TestNodeKilledAttemptsFollowTheBackoffAndResubscribeAfterRestart(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, 800 * time.Millisecond
	pol := policy{origins: []string{appOrigin}}.file(t)
	n := startNode(t, "n1", "127.0.0.1:0", pol)
	addr := n.ws
	sub, ev := newClient(t, wsclient.Config{URL: n.URL(), Origin: appOrigin, MinBackoff: minB, MaxBackoff: maxB})
	r := newReceived()
	if err := sub.Subscribe(ctxFor(t, 10*time.Second), "room:9", r.handler); err != nil {
		t.Fatal(err)
	}

	n.kill()
	s := listenStandIn(t, addr)
	_, lost := ev.wait(t, 10*time.Second, "disconnected", 0, state(wsclient.StateDisconnected))
	if f := ev.snapshot()[lost].Failure; f.Name != "client_connection_lost" {
		t.Errorf("the node's death reads as %s (%s), want client_connection_lost", f.Name, f.Detail)
	}
	const window = 4 * time.Second
	time.Sleep(window)
	times := s.close()
	// Full jitter: attempt k waits at most min(max, min·2^k) after the
	// previous one failed (plus the failed explain request and
	// scheduling, generously 500ms); a client without backoff would make
	// hundreds of attempts in the window, one with a backoff that never
	// grows (<= 100ms) about sixty.
	if len(times) < 3 || len(times) > 25 {
		t.Errorf("%d handshakes reached the port in %s, want 3..25 (min %s, max %s)", len(times), window, minB, maxB)
	}
	for k := 1; k < len(times); k++ {
		if gap, ceiling := times[k].Sub(times[k-1]), min(maxB, minB<<min(k, 10)); gap > ceiling+500*time.Millisecond {
			t.Errorf("gap %d is %s, above its ceiling %s", k, gap, ceiling)
		}
	}
	for _, e := range ev.snapshot() {
		if e.State == wsclient.StateDisconnected && e.Delay > maxB {
			t.Errorf("a wait of %s, above MaxBackoff %s", e.Delay, maxB)
		}
	}
	t.Logf("%d handshakes in %s", len(times), window)

	// The node comes back on the same port: the client reconnects and
	// subscribes again, unasked.
	n2 := startNode(t, "n2", addr, pol)
	ev.wait(t, 10*time.Second, "connected to the new node", lost, func(e wsclient.Event) bool {
		return e.State == wsclient.StateConnected && e.NodeID == "n2"
	})
	pub, _ := newClient(t, wsclient.Config{URL: n2.URL(), Origin: appOrigin})
	r.waitFor(t, pub, "room:9", `"after restart"`)
}

func TestDeadPortFailureIsReportedOnceANodeIsUp(t *testing.T) {
	cp := startControl(t)
	if _, err := cp.wsctl(t, policy{origins: []string{appOrigin}, allowMissing: true}.yaml(), "policy", "apply", "-f", "-", "-m", "allow the app"); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	c, ev := newClient(t, wsclient.Config{URL: "ws://" + addr + "/ws", Origin: appOrigin,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	fail, _ := ev.wait(t, 10*time.Second, "unreachable", 0, state(wsclient.StateDisconnected))
	f := fail.Failure
	if f.Name != "client_unreachable" || !f.Retryable || !strings.Contains(f.Detail, "connection refused") {
		t.Fatalf("failure %+v: want a retryable client_unreachable saying the connection was refused", f)
	}
	if st := c.Stats(); st.ReportsQueued == 0 {
		t.Fatalf("stats %+v: nothing queued", st)
	}

	startNode(t, "edge-1", addr, "", "--control", cp.addr, "--cache-file", t.TempDir()+"/cache.json")
	ev.wait(t, 20*time.Second, "connected", 0, state(wsclient.StateConnected))
	eventually(t, 10*time.Second, "reports sent", func() bool { return c.Stats().ReportsSent > 0 })
	var out string
	eventually(t, 10*time.Second, "wsctl trace shows the client's report", func() bool {
		var err error
		out, err = cp.wsctl(t, "", "trace", f.TraceID)
		return err == nil && strings.Contains(out, "client_unreachable")
	})
	for _, want := range []string{"edge-1", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("wsctl trace %s lacks %q:\n%s", f.TraceID, want, out)
		}
	}
}

// countingProxy forwards to target and counts the WebSocket connections
// open through it at once (explain and report requests are not sockets),
// cutting each after cut so that the client keeps reconnecting.
type countingProxy struct {
	l                  net.Listener
	target             string
	cut                time.Duration
	open, most, served atomic.Int64
	wg                 sync.WaitGroup
}

func startCountingProxy(t *testing.T, target string, cut time.Duration) *countingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{l: l, target: target, cut: cut}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *countingProxy) close() {
	_ = p.l.Close()
	p.wg.Wait()
}

func (p *countingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *countingProxy) forward(c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 4096)
	k, err := c.Read(head)
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	if strings.HasPrefix(string(head[:k]), "GET /ws?") {
		now := p.open.Add(1)
		defer p.open.Add(-1)
		p.served.Add(1)
		for {
			most := p.most.Load()
			if now <= most || p.most.CompareAndSwap(most, now) {
				break
			}
		}
		t := time.AfterFunc(p.cut, func() { _ = c.Close(); _ = up.Close() })
		defer t.Stop()
	}
	if _, err := up.Write(head[:k]); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := up.Read(buf)
			if k > 0 {
				if _, werr := c.Write(buf[:k]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = c.Close()
	}()
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		if k > 0 {
			if _, werr := up.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = up.Close()
	<-done
}

func TestOneSocketAtATime(t *testing.T) {
	n := startNode(t, "n1", "127.0.0.1:0", policy{origins: []string{appOrigin}}.file(t))
	p := startCountingProxy(t, n.ws, 150*time.Millisecond)
	c, ev := newClient(t, wsclient.Config{URL: "ws://" + p.l.Addr().String() + "/ws", Origin: appOrigin,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	r := newReceived()
	if err := c.Subscribe(ctxFor(t, 10*time.Second), "room", r.handler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "ten connections", func() bool { return c.Stats().Connects >= 10 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if most := p.most.Load(); most != 1 {
		t.Errorf("%d sockets open at once through the proxy, want 1", most)
	}
	t.Logf("%d sockets one after the other; %d events", p.served.Load(), len(ev.snapshot()))
}
