package dataplane

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// What a runtime change of each policy field does to connections already
// open (DESIGN "Invariants of runtime change": a change never closes a
// connection that behaves under the new policy). The heartbeat has its own
// tests in heartbeat_test.go. Each case tightens one field with live
// connections and checks the documented outcome; the table in the README
// ("Runtime policy changes") says the same.

// alive proves that c is open and served: a subscribe is answered.
func alive(t *testing.T, c *client, channel string) {
	t.Helper()
	c.send(t, `{"type":"subscribe","channel":"`+channel+`"}`)
	c.expect(t, `{"type":"subscribed","channel":"`+channel+`"}`)
}

// applyPolicy applies p as the node's next revision.
func applyPolicy(t *testing.T, n *testNode, p *wsfleetv1.Policy) {
	t.Helper()
	rev := n.Revision().GetRevision() + 1
	if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: rev, Policy: p}); err != nil {
		t.Fatal(err)
	}
}

// handshakeStatuses makes count handshakes in a row and returns their
// statuses (the 101s are closed at once).
func handshakeStatuses(t *testing.T, addr, origin string, count int) map[int]int {
	t.Helper()
	got := map[int]int{}
	for range count {
		got[rawGet(t, addr, origin, nil).StatusCode]++
	}
	return got
}

func closedConnections(n *testNode) int {
	return n.sink.countKind(wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED)
}

func TestOriginsTightenedKeepOpenConnections(t *testing.T) {
	t.Run("an origin removed from the allowlist keeps its open connections and refuses new handshakes with 403", func(t *testing.T) {
		n := startNode(t, testPolicy(), nil)
		c := mustDial(t, n.addr, dialOpts{origin: testOrigin})
		p := testPolicy()
		p.Origins.Allow = []string{"https://other.example.com"}
		applyPolicy(t, n, p)
		if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusForbidden {
			t.Fatalf("new handshake from the removed origin: status %d, want 403", s)
		}
		alive(t, c, "still-here")
		if got := closedConnections(n); got != 0 {
			t.Fatalf("%d connections closed: %v", got, n.sink.all())
		}
	})

	t.Run("allow_missing turned off keeps open connections without an Origin and refuses new ones with 403", func(t *testing.T) {
		p := testPolicy()
		p.Origins.AllowMissing = true
		n := startNode(t, p, nil)
		c, err := dial(t, n.addr, dialOpts{}) // no Origin header
		if err != nil {
			t.Fatal(err)
		}
		p = testPolicy()
		p.Origins.AllowMissing = false
		applyPolicy(t, n, p)
		if s := rawGet(t, n.addr, "", nil).StatusCode; s != http.StatusForbidden {
			t.Fatalf("new handshake without Origin: status %d, want 403", s)
		}
		alive(t, c, "no-origin")
		if got := closedConnections(n); got != 0 {
			t.Fatalf("%d connections closed: %v", got, n.sink.all())
		}
	})
}

func TestConnectionCapsLoweredCloseNobody(t *testing.T) {
	tests := []struct {
		name  string
		lower func(*wsfleetv1.LimitsPolicy)
	}{
		{"max_connections lowered below the open count closes none and refuses new handshakes with 503 until enough close",
			func(l *wsfleetv1.LimitsPolicy) { l.MaxConnections = 3 }},
		{"max_connections_per_ip lowered below a client's open count closes none and refuses its new handshakes with 503 until enough close",
			func(l *wsfleetv1.LimitsPolicy) { l.MaxConnectionsPerIp = 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, testPolicy(), nil)
			var open []*client
			for range 5 {
				open = append(open, mustDial(t, n.addr, dialOpts{}))
			}
			p := testPolicy()
			tt.lower(p.Limits)
			applyPolicy(t, n, p)
			if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusServiceUnavailable {
				t.Fatalf("handshake over the lowered cap: status %d, want 503", s)
			}
			n.sink.wait(t, 2*time.Second, "capacity", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY))
			for i, c := range open {
				alive(t, c, "over-cap-"+strconv.Itoa(i))
			}
			if got := closedConnections(n); got != 0 {
				t.Fatalf("%d connections closed: %v", got, n.sink.all())
			}

			// Below the cap again, handshakes are admitted up to it.
			for _, c := range open[:3] {
				_ = c.conn.WriteClose(1000, nil)
				c.closeCode(t, 5*time.Second)
			}
			waitFor(t, 5*time.Second, "three connections to end", func() bool { return n.Active() == 2 })
			mustDial(t, n.addr, dialOpts{})
			if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusServiceUnavailable {
				t.Fatalf("handshake at the cap: status %d, want 503", s)
			}
		})
	}
}

func TestHandshakeRateLowered(t *testing.T) {
	t.Run("a lower rate and burst leave open connections alone and apply to the next handshakes", func(t *testing.T) {
		n := startNode(t, testPolicy(), nil) // 10,000/s, burst 10,000
		c := mustDial(t, n.addr, dialOpts{})
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 2
		applyPolicy(t, n, p)
		// The bucket keeps its tokens, but never more than the new burst.
		got := handshakeStatuses(t, n.addr, testOrigin, 8)
		if got[http.StatusSwitchingProtocols] > 4 || got[http.StatusTooManyRequests] == 0 {
			t.Fatalf("statuses %v: want at most the burst of 2 (and what 1/s adds meanwhile) admitted, the rest 429", got)
		}
		alive(t, c, "after-rate-change")
	})

	t.Run("a change that keeps the rate and burst does not refill the bucket", func(t *testing.T) {
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 10
		n := startNode(t, p, nil)
		if got := handshakeStatuses(t, n.addr, testOrigin, 12); got[http.StatusTooManyRequests] == 0 {
			t.Fatalf("statuses %v: the bucket was not emptied", got)
		}
		p = testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 10
		p.Limits.MaxConnections = 5000 // an unrelated change
		applyPolicy(t, n, p)
		// A refilled bucket would admit all ten.
		if got := handshakeStatuses(t, n.addr, testOrigin, 10); got[http.StatusSwitchingProtocols] > 4 {
			t.Fatalf("statuses %v: the bucket was refilled by a change that kept rate and burst", got)
		}
	})
}

func TestMessageRateLowered(t *testing.T) {
	const window = 3 * time.Second
	n := startNode(t, testPolicy(), func(c *Config) { c.AbuseWindow = window }) // 10,000/s
	brief := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"brief"}}})
	flood := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"flood"}}})
	p := testPolicy()
	p.Limits.MessagesPerSecond = 20
	p.Limits.MessageBurst = 5
	applyPolicy(t, n, p)

	t.Run("a client over the lower rate for less than the abuse window is paced, not closed", func(t *testing.T) {
		// 20 messages at twice the new rate: about a second over it.
		for range 20 {
			brief.send(t, `{"type":"publish","channel":"chatty","data":0}`)
			time.Sleep(25 * time.Millisecond)
		}
		alive(t, brief, "calm-again")
		if got := closedConnections(n); got != 0 {
			t.Fatalf("%d connections closed: %v", got, n.sink.all())
		}
	})

	t.Run("a client that stays over the lower rate is closed 1008 after the abuse window", func(t *testing.T) {
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Writes block once the paced node stops reading; the close
			// ends them. Bounded in count and time all the same.
			for i := 0; i < 100_000 && time.Since(start) < 20*time.Second; i++ {
				if err := flood.conn.WriteString(`{"type":"publish","channel":"spam","data":0}`); err != nil {
					return
				}
			}
		}()
		ev := n.sink.wait(t, window+10*time.Second, "policy_violation", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION))
		took := time.Since(start)
		<-done
		if ev.GetTraceId() != "flood" || ev.GetCloseCode() != 1008 || !strings.Contains(ev.GetError(), "messages_per_second 20") {
			t.Fatalf("event %v", ev)
		}
		if took < window {
			t.Fatalf("closed %s after it started flooding, before the %s abuse window", took, window)
		}
		// The client's side is not checked here: the node closes a socket
		// whose receive buffer still holds the flood, so TCP answers with a
		// reset that can overtake the 1008 frame.
		alive(t, brief, "unaffected")
	})
}

func TestMaxMessageBytesLowered(t *testing.T) {
	n := startNode(t, testPolicy(), nil) // 64 KiB
	small := mustDial(t, n.addr, dialOpts{})
	big := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"big"}}})
	p := testPolicy()
	p.Limits.MaxMessageBytes = 1024
	applyPolicy(t, n, p)

	t.Run("an open connection that sends frames within the lower limit stays", func(t *testing.T) {
		small.send(t, `{"type":"publish","channel":"a","data":"`+strings.Repeat("x", 900)+`"}`)
		alive(t, small, "within-limit")
		if got := closedConnections(n); got != 0 {
			t.Fatalf("%d connections closed: %v", got, n.sink.all())
		}
	})

	t.Run("an open connection that then sends a larger frame is closed with 1009", func(t *testing.T) {
		big.send(t, `{"type":"publish","channel":"a","data":"`+strings.Repeat("x", 2000)+`"}`)
		if code := big.closeCode(t, 5*time.Second); code != 1009 {
			t.Fatalf("close code %d, want 1009", code)
		}
		ev := n.sink.wait(t, 2*time.Second, "message_too_big", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG))
		if ev.GetTraceId() != "big" || ev.GetCloseCode() != 1009 {
			t.Fatalf("event %v", ev)
		}
		alive(t, small, "still-within-limit")
	})
}

func TestBreakerTightenedKeepsOpenConnections(t *testing.T) {
	var calls, failing atomic.Int32
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		if failing.Load() == 1 {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer auth.Close()
	n := startNode(t, testPolicy(), func(c *Config) { c.AuthURL = auth.URL }) // min_samples 20
	var open []*client
	for range 3 {
		open = append(open, mustDial(t, n.addr, dialOpts{}))
	}

	p := testPolicy()
	p.Breaker.MinSamples = 2
	p.Breaker.FailureRatio = 0.5
	p.Breaker.OpenDuration = durationpb.New(30 * time.Second)
	applyPolicy(t, n, p)
	failing.Store(1)
	// The new thresholds count from zero: two failures open the breaker.
	for range 2 {
		if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusServiceUnavailable {
			t.Fatalf("failing endpoint: status %d, want 503", s)
		}
	}
	before := calls.Load()
	if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusServiceUnavailable || calls.Load() != before {
		t.Fatalf("status %d with the endpoint called %d more times: want 503 breaker_open without a call", s, calls.Load()-before)
	}
	for i, c := range open {
		alive(t, c, "breaker-"+strconv.Itoa(i))
	}
	if got := closedConnections(n); got != 0 {
		t.Fatalf("%d connections closed: %v", got, n.sink.all())
	}
}

// A message limiter is rebuilt only when the rate or burst changes: any
// other change keeps its tokens and the abuse window's start (STYLE:
// "reload per field, keep state where it still holds").
func TestPacerKeptAcrossAChangeThatKeepsRateAndBurst(t *testing.T) {
	s := &session{node: &Node{cfg: Config{AbuseWindow: time.Minute}}}
	snap := func(rate, burst int32, maxBytes int) *snapshot {
		return &snapshot{msgRate: rate, msgBurst: burst, maxMessageBytes: maxBytes, throttleThreshold: time.Second / time.Duration(rate) / 2}
	}
	// 2/s: the second message within a second waits about 500ms, over the
	// 250ms threshold, so the pace below finds the client throttled and
	// leaves throttledSince alone when the limiter is kept.
	s.pace(snap(2, 1, 1024), time.Now())
	first := s.pacer
	first.throttledSince = time.Now().Add(-time.Second)
	tests := []struct {
		name string
		next *snapshot
		kept bool
	}{
		{"a change of other fields keeps the limiter and its abuse window", snap(2, 1, 4096), true},
		{"a new rate gets a new limiter and a new abuse window", snap(50, 2, 4096), false},
		{"a new burst gets a new limiter and a new abuse window", snap(50, 3, 4096), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.pacer
			s.pace(tt.next, time.Now())
			if kept := s.pacer == before; kept != tt.kept {
				t.Fatalf("limiter kept = %v, want %v", kept, tt.kept)
			}
			if tt.kept && s.pacer.throttledSince != first.throttledSince {
				t.Fatal("the abuse window restarted")
			}
		})
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
