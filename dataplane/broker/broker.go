package broker

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

// Subscriber receives published messages.
//
// Deliver must not block: it runs on the publisher's goroutine (in
// process) or the broker's dispatcher (NATS), once per subscriber, and a
// subscriber that waits holds up every subscriber after it. The node's
// session enqueues msg to its bounded outgoing queue and disconnects itself
// as a slow consumer when the queue is full.
//
// msg is the message frame, {"type":"message","channel":…,"data":…}
// (protocol.AppendMessageFrame), encoded once per node and message and
// shared by every subscriber of the node: it is read-only. A subscriber may
// keep it (queued until written) for as long as it likes, provided it never
// modifies it.
//
// Subscribers are compared with ==, so an implementation must be a
// comparable type; in practice a pointer (the session).
type Subscriber interface {
	Deliver(msg []byte)
}

// Broker fans published messages out to the subscribers of a channel.
type Broker interface {
	// Subscribe adds s to channel. It is idempotent: added is false when s
	// was already subscribed. Errors: ErrEmptyChannel, ErrNilSubscriber,
	// ErrClosed.
	Subscribe(channel string, s Subscriber) (added bool, err error)
	// Unsubscribe removes s from channel; removed is false when s was not
	// subscribed (or the broker is closed).
	Unsubscribe(channel string, s Subscriber) (removed bool)
	// Publish sends data, the JSON value a client published on channel
	// (valid, in valid UTF-8), to every subscriber of channel the broker
	// reaches: this process's (InProcess), or every node's of the pool
	// (a distributed broker). Each node encodes the message frame once for
	// all its subscribers, so a broker takes data, not a frame: NATS carries
	// data as it is (api/subject).
	//
	// delivered counts the subscribers Deliver was called on before
	// Publish returned: all of them in process (0, nil for a channel nobody
	// subscribes to); 0 for a broker that delivers asynchronously. data
	// must not be modified afterwards. ctx bounds the work of brokers that
	// go over the network. Errors: ErrClosed after Close; a distributed
	// broker's ErrUnavailable (and the errors that wrap it) or ErrTooBig.
	Publish(ctx context.Context, channel string, data []byte) (delivered int, err error)
	// PublishLocal delivers data to this process's subscribers of channel
	// only, never to other nodes: for a message that reaches every node of
	// the pool by another way (a backend publish the control plane hands
	// to each node itself), which a distributed broker would otherwise
	// deliver once per node. It never blocks on the network; delivered
	// and errors as for Publish.
	PublishLocal(channel string, data []byte) (delivered int, err error)
	// Close drops every subscription; the broker accepts no more work.
	// Later calls return ErrClosed.
	Close() error
}

var _ Broker = (*InProcess)(nil)

// numShards spreads Subscribe/Unsubscribe over independent mutexes. 64 is
// well above the core counts a node runs on, so two writers only meet when
// their channels hash alike.
const numShards = 64

// InProcess is the in-memory Broker: one node, no network. Its zero value
// is not usable; use NewInProcess.
type InProcess struct {
	seed maphash.Seed
	// channels maps a channel name to its *subscribers. It is read without
	// a lock by Publish; a value is replaced, never modified, and only
	// under the channel's shard mutex, so two writers of one channel never
	// lose each other's change. Empty channels are deleted.
	channels sync.Map
	count    atomic.Int64 // entries in channels, for Channels
	closed   atomic.Bool
	shards   [numShards]shard
}

type shard struct {
	mu sync.Mutex
	// Keep each mutex on its own cache line, so writers on different
	// shards do not slow each other down through false sharing.
	_ [56]byte
}

// subscribers is one immutable snapshot of a channel's subscribers.
type subscribers struct {
	list []Subscriber
}

// NewInProcess returns an empty in-process broker.
func NewInProcess() *InProcess {
	return &InProcess{seed: maphash.MakeSeed()}
}

func (b *InProcess) shard(channel string) *shard {
	return &b.shards[maphash.String(b.seed, channel)%numShards]
}

func (b *InProcess) load(channel string) *subscribers {
	v, ok := b.channels.Load(channel)
	if !ok {
		return nil
	}
	return v.(*subscribers)
}

// Subscribe adds s to channel; see Broker. It copies the channel's
// subscriber list: O(subscribers of the channel).
func (b *InProcess) Subscribe(channel string, s Subscriber) (bool, error) {
	switch {
	case channel == "":
		return false, ErrEmptyChannel
	case s == nil:
		return false, ErrNilSubscriber
	}
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Checked under the shard lock: Close passes through every shard lock
	// after setting the flag, so nothing is added once Close has cleared.
	if b.closed.Load() {
		return false, ErrClosed
	}
	var old []Subscriber
	cur := b.load(channel)
	if cur != nil {
		old = cur.list
		for _, x := range old {
			if x == s {
				return false, nil
			}
		}
	}
	list := make([]Subscriber, len(old), len(old)+1)
	copy(list, old)
	b.channels.Store(channel, &subscribers{list: append(list, s)})
	if cur == nil {
		b.count.Add(1)
	}
	return true, nil
}

// Unsubscribe removes s from channel; see Broker. The channel is dropped
// with its last subscriber.
func (b *InProcess) Unsubscribe(channel string, s Subscriber) bool {
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := b.load(channel)
	if cur == nil {
		return false
	}
	at := -1
	for i, x := range cur.list {
		if x == s {
			at = i
			break
		}
	}
	switch {
	case at < 0:
		return false
	case len(cur.list) == 1:
		b.channels.Delete(channel)
		b.count.Add(-1)
		return true
	}
	list := make([]Subscriber, 0, len(cur.list)-1)
	list = append(list, cur.list[:at]...)
	list = append(list, cur.list[at+1:]...)
	b.channels.Store(channel, &subscribers{list: list})
	return true
}

// Publish calls Deliver on every subscriber of channel, on the caller's
// goroutine, without taking a lock; see Broker and Fanout.
// PublishLocal implements Broker: in process, every subscriber is local.
func (b *InProcess) PublishLocal(channel string, data []byte) (int, error) {
	return b.Publish(context.Background(), channel, data)
}

func (b *InProcess) Publish(ctx context.Context, channel string, data []byte) (int, error) {
	if b.closed.Load() {
		return 0, ErrClosed
	}
	// Delivery in process never waits, so ctx is checked once, not per
	// subscriber.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return b.Fanout(channel, data), nil
}

// Fanout encodes the message frame of data on channel once and calls
// Deliver with it on every subscriber of channel, on the caller's
// goroutine, without taking a lock; it returns how many it delivered to.
// A channel nobody subscribes to costs a map lookup and no encoding. A
// distributed broker uses it to deliver what arrives from the network to
// this node's subscribers. A panicking Deliver is not recovered here: it
// unwinds into the caller (a publisher's handler recovers it).
func (b *InProcess) Fanout(channel string, data []byte) int {
	cur := b.load(channel)
	if cur == nil {
		return 0
	}
	// Shared read-only by every subscriber's queue (see Subscriber): one
	// allocation per publish, none per subscriber.
	msg := protocol.AppendMessageFrame(nil, channel, data)
	for _, s := range cur.list {
		s.Deliver(msg)
	}
	return len(cur.list)
}

// Close drops every subscription; see Broker. It does not notify
// subscribers: the node closes its sessions itself.
func (b *InProcess) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// Wait out writers that took their shard lock before the flag was set;
	// every later one sees the flag.
	for i := range b.shards {
		b.shards[i].mu.Lock()
		b.shards[i].mu.Unlock() // empty on purpose: a barrier
	}
	b.channels.Clear()
	b.count.Store(0)
	return nil
}

// Channels returns how many channels have at least one subscriber.
func (b *InProcess) Channels() int {
	return int(b.count.Load())
}

// Subscribers returns how many subscribers channel has.
func (b *InProcess) Subscribers(channel string) int {
	if cur := b.load(channel); cur != nil {
		return len(cur.list)
	}
	return 0
}
