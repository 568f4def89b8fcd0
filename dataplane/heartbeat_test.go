package dataplane

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// pongClient is a small client for holding many connections: it answers
// every ping with its payload (as browsers do) and notes that its
// connection ended. The test helper client buffers messages, which would
// cost tens of MiB over hundreds of connections.
type pongClient struct {
	gws.BuiltinEventHandler
	conn   *gws.Conn
	closed chan struct{}
}

func (c *pongClient) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (c *pongClient) OnClose(*gws.Conn, error) { close(c.closed) }

// dialPongClients opens count connections that answer pings, a few at a
// time, and closes them (waiting for their read loops) when the test ends.
func dialPongClients(t *testing.T, addr string, count int) []*pongClient {
	t.Helper()
	clients := make([]*pongClient, count)
	errs := make(chan error, count)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < count; i = int(next.Add(1) - 1) {
				c := &pongClient{closed: make(chan struct{})}
				h := map[string][]string{"Origin": {testOrigin}}
				conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: "ws://" + addr + "/ws", RequestHeader: h, HandshakeTimeout: 10 * time.Second})
				if err != nil {
					errs <- err
					return
				}
				c.conn = conn
				clients[i] = c
				go conn.ReadLoop()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				_ = c.conn.NetConn().Close()
			}
		}
		for _, c := range clients {
			if c != nil {
				<-c.closed
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	return clients
}

// closedClients counts the clients whose connection has ended.
func closedClients(clients []*pongClient) int {
	n := 0
	for _, c := range clients {
		select {
		case <-c.closed:
			n++
		default:
		}
	}
	return n
}

func (s *sink) countKind(kind wsfleetv1.EventKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		if ev.GetKind() == kind {
			n++
		}
	}
	return n
}

func heartbeatPolicy(interval, timeout time.Duration) *wsfleetv1.Policy {
	p := testPolicy()
	p.Heartbeat.Interval = durationpb.New(interval)
	p.Heartbeat.Timeout = durationpb.New(timeout)
	return p
}

// Issue 7 §1: a shorter heartbeat in a push closed most healthy idle
// clients, judged against the new timeout before they were ever pinged under
// it. Every direction of change must close none of them, and a client that
// stops answering must still go within timeout + interval of its last frame.
func TestHeartbeatChangesCloseNoClientThatAnswersPings(t *testing.T) {
	const healthy = 500
	n := startNode(t, heartbeatPolicy(3*time.Second, 9*time.Second), nil)
	clients := dialPongClients(t, n.addr, healthy)
	// One interval under the first policy: every client has been pinged and
	// has answered, so the time since their last frame is spread over the
	// 3s interval, which is longer than the next policy's timeout.
	time.Sleep(3200 * time.Millisecond)

	rev := int64(1)
	apply := func(t *testing.T, interval, timeout time.Duration) {
		t.Helper()
		rev++
		if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: rev, Policy: heartbeatPolicy(interval, timeout)}); err != nil {
			t.Fatal(err)
		}
	}
	noneClosed := func(t *testing.T) {
		t.Helper()
		if got := n.sink.countKind(wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED); got != 0 {
			t.Fatalf("the node closed %d of %d healthy connections: %v", got, healthy, n.sink.all()[:min(got, 5)])
		}
		if got := closedClients(clients); got != 0 {
			t.Fatalf("%d of %d healthy clients saw their connection closed", got, healthy)
		}
	}

	steps := []struct {
		name              string
		interval, timeout time.Duration
		hold              time.Duration
	}{
		{"a shorter interval and timeout closes no client that answers pings", time.Second, 2 * time.Second, 2200 * time.Millisecond},
		{"a longer interval and timeout closes no client that answers pings", 3 * time.Second, 8 * time.Second, 3200 * time.Millisecond},
		{"a shorter timeout alone closes no client that answers pings", 3 * time.Second, 3500 * time.Millisecond, 3200 * time.Millisecond},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			apply(t, st.interval, st.timeout)
			time.Sleep(st.hold)
			noneClosed(t)
		})
		if !ok {
			return
		}
	}

	t.Run("an idle connection holds a ping timer only while a ping is unanswered", func(t *testing.T) {
		// Interval 3s: pings go out over 3s and are answered within a
		// round trip, so at most moments only a few connections wait for
		// a pong. A timer kept per connection would show on every one.
		deadline := time.Now().Add(10 * time.Second)
		for {
			waiting := 0
			n.sessions.each(func(s *session) {
				if pw := s.ping.Load(); pw != nil && pw != pingQueued && pw != pingEnded {
					waiting++
				}
			})
			if waiting < healthy/10 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d idle connections still hold a ping timer", waiting, healthy)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	// The last change shortens the interval alone (to 1s, timeout 3.5s),
	// and the healthy clients are held through it while a client that
	// stops answering after its last frame goes as heartbeat_timeout within
	// timeout + interval of that frame, and not before a ping went
	// unanswered for the timeout.
	t.Run("a shorter interval alone closes no client that answers pings, and one that stops answering goes on time", func(t *testing.T) {
		const interval, timeout = time.Second, 3500 * time.Millisecond
		apply(t, interval, timeout)
		silent := mustDial(t, n.addr, dialOpts{noPong: true, header: map[string][]string{"X-Trace-Id": {"silent-client"}}})
		last := time.Now()
		silent.send(t, `{"type":"subscribe","channel":"last-words"}`)
		silent.expect(t, `"subscribed"`)
		ev := n.sink.wait(t, timeout+interval+5*time.Second, "connection closed", func(ev *wsfleetv1.ErrorEvent) bool {
			return ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED
		})
		took := time.Since(last)
		if ev.GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT || ev.GetTraceId() != "silent-client" || ev.GetCloseCode() != 1006 {
			t.Fatalf("closed connection: %v", ev)
		}
		// The slack covers a loaded CI machine; the rule is timeout + interval.
		if took < timeout || took > timeout+interval+1500*time.Millisecond {
			t.Fatalf("closed %s after its last frame, want between the timeout (%s) and timeout + interval (%s)", took, timeout, timeout+interval)
		}
		if code := silent.closeCode(t, 5*time.Second); code != 0 {
			t.Fatalf("the silent client got close frame %d; heartbeat_timeout is an abnormal closure (1006) without one", code)
		}
		if got := closedClients(clients); got != 0 {
			t.Fatalf("%d of %d healthy clients saw their connection closed", got, healthy)
		}
		if got := n.sink.countKind(wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED); got != 1 {
			t.Fatalf("%d connections closed, want only the silent one: %v", got, n.sink.all())
		}
	})
}

// Issue 7 §1: gws answers a read-deadline error with close 1000 "i/o
// timeout", so a client closed for heartbeat_timeout was told "normal".
// The class's wire signal is an abnormal closure: no close frame at all.
func TestHeartbeatTimeoutClosesWithoutACloseFrame(t *testing.T) {
	n := startNode(t, testPolicy(), nil) // interval 1s, timeout 2s
	c := mustDial(t, n.addr, dialOpts{noPong: true})
	var err error
	select {
	case err = <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that does not answer pings was not closed")
	}
	if ce, ok := err.(*gws.CloseError); ok {
		t.Fatalf("the client got close frame %d %q, want none (1006 abnormal closure)", ce.Code, ce.Reason)
	}
	ev := n.sink.wait(t, 5*time.Second, "heartbeat_timeout", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT))
	if ev.GetCloseCode() != 1006 {
		t.Fatalf("event %v", ev)
	}
}

// A ping's deadline follows the timeout in force, not the one it was sent
// under: a longer timeout applied while it is unanswered gives the peer all
// of it; a shorter one closes the peer at the wheel's next visit once the
// ping has been unanswered that long.
func TestHeartbeatTimeoutChangedWhileAPingIsUnanswered(t *testing.T) {
	tests := []struct {
		name             string
		before, after    time.Duration // timeouts; the interval is 1s
		earliest, latest time.Duration // after the ping was sent
	}{
		{"a longer timeout extends the wait for the answer", 2 * time.Second, 5 * time.Second, 5 * time.Second, 7 * time.Second},
		{"a shorter timeout closes once the ping is unanswered that long", 9 * time.Second, 2 * time.Second, 2 * time.Second, 4500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, heartbeatPolicy(time.Second, tt.before), nil)
			mustDial(t, n.addr, dialOpts{noPong: true})
			var pw *pingWait
			deadline := time.Now().Add(5 * time.Second)
			for pw == nil {
				n.sessions.each(func(s *session) {
					if p := s.ping.Load(); p != pingQueued {
						pw = p
					}
				})
				if time.Now().After(deadline) {
					t.Fatal("no ping was sent")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: 2, Policy: heartbeatPolicy(time.Second, tt.after)}); err != nil {
				t.Fatal(err)
			}
			n.sink.wait(t, tt.latest+5*time.Second, "heartbeat_timeout", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT))
			took := time.Since(pw.sent)
			if took < tt.earliest || took > tt.latest+time.Second {
				t.Fatalf("closed %s after the ping, want between %s and %s", took, tt.earliest, tt.latest)
			}
		})
	}
}
