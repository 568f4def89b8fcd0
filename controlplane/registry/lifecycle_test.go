package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// atomicTime is a settable clock for Config.Now.
type atomicTime struct{ v atomic.Int64 }

func (c *atomicTime) set(t time.Time) { c.v.Store(t.UnixNano()) }
func (c *atomicTime) get() time.Time  { return time.Unix(0, c.v.Load()) }

func connectedGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wsfleet_control_nodes_connected" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no wsfleet_control_nodes_connected")
	return 0
}

func TestConnectedGaugeSurvivesAStreamAttachingDuringShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	// The clock is read as a stream attaches; armed, it runs Shutdown
	// right there, between the hello and the registration: the race.
	var armed atomic.Bool
	var r *Registry
	now := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			r.Shutdown()
		}
		return time.Now()
	}
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}, Registerer: reg, Now: now})
	r = f.r
	armed.Store(true)
	n := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1"})
	select {
	case err := <-n.done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("stream ended with %v, want Unavailable", err)
		}
		n.done <- err // for cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("a stream attached during shutdown stayed open")
	}
	if got := connectedGauge(t, reg); got != 0 {
		t.Fatalf("nodes_connected = %v after the only stream ended, want 0", got)
	}
}

func TestConnectedGaugeReturnsToZeroAfterManyStreamsAndShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}, Registerer: reg})
	const nodes = 40
	var wg sync.WaitGroup
	ends := make(chan error, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := f.nodes.Watch(ctx)
			if err != nil {
				ends <- err
				return
			}
			id := "n" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			_ = st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: id}}})
			for {
				if _, err := st.Recv(); err != nil {
					ends <- err
					return
				}
			}
		}()
		if i == nodes/2 {
			f.r.Shutdown() // half the streams attach after it began
		}
	}
	var min float64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(5 * time.Millisecond):
			min = minf(min, connectedGauge(t, reg))
		}
	}
	close(ends)
	for err := range ends {
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("a stream ended with %v, want Unavailable", err)
		}
	}
	if got := connectedGauge(t, reg); got != 0 || min < 0 {
		t.Fatalf("nodes_connected = %v after every stream ended (lowest seen %v), want 0 and never negative", got, min)
	}
}

func minf(a, b float64) float64 {
	if b < a {
		return b
	}
	return a
}

func TestWatchEndsWithAStatusCodeWhenTheNodeGoesAway(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	// Which of the stream's context and its Recv notices a cancel first
	// is up to the scheduler; enough streams cover both.
	const streams = 20
	for i := range streams {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := f.nodes.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: "n1"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		cancel()
		select {
		case err := <-f.watchEnds:
			if _, isStatus := status.FromError(err); !isStatus {
				t.Fatalf("stream %d: Watch returned %v (%T), not a status: gRPC reports it as Unknown", i, err, err)
			}
			if c := status.Code(err); c != codes.OK && c != codes.Canceled {
				t.Fatalf("stream %d: Watch returned %v, want OK or Canceled", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d: Watch did not return after the node cancelled", i)
		}
	}
}

func TestAStreamClosedBeforeItsHelloEndsWithAStatus(t *testing.T) {
	f := newServed(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := f.nodes.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	select {
	case err := <-f.watchEnds:
		if _, isStatus := status.FromError(err); !isStatus {
			t.Fatalf("Watch returned %v (%T), not a status", err, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
	}
}
