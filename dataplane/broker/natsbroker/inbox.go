package natsbroker

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// handOffLen is the capacity of the channel the client library hands every
// received message to. The pump empties it at once (it only counts and
// routes), so it holds messages only while the pump waits for a CPU; when
// it is full the client library drops what arrives (counted). It bounds in
// messages what the pump has not looked at yet; everything after the pump
// is bounded in messages and bytes (Config.QueueLen, Config.QueueBytes).
const handOffLen = 256

// inbox is one dispatcher's queue of received messages. Its length and
// bytes count against the broker's shared bounds (Broker.queued,
// Broker.queuedBytes), checked by the pump before a push.
type inbox struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	// wake holds one pending wake-up: a push while the dispatcher works is
	// seen at its next take.
	wake chan struct{}
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

func (in *inbox) push(m *nats.Msg) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// take returns every queued message and leaves spare (emptied) in their
// place, so the two slices alternate and steady traffic allocates nothing.
func (in *inbox) take(spare []*nats.Msg) []*nats.Msg {
	in.mu.Lock()
	defer in.mu.Unlock()
	batch := in.msgs
	in.msgs = spare[:0]
	return batch
}

// msgSize is what a queued message counts against Config.QueueBytes.
func msgSize(m *nats.Msg) int64 { return int64(len(m.Subject) + len(m.Data)) }
