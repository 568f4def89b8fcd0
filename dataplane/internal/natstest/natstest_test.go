package natstest_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/dataplane/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The server carries messages on loopback, counts a named client's
// subscriptions, and comes back on the same port after a restart, where a
// reconnecting client finds it.
func TestServerCarriesMessagesAndRestartsOnItsPort(t *testing.T) {
	s := natstest.Start(t)
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(s.URL(), nats.Name("probe"), nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("probe.subject")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.Subscriptions("probe"); !ok || n != 1 {
		t.Fatalf("subscriptions of probe: %d, %v; want 1, true", n, ok)
	}
	roundTrip := func(data string) {
		t.Helper()
		if err := nc.Publish("probe.subject", []byte(data)); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != data {
			t.Fatalf("got %v, %v; want %q", m, err, data)
		}
	}
	roundTrip("before")

	port := s.Port
	s.Stop()
	s.Stop() // a stopped server stops again without harm
	s.Restart()
	if s.Port != port {
		t.Fatalf("restarted on port %d, want %d", s.Port, port)
	}
	// IsConnected may still read true for a moment after the stop, before
	// the client has seen its socket close: wait for the reconnect itself.
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatalf("client did not reconnect to the restarted server (status %v)", nc.Status())
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	roundTrip("after")
	if _, ok := s.Subscriptions("nobody"); ok {
		t.Error("a client that never connected is reported as connected")
	}
}
