package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// nop stands in for a session whose enqueue is cheap, so the figures are the
// broker's own cost per publish.
type nop struct{ n int }

func (s *nop) Deliver([]byte) { s.n++ }

func BenchmarkPublish(b *testing.B) {
	msg := []byte(`{"text":"hello"}`)
	for _, subs := range []int{1, 100, 1000} {
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
