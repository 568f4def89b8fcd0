package deliveryclient

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeControl serves Deliveries: each stream it accepts gets the next
// script (its deliveries, then the stream ends); once scripts run out a
// stream stays open until the client goes.
type fakeControl struct {
	wsfleetv1.UnimplementedNodeServiceServer
	mu       sync.Mutex
	scripts  [][]*wsfleetv1.DeliveriesResponse
	requests []*wsfleetv1.DeliveriesRequest
}

func (f *fakeControl) Deliveries(req *wsfleetv1.DeliveriesRequest, st wsfleetv1.NodeService_DeliveriesServer) error {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	var script []*wsfleetv1.DeliveriesResponse
	last := len(f.scripts) == 0
	if !last {
		script, f.scripts = f.scripts[0], f.scripts[1:]
	}
	f.mu.Unlock()
	if err := st.SendHeader(nil); err != nil {
		return err
	}
	for _, d := range script {
		if err := st.Send(d); err != nil {
			return err
		}
	}
	if last {
		<-st.Context().Done()
	}
	return nil
}

func serve(t *testing.T, svc wsfleetv1.NodeServiceServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(gs, svc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		gs.Stop()
		<-done
	})
	return cc
}

type delivered struct{ channel, data string }

// run starts a client and returns what it delivers and a stop function.
func run(t *testing.T, cc *grpc.ClientConn) (*Client, <-chan delivered, func()) {
	t.Helper()
	out := make(chan delivered, 100)
	log := logrus.New()
	log.SetOutput(io.Discard)
	c, err := New(Config{
		Conn: cc, NodeID: "edge-1", Pool: "shop",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: log,
		Deliver: func(ch string, data []byte) { out <- delivered{ch, string(data)} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return c, out, func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
}

func next(t *testing.T, out <-chan delivered) delivered {
	t.Helper()
	select {
	case d := <-out:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered within 10s")
		return delivered{}
	}
}

func TestDeliveriesReachDeliverInOrderAcrossReconnects(t *testing.T) {
	f := &fakeControl{scripts: [][]*wsfleetv1.DeliveriesResponse{
		{{Channel: "news", Data: []byte(`1`)}, {Channel: "news", Data: []byte(`{"a":2}`)}},
		{{Channel: "orders:42", Data: []byte(`null`)}},
	}}
	c, out, stop := run(t, serve(t, f))
	defer stop()
	for _, want := range []delivered{{"news", "1"}, {"news", `{"a":2}`}, {"orders:42", "null"}} {
		if got := next(t, out); got != want {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st := c.Status(); !st.Connected || st.Dials < 3; st = c.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: not connected on the third stream", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := c.Status()
	if st.Delivered != 3 {
		t.Fatalf("status %+v", st)
	}
	f.mu.Lock()
	req := f.requests[0]
	f.mu.Unlock()
	if req.GetNodeId() != "edge-1" || req.GetPool() != "shop" {
		t.Fatalf("request %v", req)
	}
}

func TestAnInvalidDeliveryIsDroppedAndCounted(t *testing.T) {
	f := &fakeControl{scripts: [][]*wsfleetv1.DeliveriesResponse{{
		{Channel: "bad channel", Data: []byte(`1`)},
		{Channel: "news", Data: []byte(`{"unterminated":`)},
		{Channel: "news", Data: []byte("\"\xff\"")},
		{Channel: "news", Data: []byte(`"ok"`)},
	}}}
	c, out, stop := run(t, serve(t, f))
	defer stop()
	if got := next(t, out); got != (delivered{"news", `"ok"`}) {
		t.Fatalf("delivered %v first", got)
	}
	if st := c.Status(); st.Dropped != 3 || st.Delivered != 1 {
		t.Fatalf("status %+v, want 3 dropped and 1 delivered", st)
	}
}

func TestAControlPlaneWithoutTheCallLeavesTheClientRetrying(t *testing.T) {
	c, _, stop := run(t, serve(t, &wsfleetv1.UnimplementedNodeServiceServer{}))
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().Dials < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: no retry within 10s", c.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := c.Status(); st.Connected || !strings.Contains(st.LastError, "Unimplemented") {
		t.Fatalf("status %+v", st)
	}
}

func TestConfigIsChecked(t *testing.T) {
	cc := serve(t, &fakeControl{})
	deliver := func(string, []byte) {}
	for _, cfg := range []Config{
		{NodeID: "n", Deliver: deliver},
		{Conn: cc, Deliver: deliver},
		{Conn: cc, NodeID: "n"},
		{Conn: cc, NodeID: "n", Deliver: deliver, Pool: "Not A Pool"},
		{Conn: cc, NodeID: "n", Deliver: deliver, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}
