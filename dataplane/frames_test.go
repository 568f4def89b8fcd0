package dataplane

import (
	"encoding/json"
	"net/http"
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
