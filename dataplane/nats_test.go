package dataplane

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/internal/natstest"
)

// startNATSNode runs a node whose broker is the NATS server at url, with
// fast reconnects and stale-connection detection.
func startNATSNode(t testing.TB, url, id string, p *wsfleetv1.Policy) *testNode {
	t.Helper()
	return startNode(t, p, func(c *Config) {
		c.NodeID = id
		c.NATS.URLs = url
		c.NATS.ReconnectWait = 50 * time.Millisecond
		c.NATS.PingInterval = 200 * time.Millisecond
	})
}

// natsSubs is how many subscriptions the NATS server holds for node id.
func natsSubs(t *testing.T, srv *natstest.Server, id string) int {
	t.Helper()
	n, ok := srv.Subscriptions("wsfleet-node " + id)
	if !ok {
		t.Fatalf("node %s has no connection on the NATS server", id)
	}
	return n
}

// subscribed dials node n and subscribes to channel.
func subscribed(t *testing.T, n *testNode, channel string) *client {
	t.Helper()
	c := mustDial(t, n.addr, dialOpts{})
	c.send(t, `{"type":"subscribe","channel":"`+channel+`"}`)
	c.expect(t, `{"type":"subscribed","channel":"`+channel+`"}`)
	return c
}

// received counts the frames the client got, until one containing fence.
func received(t *testing.T, c *client, fence, want string) int {
	t.Helper()
	n := 0
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if strings.Contains(m, want) {
				n++
			}
			if strings.Contains(m, fence) {
				return n
			}
		case <-deadline:
			t.Fatalf("no frame containing %q within 10s", fence)
		}
	}
}

func TestAPublishOnOneNodeReachesEverySubscriberOfThePoolOnce(t *testing.T) {
	srv := natstest.Start(t)
	n1 := startNATSNode(t, srv.URL(), "n1", testPolicy())
	n2 := startNATSNode(t, srv.URL(), "n2", testPolicy())
	local := subscribed(t, n1, "room:7")
	remote := subscribed(t, n2, "room:7")
	publisher := mustDial(t, n1.addr, dialOpts{})
	other := mustDial(t, n2.addr, dialOpts{})

	publisher.send(t, `{"type":"publish","channel":"room:7","data":{"text":"hi"}}`)
	want := `{"type":"message","channel":"room:7","data":{"text":"hi"}}`
	remote.expect(t, want)
	// Node 2 has the message, so NATS has queued it for node 1 too: a fence
	// published from node 2 now reaches node 1 after every copy of it.
	other.send(t, `{"type":"publish","channel":"room:7","data":"fence"}`)
	if got := received(t, local, `"fence"`, want); got != 1 {
		t.Errorf("a subscriber on the publishing node got the message %d times, want once (through NATS, not also directly)", got)
	}
	if got := received(t, remote, `"fence"`, want); got != 0 {
		t.Errorf("a subscriber on the other node got the message %d more times, want once in all", got)
	}
	eventually(t, 10*time.Second, "each node counts its publish as ok", func() bool {
		return counterValue(t, n1.cfg.Registry, "wsfleet_node_publishes_total", "result", "ok") == 1 &&
			counterValue(t, n2.cfg.Registry, "wsfleet_node_publishes_total", "result", "ok") == 1
	})
}

func TestANodeHoldsOneNATSSubscriptionPerChannel(t *testing.T) {
	srv := natstest.Start(t)
	n1 := startNATSNode(t, srv.URL(), "n1", testPolicy())
	var onC []*client
	for range 3 {
		onC = append(onC, subscribed(t, n1, "c"))
	}
	onD := subscribed(t, n1, "d")
	if got := natsSubs(t, srv, "n1"); got != 2 {
		t.Fatalf("NATS holds %d subscriptions for 3 clients on c and 1 on d; want 2", got)
	}

	// Two of c's three leave, one by unsubscribing, one by disconnecting.
	onC[0].send(t, `{"type":"unsubscribe","channel":"c"}`)
	onC[0].expect(t, `"unsubscribed"`)
	_ = onC[1].conn.WriteClose(1000, nil)
	eventually(t, 10*time.Second, "the closed connection is gone", func() bool { return n1.Active() == 3 })
	if got := natsSubs(t, srv, "n1"); got != 2 {
		t.Fatalf("NATS holds %d subscriptions while c still has a subscriber; want 2", got)
	}
	// The last one leaving unsubscribes the node.
	onC[2].send(t, `{"type":"unsubscribe","channel":"c"}`)
	onC[2].expect(t, `"unsubscribed"`)
	eventually(t, 10*time.Second, "NATS drops c with its last subscriber", func() bool { return natsSubs(t, srv, "n1") == 1 })
	_ = onD.conn.WriteClose(1000, nil)
	eventually(t, 10*time.Second, "NATS drops d when its subscriber disconnects", func() bool { return natsSubs(t, srv, "n1") == 0 })
}

// A policy whose breaker opens after 3 failed publishes and lets a probe
// through after 500ms.
func natsBreakerPolicy() *wsfleetv1.Policy {
	p := testPolicy()
	p.Breaker = &wsfleetv1.BreakerPolicy{
		FailureRatio:   0.5,
		MinSamples:     3,
		Window:         durationpb.New(10 * time.Second),
		OpenDuration:   durationpb.New(500 * time.Millisecond),
		HalfOpenProbes: 1,
	}
	return p
}

// errorFrame is the start of the frame a refused publish gets.
const errorFrame = `{"type":"error","code":"unavailable","message":"publish not delivered to anyone: `

func TestWhileNATSIsDownPublishesAreRefusedAndTheNodeServesOn(t *testing.T) {
	srv := natstest.Start(t)
	n1 := startNATSNode(t, srv.URL(), "n1", natsBreakerPolicy())
	n2 := startNATSNode(t, srv.URL(), "n2", natsBreakerPolicy())
	local := subscribed(t, n1, "live")
	remote := subscribed(t, n2, "live")
	publisher := mustDial(t, n1.addr, dialOpts{})
	publisher.send(t, `{"type":"publish","channel":"live","data":"before"}`)
	remote.expect(t, `"before"`)

	srv.Stop()
	eventually(t, 10*time.Second, "node 1 notices NATS is gone", func() bool {
		return gaugeValue(t, n1.cfg.Registry, "wsfleet_node_nats_connected") == 0
	})
	// Refused at once with the reason; once failures are at least half of
	// 3 samples the breaker opens and refuses without trying.
	opened := false
	for i := 0; i < 10 && !opened; i++ {
		publisher.send(t, `{"type":"publish","channel":"live","data":"during"}`)
		m := publisher.expect(t, `"type":"error"`)
		if !strings.HasPrefix(m, errorFrame) {
			t.Fatalf("publish %d while NATS is down got %s; want %s…", i, m, errorFrame)
		}
		opened = strings.Contains(m, "breaker open")
	}
	if !opened {
		t.Fatal("10 publishes while NATS is down did not open the breaker")
	}
	if got := counterValue(t, n1.cfg.Registry, "wsfleet_node_publishes_total", "reason", "not_connected"); got < 1 {
		t.Errorf("publishes refused as not_connected = %v, want at least 1", got)
	}
	if got := counterValue(t, n1.cfg.Registry, "wsfleet_node_publishes_total", "reason", "breaker_open"); got != 1 {
		t.Errorf("publishes refused by the open breaker = %v, want 1", got)
	}
	if got := gaugeValue(t, n1.cfg.Registry, "wsfleet_node_broker_breaker_state"); got != float64(gobreaker.StateOpen) {
		t.Errorf("wsfleet_node_broker_breaker_state = %v, want open (2)", got)
	}
	// The publishing node's own subscriber got none of them either: what
	// the rest of the pool cannot see, nobody sees. (A delivery would be
	// queued before the probe's answer.)
	local.send(t, `{"type":"subscribe","channel":"probe"}`)
	if got := received(t, local, `"subscribed","channel":"probe"`, `"during"`); got != 0 {
		t.Errorf("the publishing node's own subscriber got %d refused publishes", got)
	}

	// Everything else keeps working: new connections, subscriptions,
	// readiness; and nobody got the refused publishes, not even the
	// publishing node's own subscriber.
	newcomer := subscribed(t, n1, "other")
	resp, err := http.Get("http://" + n1.MetricsAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d while NATS is down, want 200", resp.StatusCode)
	}

	srv.Restart()
	// Neither client subscribes again: the nodes restore their NATS
	// subscriptions by themselves, and the breaker closes after a probe.
	eventually(t, 20*time.Second, "a publish on node 1 reaches node 2 again", func() bool {
		publisher.send(t, `{"type":"publish","channel":"live","data":"after"}`)
		select {
		case m := <-remote.msgs:
			return strings.Contains(m, `"after"`)
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	local.expect(t, `"after"`)
	publisher.send(t, `{"type":"publish","channel":"other","data":"for the newcomer"}`)
	newcomer.expect(t, `"for the newcomer"`)
	if got := gaugeValue(t, n1.cfg.Registry, "wsfleet_node_broker_breaker_state"); got != float64(gobreaker.StateClosed) {
		t.Errorf("wsfleet_node_broker_breaker_state = %v after NATS came back, want closed (0)", got)
	}
	if got := counterValue(t, n1.cfg.Registry, "wsfleet_node_nats_reconnects_total", "", ""); got < 1 {
		t.Errorf("wsfleet_node_nats_reconnects_total = %v, want at least 1", got)
	}
}

func TestNewBreakerThresholdsReachTheBrokersBreaker(t *testing.T) {
	// Open long enough that no probe gets through during the test.
	policy := func(minSamples int32) *wsfleetv1.Policy {
		p := natsBreakerPolicy()
		p.Breaker.OpenDuration = durationpb.New(time.Minute)
		p.Breaker.MinSamples = minSamples
		return p
	}
	srv := natstest.Start(t)
	n1 := startNATSNode(t, srv.URL(), "n1", policy(3))
	publisher := mustDial(t, n1.addr, dialOpts{})
	srv.Stop()
	eventually(t, 10*time.Second, "node 1 notices NATS is gone", func() bool {
		return gaugeValue(t, n1.cfg.Registry, "wsfleet_node_nats_connected") == 0
	})
	publishUntil := func(reason string) {
		t.Helper()
		for range 10 {
			publisher.send(t, `{"type":"publish","channel":"c","data":1}`)
			if strings.Contains(publisher.expect(t, `"type":"error"`), reason) {
				return
			}
		}
		t.Fatalf("10 publishes while NATS is down, none refused with %q", reason)
	}
	publishUntil("breaker open")

	// Same thresholds, another field changed: the breaker stays open.
	same := policy(3)
	same.Limits.MessageBurst++
	applyPolicy(t, n1, same)
	publisher.send(t, `{"type":"publish","channel":"c","data":1}`)
	if m := publisher.expect(t, `"type":"error"`); !strings.Contains(m, "breaker open") {
		t.Fatalf("after a policy change that keeps the breaker's thresholds: %s; want the breaker still open", m)
	}
	// New thresholds: a new, closed breaker that tries NATS again.
	applyPolicy(t, n1, policy(5))
	if got := gaugeValue(t, n1.cfg.Registry, "wsfleet_node_broker_breaker_state"); got != float64(gobreaker.StateClosed) {
		t.Fatalf("wsfleet_node_broker_breaker_state = %v after new thresholds, want closed (0)", got)
	}
	publisher.send(t, `{"type":"publish","channel":"c","data":1}`)
	if m := publisher.expect(t, `"type":"error"`); !strings.Contains(m, "not connected") {
		t.Fatalf("first publish through the new breaker: %s; want it tried (not connected)", m)
	}
}
