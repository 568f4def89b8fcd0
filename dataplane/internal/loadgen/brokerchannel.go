package loadgen

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// BrokerChannelResult is the node's in-process broker alone (package
// dataplane/broker, no sockets, no node) building one channel of
// Subscribers subscribers, publishing once to all of them and tearing the
// channel down. It measures the data structure the O(n²) build was
// in, at the full size, which the WebSocket channel scenario cannot
// reach where descriptors are limited; what a subscribe costs on the wire
// (a frame read, an acknowledgement written) is in ChannelResult.
type BrokerChannelResult struct {
	Subscribers int `json:"subscribers"`
	// Build is from the first Subscribe to the last one returning.
	Build time.Duration `json:"build_ns"`
	// BytesPerSubscription is the Go heap the channel holds, per
	// subscriber, after a GC (the subscribers' own memory excluded).
	BytesPerSubscription float64 `json:"bytes_per_subscription"`
	// Publish is one message handed to every subscriber (a Deliver call
	// each; a node's Deliver queues the frame for the connection's writer).
	Publish   time.Duration `json:"publish_ns"`
	Delivered int64         `json:"delivered"`
	// Unsubscribe is from the first Unsubscribe to the last.
	Unsubscribe time.Duration `json:"unsubscribe_ns"`
}

// countingSub is a subscriber that counts what it is given.
type countingSub struct{ n *atomic.Int64 }

func (s *countingSub) Deliver([]byte) { s.n.Add(1) }

// BrokerChannel measures the in-process broker building a channel of n
// subscribers; see BrokerChannelResult.
func BrokerChannel(ctx context.Context, n int) (BrokerChannelResult, error) {
	res := BrokerChannelResult{Subscribers: n}
	if n <= 0 {
		return res, fmt.Errorf("%w: broker channel: %d subscribers", ErrConfig, n)
	}
	var delivered atomic.Int64
	subs := make([]countingSub, n)
	for i := range subs {
		subs[i].n = &delivered
	}
	b := broker.NewInProcess()
	defer func() { _ = b.Close() }()
	const name = "broker-channel-bench"

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range subs {
		if _, err := b.Subscribe(name, &subs[i]); err != nil {
			return res, fmt.Errorf("broker channel: subscribe %d: %w", i, err)
		}
	}
	res.Build = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.BytesPerSubscription = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
	if err := ctx.Err(); err != nil {
		return res, err
	}

	start = time.Now()
	if _, err := b.Publish(ctx, name, []byte(`"one"`)); err != nil {
		return res, fmt.Errorf("broker channel: publish: %w", err)
	}
	res.Publish = time.Since(start)
	res.Delivered = delivered.Load()
	if res.Delivered != int64(n) {
		return res, fmt.Errorf("broker channel: one publish reached %d of %d subscribers", res.Delivered, n)
	}

	start = time.Now()
	for i := range subs {
		b.Unsubscribe(name, &subs[i])
	}
	res.Unsubscribe = time.Since(start)
	if left := b.Subscribers(name); left != 0 {
		return res, fmt.Errorf("broker channel: %d subscribers left after unsubscribing all", left)
	}
	return res, nil
}
