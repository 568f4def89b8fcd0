package publish

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
)

// hub holds the delivery streams of the nodes attached to this control
// plane, by pool, and queues each publish on every stream of its pool.
//
// Locking: mu guards byID, pools (the map) and closed; each pool's own
// mutex guards its streams. A publish holds only its pool's mutex while it
// queues (non-blocking sends), so publishes to different pools never wait
// for each other, and attach and detach change a pool's set under both
// locks: a stream taken out of its pool's set gets no further message, so
// the handler can then release what is left in its queue.
type hub struct {
	queueLen    int
	maxStreams  int
	maxBuffered int64
	metrics     *metrics

	buffered atomic.Int64 // bytes of the messages waiting on any stream

	mu     sync.Mutex
	closed bool
	byID   map[string]*stream
	pools  map[string]*poolStreams
}

type poolStreams struct {
	mu    sync.Mutex
	nodes map[string]*stream
}

// stream is one node's attached delivery stream.
type stream struct {
	nodeID, pool string
	cred         string // auth.Identity.Credential
	q            chan *message
	// stop is closed when the stream must end: replaced by a newer stream
	// of the node, or the hub shutting down.
	stop     chan struct{}
	stopOnce sync.Once
}

func (st *stream) end() { st.stopOnce.Do(func() { close(st.stop) }) }

// message is one publish, shared read-only by every queue it waits in; its
// data counts in hub.buffered until the last of them has sent or dropped
// it.
type message struct {
	channel string
	data    []byte
	refs    atomic.Int32
	hub     *hub
}

func (m *message) release(n int32) {
	if m.refs.Add(-n) == 0 {
		m.hub.buffered.Add(-int64(len(m.data)))
		m.hub.metrics.buffered.Set(float64(m.hub.buffered.Load()))
	}
}

func newHub(queueLen, maxStreams int, maxBuffered int64, m *metrics) *hub {
	return &hub{
		queueLen: queueLen, maxStreams: maxStreams, maxBuffered: maxBuffered, metrics: m,
		byID: map[string]*stream{}, pools: map[string]*poolStreams{},
	}
}

// retryLater is the Retry-After of a refusal for full buffers: they drain
// as fast as the nodes read.
const retryLater = time.Second

var errShuttingDown = notDelivered(codes.Unavailable, channel.CauseShuttingDown, "control plane shutting down; nothing was delivered", 0)

// attach adds a node's stream, replacing the node's attached stream when
// it comes with the same credential (the node reconnected); with another
// credential it is refused with AlreadyExists and the attached one goes
// on, as for watch streams.
func (h *hub) attach(nodeID, pool, cred string) (*stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, status.Error(codes.Unavailable, "control plane shutting down")
	}
	old := h.byID[nodeID]
	switch {
	case old != nil && old.cred != cred:
		return nil, status.Errorf(codes.AlreadyExists,
			"node %q has a delivery stream with another credential; a stream may replace it only with the same credential", nodeID)
	case old == nil && len(h.byID) >= h.maxStreams:
		return nil, status.Errorf(codes.ResourceExhausted, "%d delivery streams are attached, the most this control plane takes (--max-nodes)", len(h.byID))
	}
	if old != nil {
		h.removeLocked(old)
		old.end()
	}
	st := &stream{nodeID: nodeID, pool: pool, cred: cred, q: make(chan *message, h.queueLen), stop: make(chan struct{})}
	p := h.pools[pool]
	if p == nil {
		p = &poolStreams{nodes: map[string]*stream{}}
		h.pools[pool] = p
	}
	p.mu.Lock()
	p.nodes[nodeID] = st
	p.mu.Unlock()
	h.byID[nodeID] = st
	h.metrics.streams.Set(float64(len(h.byID)))
	return st, nil
}

// detach removes st unless a newer stream of the node replaced it, then
// releases what was left in its queue: nothing queues on it any more.
func (h *hub) detach(st *stream) {
	h.mu.Lock()
	if h.byID[st.nodeID] == st {
		h.removeLocked(st)
	}
	h.mu.Unlock()
	for {
		select {
		case m := <-st.q:
			m.release(1)
		default:
			return
		}
	}
}

// removeLocked takes st out of byID and its pool; h.mu is held.
func (h *hub) removeLocked(st *stream) {
	delete(h.byID, st.nodeID)
	h.metrics.streams.Set(float64(len(h.byID)))
	p := h.pools[st.pool]
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.nodes[st.nodeID] == st {
		delete(p.nodes, st.nodeID)
	}
	empty := len(p.nodes) == 0
	p.mu.Unlock()
	if empty {
		// A publish that found p before this still sees it, empty: it
		// queues nothing. attach makes a new one under h.mu.
		delete(h.pools, st.pool)
	}
}

// publish queues the message on every stream of pool and says on how many
// it was queued and how many were full. With none queued it is refused:
// Unavailable when no node of the pool is attached, ResourceExhausted when
// every one is full or the buffered bytes would pass their bound; the
// refusal carries NOT_DELIVERED.
func (h *hub) publish(pool, ch string, data []byte) (handed, skipped int, err error) {
	h.mu.Lock()
	closed, p := h.closed, h.pools[pool]
	h.mu.Unlock()
	if closed {
		return 0, 0, errShuttingDown
	}
	if p == nil {
		return 0, 0, noNode(pool)
	}
	size := int64(len(data))
	if h.buffered.Add(size) > h.maxBuffered {
		h.buffered.Add(-size)
		return 0, 0, notDelivered(codes.ResourceExhausted, channel.CauseBufferFull,
			fmt.Sprintf("%d bytes of messages wait for nodes, the most this control plane holds (--publish-max-buffered-bytes); nothing was delivered, retry later", h.maxBuffered), retryLater)
	}
	m := &message{channel: ch, data: data, hub: h}
	p.mu.Lock()
	// One reference per stream it may go to, plus the publisher's own,
	// released below: the message cannot be freed while still queueing.
	m.refs.Store(int32(len(p.nodes)) + 1)
	for _, st := range p.nodes {
		select {
		case st.q <- m:
			handed++
		default:
			skipped++
		}
	}
	p.mu.Unlock()
	m.release(int32(skipped) + 1)
	h.metrics.buffered.Set(float64(h.buffered.Load()))
	h.metrics.handed.Add(float64(handed))
	h.metrics.skipped.Add(float64(skipped))
	switch {
	case handed > 0:
		return handed, skipped, nil
	case skipped > 0:
		return 0, skipped, notDelivered(codes.ResourceExhausted, channel.CauseNodeQueuesFull,
			fmt.Sprintf("the delivery queue of every node of pool %q attached here (%d) is full; nothing was delivered, retry later", pool, skipped), retryLater)
	default:
		return 0, 0, noNode(pool)
	}
}

func noNode(pool string) error {
	return notDelivered(codes.Unavailable, channel.CauseNoNodeAttached,
		fmt.Sprintf("no node of pool %q is attached to this control plane; nothing was delivered", pool), 0)
}

// shutdown ends every stream and refuses new ones and publishes.
func (h *hub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, st := range h.byID {
		st.end()
	}
}
