package telemetry_test

import (
	"context"
	"slices"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

func sample(id int64) *wsfleetv1.TrafficSample {
	return &wsfleetv1.TrafficSample{PolicyPool: "default", PolicyRevision: id,
		Accepted: []*wsfleetv1.OriginCount{{Origin: "https://a.example", Count: 3}}}
}

func TestTrafficSamples(t *testing.T) {
	t.Run("a sample goes out at once, without events and before the flush interval", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.FlushInterval = time.Hour })
		run(t, r)
		r.RecordTraffic(sample(1))
		eventually(t, 10*time.Second, "the sample delivered", func() bool { return slices.Equal(f.trafficSamples(), []int64{1}) })
		if st := r.Stats(); st.TrafficRecorded != 1 || st.TrafficDropped != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("while the control plane is away the oldest samples beyond the bound are dropped and counted", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.MaxTrafficSamples = 3 })
		for i := range 5 {
			r.RecordTraffic(sample(int64(i + 1)))
		}
		if st := r.Stats(); st.TrafficRecorded != 5 || st.TrafficDropped != 2 {
			t.Fatalf("stats %+v, want 5 recorded and 2 dropped", st)
		}
		run(t, r)
		flush(t, r, 10*time.Second)
		if got := f.trafficSamples(); !slices.Equal(got, []int64{3, 4, 5}) {
			t.Fatalf("delivered %v, want the newest 3", got)
		}
	})

	t.Run("Flush and FinalFlush wait for the samples' acknowledgement", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, nil)
		run(t, r)
		eventually(t, 10*time.Second, "connected", func() bool { return r.Stats().Connected })
		f.setHold(true)
		r.RecordTraffic(sample(7))
		short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		n, err := r.FinalFlush(short)
		cancel()
		if err == nil {
			t.Fatalf("FinalFlush with the ack held: %d, nil; want it to wait and fail", n)
		}
		f.setHold(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := r.FinalFlush(ctx); err != nil || n != 0 {
			t.Fatalf("FinalFlush: %d, %v", n, err)
		}
		if got := f.trafficSamples(); !slices.Equal(got, []int64{7}) {
			t.Fatalf("delivered %v", got)
		}
	})
}
