package natsbroker_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/broker/natsbroker"
	"github.com/wsfleet/wsfleet/dataplane/internal/natstest"
)

// counting stands in for a session whose enqueue is cheap: the figures are
// the broker's own cost per delivery. The subscribers of one node share a
// counter (one dispatcher per channel, so no contention).
// Pointers, so each is its own subscriber (Subscribe compares with ==).
type counting struct{ n *atomic.Int64 }

func (c *counting) Deliver([]byte) { c.n.Add(1) }

// inFlight bounds the messages published and not yet delivered everywhere,
// as a real publisher waiting on its subscribers would be: a benchmark
// that only fills queues measures drops, not deliveries.
const inFlight = 1024

// BenchmarkCrossNodeFanout publishes on one node of a pool to a channel
// with subscribers on every node and reports deliveries per second: two
// nodes over an embedded NATS server (the message crosses NATS once per
// node and is fanned out locally), against the same number of subscribers
// on one in-process broker (what one node does alone). One process does
// all of it here, NATS server included, so the NATS figure is a floor for
// a real deployment, where each node and the server have their own cores.
func BenchmarkCrossNodeFanout(b *testing.B) {
	data := []byte(`{"text":"hello","seq":12345}`)
	for _, perNode := range []int{1, 100} {
		b.Run(fmt.Sprintf("in-process, 1 node, %d subscribers", 2*perNode), func(b *testing.B) {
			br := broker.NewInProcess()
			defer br.Close()
			var got atomic.Int64
			for range 2 * perNode {
				if _, err := br.Subscribe("room:42", &counting{&got}); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(ctx, "room:42", data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(got.Load())/b.Elapsed().Seconds(), "deliveries/s")
		})
		b.Run(fmt.Sprintf("NATS, 2 nodes, %d subscribers each", perNode), func(b *testing.B) {
			srv := natstest.Start(b)
			log := logrus.New()
			log.SetOutput(io.Discard)
			var nodes [2]*natsbroker.Broker
			var got [2]atomic.Int64
			for i := range nodes {
				nb, err := natsbroker.New(natsbroker.Config{URLs: srv.URL(), Pool: "bench", Name: fmt.Sprint("n", i), Log: logrus.NewEntry(log)})
				if err != nil {
					b.Fatal(err)
				}
				defer nb.Close()
				for range perNode {
					if _, err := nb.Subscribe("room:42", &counting{&got[i]}); err != nil {
						b.Fatal(err)
					}
				}
				nodes[i] = nb
			}
			ctx := context.Background()
			delivered := func() int64 { return min(got[0].Load(), got[1].Load()) / int64(perNode) }
			// Wait for the whole pool: a delivery that has not happened
			// when the clock stops does not count.
			wait := func(upTo int64) {
				deadline := time.Now().Add(30 * time.Second)
				for delivered() < upTo {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d messages delivered on both nodes after 30s", delivered(), upTo)
					}
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.ReportAllocs()
			var sent int64
			for b.Loop() {
				if sent >= inFlight {
					wait(sent - inFlight)
				}
				if _, err := nodes[0].Publish(ctx, "room:42", data); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			wait(sent)
			b.ReportMetric(float64(got[0].Load()+got[1].Load())/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
