package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// welcomeFrame is the node's first frame as a client decodes it.
type welcomeFrame struct {
	Type                string `json:"type"`
	TraceID             string `json:"trace_id"`
	NodeID              string `json:"node_id"`
	HeartbeatIntervalMS int64  `json:"heartbeat_interval_ms"`
	HeartbeatTimeoutMS  int64  `json:"heartbeat_timeout_ms"`
}

// firstFrame waits for the connection's first text frame and decodes it as
// a welcome.
func (c *client) firstFrame(t testing.TB) (welcomeFrame, string) {
	t.Helper()
	select {
	case m := <-c.msgs:
		var w welcomeFrame
		if err := json.Unmarshal([]byte(m), &w); err != nil {
			t.Fatalf("first frame %s: %v", m, err)
		}
		return w, m
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5s of the upgrade")
		return welcomeFrame{}, ""
	}
}

func TestTheFirstFrameIsTheWelcome(t *testing.T) {
	n := startNode(t, testPolicy(), nil) // interval 1s, timeout 2s

	t.Run("the welcome carries the trace id, node id and heartbeat", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{query: "trace_id=welcome-trace-1"})
		w, raw := c.firstFrame(t)
		want := welcomeFrame{Type: "welcome", TraceID: "welcome-trace-1", NodeID: "node-test", HeartbeatIntervalMS: 1000, HeartbeatTimeoutMS: 2000}
		if w != want {
			t.Fatalf("welcome %s, want %+v", raw, want)
		}
		if got := c.resp.Header.Get("X-Trace-ID"); got != w.TraceID {
			t.Fatalf("welcome trace id %q, X-Trace-ID %q", w.TraceID, got)
		}
	})

	t.Run("a generated trace id is the one in the welcome", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{})
		w, _ := c.firstFrame(t)
		if got := c.resp.Header.Get("X-Trace-ID"); len(got) != 32 || w.TraceID != got {
			t.Fatalf("welcome trace id %q, X-Trace-ID %q", w.TraceID, got)
		}
	})

	t.Run("the welcome comes before the answer to the first frame", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"welcome-order"}}})
		c.send(t, `{"type":"subscribe","channel":"w"}`)
		if w, raw := c.firstFrame(t); w.Type != "welcome" {
			t.Fatalf("first frame %s", raw)
		}
		c.expect(t, `{"type":"subscribed","channel":"w"}`)
	})
}

// The welcome tells each connection the heartbeat in force when it opened:
// after a policy change, the next connection is told the new one.
func TestTheWelcomeFollowsARuntimeHeartbeatChange(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	before := mustDial(t, n.addr, dialOpts{})
	if w, raw := before.firstFrame(t); w.HeartbeatIntervalMS != 1000 || w.HeartbeatTimeoutMS != 2000 {
		t.Fatalf("welcome before the change: %s", raw)
	}

	p := testPolicy()
	p.Heartbeat.Interval = durationSeconds(7)
	p.Heartbeat.Timeout = durationSeconds(11)
	if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: 2, Policy: p}); err != nil {
		t.Fatal(err)
	}
	after := mustDial(t, n.addr, dialOpts{})
	if w, raw := after.firstFrame(t); w.HeartbeatIntervalMS != 7000 || w.HeartbeatTimeoutMS != 11000 || w.NodeID != "node-test" {
		t.Fatalf("welcome after the change: %s, want interval 7000 and timeout 11000", raw)
	}
	// The connection opened before is not sent a second welcome.
	before.send(t, `{"type":"subscribe","channel":"w"}`)
	if m := before.expect(t, `"type":"`); m != `{"type":"subscribed","channel":"w"}` {
		t.Fatalf("old connection got %s after the change, want only its ack", m)
	}
}

// next waits for the connection's next text frame.
func (c *client) next(t testing.TB) string {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5s")
		return ""
	}
}

// Every request frame may carry an id; the frame that answers it echoes
// the id, and carries none when the request had none. Each step sends one
// frame and reads exactly the frames that answer it, in order, so a frame
// too many (a "published" for a publish without id) shows up as the wrong
// answer to the next step.
func TestRequestIDsAreEchoed(t *testing.T) {
	forbidden := errors.New("not on this channel")
	n := startNode(t, testPolicy(), func(c *Config) {
		c.MaxSubscriptions = 2
		c.Hooks.OnPublish = func(_ context.Context, _ ConnInfo, ch string, _ json.RawMessage) error {
			if ch == "closed" {
				return forbidden
			}
			return nil
		}
	})
	c := mustDial(t, n.addr, dialOpts{})
	c.firstFrame(t)
	steps := []struct {
		name string
		send string
		want []string
	}{
		{"a subscribe with an id is acknowledged with it",
			`{"type":"subscribe","channel":"a","id":"1"}`, []string{`{"type":"subscribed","channel":"a","id":"1"}`}},
		{"a subscribe without an id is acknowledged without one",
			`{"type":"subscribe","channel":"b"}`, []string{`{"type":"subscribed","channel":"b"}`}},
		{"a repeated subscribe is acknowledged with its own id",
			`{"type":"subscribe","channel":"a","id":"1b"}`, []string{`{"type":"subscribed","channel":"a","id":"1b"}`}},
		{"a publish with an id gets the message, then published with the id",
			`{"type":"publish","channel":"a","data":{"n":1},"id":"3"}`,
			[]string{`{"type":"message","channel":"a","data":{"n":1}}`, `{"type":"published","channel":"a","id":"3"}`}},
		{"a publish without an id gets no published",
			`{"type":"publish","channel":"a","data":{"n":2}}`, []string{`{"type":"message","channel":"a","data":{"n":2}}`}},
		{"a publish with an id to a channel nobody follows is acknowledged",
			`{"type":"publish","channel":"nobody","data":null,"id":"x:y.z_-9"}`, []string{`{"type":"published","channel":"nobody","id":"x:y.z_-9"}`}},
		{"a ping without an id gets a pong without one",
			`{"type":"ping"}`, []string{`{"type":"pong"}`}},
		{"a ping with an id gets a pong with it",
			`{"type":"ping","id":"4"}`, []string{`{"type":"pong","id":"4"}`}},
		{"an unsubscribe with an id is acknowledged with it",
			`{"type":"unsubscribe","channel":"b","id":"2"}`, []string{`{"type":"unsubscribed","channel":"b","id":"2"}`}},
		{"a frame the decoder refuses is answered with its id",
			`{"type":"subscribe","channel":"a b","id":"5"}`,
			[]string{`{"type":"error","code":"bad_channel","message":"channel has ' ' at byte 1; allowed are A-Z a-z 0-9 and _ . : @ / -","id":"5"}`}},
		{"an unknown type is answered with the id",
			`{"type":"shout","id":"6"}`,
			[]string{`{"type":"error","code":"unknown_type","message":"unknown type \"shout\"; want subscribe, unsubscribe, publish or ping","id":"6"}`}},
		{"a publish the hook refuses is answered with its id",
			`{"type":"publish","channel":"closed","data":1,"id":"7"}`,
			[]string{`{"type":"error","code":"forbidden","message":"not on this channel","id":"7"}`}},
		{"a subscribe up to the limit is acknowledged with its id",
			`{"type":"subscribe","channel":"c","id":"8"}`, []string{`{"type":"subscribed","channel":"c","id":"8"}`}},
		{"a subscribe over the limit is refused with its id",
			`{"type":"subscribe","channel":"d","id":"9"}`,
			[]string{`{"type":"error","code":"too_many_subscriptions","message":"at most 2 channels per connection","id":"9"}`}},
		{"a numeric id is a bad id, answered without an id",
			`{"type":"subscribe","channel":"a","id":10}`,
			[]string{`{"type":"error","code":"bad_id","message":"\"id\" must be a string"}`}},
		{"an id over 64 bytes is a bad id",
			`{"type":"ping","id":"` + strings.Repeat("x", 65) + `"}`,
			[]string{`{"type":"error","code":"bad_id","message":"id is 65 bytes long; at most 64 allowed"}`}},
		{"an id with a character outside the set is a bad id",
			`{"type":"publish","channel":"a","data":1,"id":"a/b"}`,
			[]string{`{"type":"error","code":"bad_id","message":"id has '/' at byte 1; allowed are A-Z a-z 0-9 and . _ : -"}`}},
		{"the connection stays open after a bad id",
			`{"type":"ping","id":"11"}`, []string{`{"type":"pong","id":"11"}`}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c.send(t, st.send)
			for _, want := range st.want {
				if got := c.next(t); got != want {
					t.Fatalf("sent %s\ngot  %s\nwant %s", st.send, got, want)
				}
			}
		})
	}
}

// The pong goes through the connection's queue like every other frame:
// interleaved with publishes the client receives itself, each pong comes
// right after the messages of the publishes sent before its ping.
func TestPongsKeepTheirPlaceAmongTheConnectionsFrames(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	c := mustDial(t, n.addr, dialOpts{})
	c.firstFrame(t)
	c.send(t, `{"type":"subscribe","channel":"order"}`)
	if got := c.next(t); got != `{"type":"subscribed","channel":"order"}` {
		t.Fatalf("got %s", got)
	}
	const rounds = 200
	for i := range rounds {
		c.send(t, `{"type":"publish","channel":"order","data":`+strconv.Itoa(i)+`}`)
		c.send(t, `{"type":"ping","id":"p`+strconv.Itoa(i)+`"}`)
	}
	for i := range rounds {
		if got, want := c.next(t), `{"type":"message","channel":"order","data":`+strconv.Itoa(i)+`}`; got != want {
			t.Fatalf("frame %d: got %s, want %s", 2*i, got, want)
		}
		if got, want := c.next(t), `{"type":"pong","id":"p`+strconv.Itoa(i)+`"}`; got != want {
			t.Fatalf("frame %d: got %s, want %s", 2*i+1, got, want)
		}
	}
}

// A ping is a message like any other for the message-rate limit: a client
// that floods pings is paced and, kept over the rate, closed 1008.
func TestPingsCountAgainstTheMessageRate(t *testing.T) {
	p := testPolicy()
	p.Limits.MessagesPerSecond = 20
	p.Limits.MessageBurst = 5
	n := startNode(t, p, func(c *Config) { c.AbuseWindow = time.Second })
	c := mustDial(t, n.addr, dialOpts{})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && n.sink.count(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION) == 0 {
		if err := c.conn.WriteString(`{"type":"ping"}`); err != nil {
			break
		}
	}
	ev := n.sink.wait(t, 5*time.Second, "policy_violation", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION))
	if ev.GetCloseCode() != 1008 || !strings.Contains(ev.GetError(), "messages_per_second 20") || ev.GetMessagesIn() == 0 {
		t.Fatalf("event %v", ev)
	}
}
