package policyclient

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// BenchmarkPropagation runs many Clients on a few shared ClientConns
// against the fake control plane, pushes one revision to every stream per
// iteration and waits for every ACK. ns/op is one fleet-wide round; p50-ms
// and p99-ms are the ACK arrival times after the round started. It measures
// this package and gRPC, not the control plane's registry (the lead's
// benchmark does that end to end).
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchPropagation(b, n, 4) })
	}
}

func benchPropagation(b *testing.B, clients, conns int) {
	h := newHarness(b, false)
	h.svc.streams = make(chan *fakeStream, clients)
	h.svc.replyTap = make(chan time.Time, clients)
	cc := make([]*grpc.ClientConn, conns)
	cc[0] = h.conn
	for i := 1; i < conns; i++ {
		cc[i] = dialConn(b, h.addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	apply := func(*wsfleetv1.PolicyRevision) error { return nil }
	for i := range clients {
		c, err := New(Config{Conn: cc[i%conns], NodeID: fmt.Sprintf("node-%d", i), Pool: "edge", Apply: apply, Log: quietLog()})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx)
		}()
	}
	streams := make([]*fakeStream, clients)
	for i := range streams {
		streams[i] = h.nextStream(b)
	}
	lat := make([]time.Duration, 0, clients*b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rev := revision("edge", int64(i+1))
		start := time.Now()
		for _, fs := range streams {
			fs.push(b, rev)
		}
		for range clients {
			select {
			case at := <-h.svc.replyTap:
				lat = append(lat, at.Sub(start))
			case <-time.After(waitTimeout):
				b.Fatal("ACKs missing")
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}
