package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// nop stands in for a session whose enqueue is cheap, so the figures are the
// broker's own cost per publish.
type nop struct{ n int }

func (s *nop) Deliver([]byte) { s.n++ }

func BenchmarkPublish(b *testing.B) {
	msg := []byte(`{"text":"hello"}`)
	for _, subs := range []int{1, 100, 1000, 100_000} {
		b.Run(fmt.Sprintf("%d subscribers", subs), func(b *testing.B) {
			br := broker.NewInProcess()
			defer br.Close()
			for range subs {
				if _, err := br.Subscribe("room:42", &nop{}); err != nil {
					b.Fatal(err)
				}
			}
			// Other channels in the broker, as on a busy node.
			for i := range 1000 {
				if _, err := br.Subscribe(fmt.Sprint("other:", i), &nop{}); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if n, err := br.Publish(ctx, "room:42", msg); err != nil || n != subs {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
	b.Run("1 subscriber, parallel publishers", func(b *testing.B) {
		br := broker.NewInProcess()
		defer br.Close()
		if _, err := br.Subscribe("room:42", &counterSub{}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := br.Publish(ctx, "room:42", msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// counterSub tolerates concurrent Deliver calls.
type counterSub struct{ counter }

// BenchmarkBuildChannel subscribes n subscribers to one channel, with a
// publish every 1,000 (so the changes go on under published views), then
// unsubscribes them all; it reports the time per subscribe and per
// unsubscribe, and the heap each subscription holds while subscribed.
func BenchmarkBuildChannel(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("%d subscribers", n), func(b *testing.B) {
			subs := make([]*nop, n)
			for i := range subs {
				subs[i] = &nop{}
			}
			ctx := context.Background()
			var build, drop time.Duration
			var held uint64
			for b.Loop() {
				br := broker.NewInProcess()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				start := time.Now()
				for i, s := range subs {
					if _, err := br.Subscribe("big", s); err != nil {
						b.Fatal(err)
					}
					if i%1000 == 999 {
						_, _ = br.Publish(ctx, "big", []byte("1"))
					}
				}
				build += time.Since(start)
				runtime.GC()
				runtime.ReadMemStats(&after)
				held += after.HeapAlloc - before.HeapAlloc
				start = time.Now()
				for i, s := range subs {
					br.Unsubscribe("big", s)
					if i%1000 == 999 {
						_, _ = br.Publish(ctx, "big", []byte("1"))
					}
				}
				drop += time.Since(start)
				_ = br.Close()
			}
			runs := float64(b.N) * float64(n)
			b.ReportMetric(float64(build.Nanoseconds())/runs, "ns/subscribe")
			b.ReportMetric(float64(drop.Nanoseconds())/runs, "ns/unsubscribe")
			b.ReportMetric(float64(held)/runs, "B/subscription")
			b.ReportMetric(float64(build.Milliseconds())/float64(b.N), "ms/channel-built")
		})
	}
}

func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	br := broker.NewInProcess()
	defer br.Close()
	for range 100 {
		if _, err := br.Subscribe("room:42", &nop{}); err != nil {
			b.Fatal(err)
		}
	}
	s := &nop{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Subscribe("room:42", s); err != nil {
			b.Fatal(err)
		}
		br.Unsubscribe("room:42", s)
	}
}

// BenchmarkPublishWhileSubscribersChange: parallel publishers on a channel
// of n subscribers, each also subscribing and unsubscribing a subscriber of
// its own every 16th operation: publishes meet changes of the list.
func BenchmarkPublishWhileSubscribersChange(b *testing.B) {
	msg := []byte(`{"text":"hello"}`)
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("%d subscribers", n), func(b *testing.B) {
			br := broker.NewInProcess()
			defer br.Close()
			for range n {
				if _, err := br.Subscribe("room:42", &counterSub{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				own := &counterSub{}
				for i := 0; pb.Next(); i++ {
					if i%16 == 15 {
						if _, err := br.Subscribe("room:42", own); err != nil {
							b.Error(err)
							return
						}
						br.Unsubscribe("room:42", own)
						continue
					}
					if _, err := br.Publish(ctx, "room:42", msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
