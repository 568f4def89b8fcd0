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
	// channels maps a channel name to its *subList. It is read without a
	// lock by Publish; entries are added and deleted only under the
	// channel's shard mutex. Empty channels are deleted.
	channels sync.Map
	count    atomic.Int64 // entries in channels, for Channels
	closed   atomic.Bool
	shards   [numShards]shard
}

type shard struct {
	mu sync.Mutex
	// at is where each subscription of the shard's channels sits in its
	// channel's list, so that Subscribe finds a duplicate and Unsubscribe
	// its subscriber in O(1). One map per shard rather than one per
	// channel: a channel with one subscriber (a user's own channel) then
	// costs no map of its own.
	at map[subscription]int
	// Keep each mutex on its own cache line, so writers on different
	// shards do not slow each other down through false sharing.
	_ [48]byte
}

// subscription is the key of shard.at.
type subscription struct {
	ch *subList
	s  Subscriber
}

// NewInProcess returns an empty in-process broker.
func NewInProcess() *InProcess {
	return &InProcess{seed: maphash.MakeSeed()}
}

func (b *InProcess) shard(channel string) *shard {
	return &b.shards[maphash.String(b.seed, channel)%numShards]
}

func (b *InProcess) load(name string) *subList {
	v, ok := b.channels.Load(name)
	if !ok {
		return nil
	}
	return v.(*subList)
}

// Subscribe adds s to channel; see Broker. O(1) amortized, whatever the
// number of subscribers.
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
	ch := b.load(channel)
	if ch == nil {
		ch = &subList{}
		b.channels.Store(channel, ch)
		b.count.Add(1)
	} else if _, dup := sh.at[subscription{ch, s}]; dup {
		return false, nil
	}
	if sh.at == nil {
		sh.at = make(map[subscription]int)
	}
	sh.at[subscription{ch, s}] = ch.add(s)
	return true, nil
}

// Unsubscribe removes s from channel; see Broker. O(1) (see subList for
// what a removal copies). The channel is dropped with its last subscriber.
func (b *InProcess) Unsubscribe(channel string, s Subscriber) bool {
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch := b.load(channel)
	if ch == nil {
		return false
	}
	key := subscription{ch, s}
	i, ok := sh.at[key]
	if !ok {
		return false
	}
	delete(sh.at, key)
	if ch.len() == 1 {
		b.channels.Delete(channel)
		b.count.Add(-1)
		ch.clear()
		return true
	}
	if moved := ch.remove(i); moved != nil {
		sh.at[subscription{ch, moved}] = i
	}
	return true
}

// subscribers returns the view of ch a publish delivers to: the published
// one, or, after a change, a new one made under the shard lock.
func (b *InProcess) subscribers(name string, ch *subList) *view {
	if v := ch.snap.Load(); v != nil {
		return v
	}
	sh := b.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return ch.view()
}

// Publish calls Deliver on every subscriber of channel, on the caller's
// goroutine; see Broker and Fanout.
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

// PublishLocal implements Broker: in process, every subscriber is local.
func (b *InProcess) PublishLocal(channel string, data []byte) (int, error) {
	return b.Publish(context.Background(), channel, data)
}

// Fanout encodes the message frame of data on channel once and calls
// Deliver with it on every subscriber of channel, on the caller's
// goroutine; it returns how many it delivered to. It takes no lock and
// allocates nothing but the frame, unless the channel's subscribers changed
// since the last publish (then it takes the channel's shard lock once to
// publish a new view of them). A channel nobody subscribes to costs a map
// lookup and no encoding. A distributed broker uses it to deliver what
// arrives from the network to this node's subscribers. A panicking Deliver
// is not recovered here: it unwinds into the caller (a publisher's handler
// recovers it).
func (b *InProcess) Fanout(channel string, data []byte) int {
	ch := b.load(channel)
	if ch == nil {
		return 0
	}
	v := b.subscribers(channel, ch)
	if v.n == 0 {
		return 0 // its last subscriber left after the lookup
	}
	// Shared read-only by every subscriber's queue (see Subscriber): one
	// allocation per publish, none per subscriber.
	msg := protocol.AppendMessageFrame(nil, channel, data)
	for _, c := range v.chunks {
		for _, s := range c {
			s.Deliver(msg)
		}
	}
	return v.n
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
		sh := &b.shards[i]
		sh.mu.Lock()
		sh.at = nil
		sh.mu.Unlock()
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
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ch := b.load(channel); ch != nil {
		return ch.len()
	}
	return 0
}
