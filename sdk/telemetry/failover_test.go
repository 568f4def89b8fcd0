package telemetry_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// startReplicaFakes serves n fakeNodes on their own loopback ports and
// returns them, the list of their addresses and a function that stops one
// abruptly (listener and connections closed at once, as a killed process).
func startReplicaFakes(t *testing.T, n int) ([]*fakeNode, string, func(int)) {
	t.Helper()
	fakes := make([]*fakeNode, n)
	addrs := make([]string, n)
	stops := make([]func(), n)
	for i := range fakes {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fakes[i], addrs[i] = &fakeNode{}, lis.Addr().String()
		srv := grpc.NewServer()
		wsfleetv1.RegisterNodeServiceServer(srv, fakes[i])
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(lis)
		}()
		stops[i] = sync.OnceFunc(func() {
			srv.Stop()
			<-served
		})
		t.Cleanup(stops[i])
	}
	return fakes, strings.Join(addrs, ","), func(i int) { stops[i]() }
}

// holder is the replica that ingested trace id, -1 if none.
func holder(fakes []*fakeNode, trace string) int {
	for i, f := range fakes {
		for _, b := range f.batches() {
			for _, id := range b.traceIDs {
				if id == trace {
					return i
				}
			}
		}
	}
	return -1
}

func TestTelemetryFailsOverToAnotherReplica(t *testing.T) {
	fakes, list, stop := startReplicaFakes(t, 3)
	conn, err := admin.Dial(admin.Config{Addr: list})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	const minBackoff = 200 * time.Millisecond
	r := newReporter(t, conn.Conn(), func(c *telemetry.Config) {
		c.MinBackoff, c.MaxBackoff = minBackoff, 2*time.Second
	})
	run(t, r)

	r.Record(event(0, 0))
	flush(t, r, 5*time.Second)
	on := holder(fakes, "t000000")
	if on < 0 {
		t.Fatal("no replica holds the first event")
	}
	stopped := map[int]bool{}
	for round := 1; round <= 2; round++ {
		// The replica the node reports to dies; events recorded from then
		// on reach another one within the backoff plus a few seconds.
		stop(on)
		stopped[on] = true
		for i := range 10 {
			r.Record(event(round*100+i, 0))
		}
		flush(t, r, minBackoff+5*time.Second)
		next := holder(fakes, event(round*100+9, 0).GetTraceId())
		if next < 0 || stopped[next] {
			t.Fatalf("round %d: the events after the failover are on replica %d; stopped: %v", round, next, stopped)
		}
		for i := range 10 {
			if at := holder(fakes, event(round*100+i, 0).GetTraceId()); at != next {
				t.Errorf("round %d: event %d is on replica %d, not %d", round, i, at, next)
			}
		}
		on = next
	}
	if s := r.Stats(); s.Dropped != 0 || s.Buffered != 0 || s.Acked != 21 {
		t.Fatalf("stats %+v; want 21 events acknowledged, none dropped or left", s)
	}
}
