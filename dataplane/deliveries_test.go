package dataplane

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/internal/natstest"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// fakeDeliveries is the control plane's NodeService as far as backend
// publishes go (dataplane never imports controlplane): it keeps every
// node's delivery stream and sends a publish to each, as the control
// plane does without NATS. It serves no policy: Watch refuses with
// Unavailable (refuseWatch), as a control plane that is down would, and a
// node pointed at it keeps its policy and retries with backoff.
type fakeDeliveries struct {
	wsfleetv1.UnimplementedNodeServiceServer
	addr string

	mu      sync.Mutex
	streams map[string]chan *wsfleetv1.DeliveriesResponse // by node id
}

func startFakeDeliveries(t *testing.T) *fakeDeliveries {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDeliveries{addr: lis.Addr().String(), streams: map[string]chan *wsfleetv1.DeliveriesResponse{}}
	srv := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(srv, f)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return f
}

func (f *fakeDeliveries) Watch(wsfleetv1.NodeService_WatchServer) error { return refuseWatch() }

func (f *fakeDeliveries) Deliveries(req *wsfleetv1.DeliveriesRequest, st wsfleetv1.NodeService_DeliveriesServer) error {
	q := make(chan *wsfleetv1.DeliveriesResponse, 16)
	f.mu.Lock()
	f.streams[req.GetNodeId()+"/"+req.GetPool()] = q
	f.mu.Unlock()
	if err := st.SendHeader(nil); err != nil {
		return err
	}
	for {
		select {
		case d := <-q:
			if err := st.Send(d); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func (f *fakeDeliveries) attached() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

func (f *fakeDeliveries) publish(ch, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.streams {
		q <- &wsfleetv1.DeliveriesResponse{Channel: ch, Data: []byte(data)}
	}
}

// startControlledNode runs a node with RunWithControlPlane against addr
// and returns its WebSocket address and metrics.
func startControlledNode(t *testing.T, addr, id, pool string, mutate ...func(*Config)) (string, *prometheus.Registry) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	ws := unreachableAddr(t)
	cfg := Config{NodeID: id, Pool: pool, ListenAddr: ws, MetricsAddr: "-", Log: log, Registry: reg}
	for _, m := range mutate {
		m(&cfg)
	}
	cp := ControlPlane{
		Dial:       admin.Config{Addr: addr},
		CacheFile:  filepath.Join(t.TempDir(), "policy.json"),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWithControlPlane(ctx, cfg, cp) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node %s: %v", id, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("node %s did not stop", id)
		}
	})
	eventually(t, 10*time.Second, "node "+id+" listening", func() bool {
		c, err := net.Dial("tcp", ws)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return ws, reg
}

func TestBackendPublishesReachTheSubscribersOfEveryNode(t *testing.T) {
	f := startFakeDeliveries(t)
	ws1, reg1 := startControlledNode(t, f.addr, "n1", "shop")
	ws2, reg2 := startControlledNode(t, f.addr, "n2", "shop")
	eventually(t, 10*time.Second, "both nodes' delivery streams attached", func() bool { return f.attached() == 2 })

	subscribe := func(addr, ch string) *client {
		// No Origin: the built-in default policy the nodes run allows
		// clients without one.
		c, err := dial(t, addr, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		c.send(t, `{"type":"subscribe","channel":"`+ch+`"}`)
		c.expect(t, `{"type":"subscribed","channel":"`+ch+`"}`)
		return c
	}
	a := subscribe(ws1, "orders:42")
	b := subscribe(ws2, "orders:42")
	other := subscribe(ws2, "news")

	f.publish("orders:42", `{"status":"paid"}`)
	want := `{"type":"message","channel":"orders:42","data":{"status":"paid"}}`
	for _, c := range []*client{a, b} {
		if got := c.expect(t, `"type":"message"`); got != want {
			t.Fatalf("frame %s, want %s", got, want)
		}
	}
	f.publish("news", `1`)
	if got := other.expect(t, `"type":"message"`); !strings.Contains(got, `"channel":"news"`) {
		t.Fatalf("the news subscriber got %s first: a message of another channel", got)
	}
	eventually(t, 5*time.Second, "the deliveries counted", func() bool {
		return counterValue(t, reg1, "wsfleet_node_backend_publishes_total", "", "") == 2 &&
			counterValue(t, reg2, "wsfleet_node_backend_publishes_total", "", "") == 2
	})
	if got := gaugeValue(t, reg1, "wsfleet_node_deliveries_connected"); got != 1 {
		t.Fatalf("wsfleet_node_deliveries_connected = %v", got)
	}
}

// A backend publish the control plane hands to every node must reach each
// subscriber once even when the nodes share a NATS broker: a node delivers
// it to its own subscribers only, never into NATS, where every other node
// would deliver it again.
func TestBackendPublishesThroughNodesOnNATSReachEachSubscriberOnce(t *testing.T) {
	srv := natstest.Start(t)
	f := startFakeDeliveries(t)
	onNATS := func(c *Config) {
		c.NATS.URLs = srv.URL()
		c.NATS.ReconnectWait = 50 * time.Millisecond
	}
	ws1, _ := startControlledNode(t, f.addr, "n1", "shop", onNATS)
	ws2, _ := startControlledNode(t, f.addr, "n2", "shop", onNATS)
	eventually(t, 10*time.Second, "both nodes' delivery streams attached", func() bool { return f.attached() == 2 })
	var clients []*client
	for _, ws := range []string{ws1, ws2} {
		c, err := dial(t, ws, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		c.send(t, `{"type":"subscribe","channel":"orders"}`)
		c.expect(t, `{"type":"subscribed","channel":"orders"}`)
		clients = append(clients, c)
	}
	f.publish("orders", `{"n":1}`)
	// A copy that went round through NATS arrives within milliseconds; the
	// fence, sent after a pause, closes the count.
	time.Sleep(500 * time.Millisecond)
	f.publish("orders", `{"fence":true}`)
	for i, c := range clients {
		if got := received(t, c, `"fence":true`, `{"n":1}`); got != 1 {
			t.Fatalf("subscriber on node %d got the backend publish %d times, want once", i+1, got)
		}
	}
}
