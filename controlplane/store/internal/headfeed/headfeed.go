// Package headfeed is the delivery behind every store's WatchHeads: pool
// heads handed to one consumer, latest wins per pool.
//
// A Feed keeps at most one undelivered head per pool (the newest offered)
// and the highest revision it accepted per pool, so its memory is bounded
// by the number of pools whatever the rate of commits or the speed of the
// consumer. Offer never blocks: it is called from the store's write path
// (boltstore) or from the goroutine reading the backend's notifications
// (etcdstore). Run, in a goroutine of the store's, hands the waiting heads
// to the consumer one at a time, pools in the order they became waiting,
// until its context ends; the store then calls Close, once every other
// goroutine of the watch has ended, so that a consumer who sees Out closed
// knows the watch is over. A pool's heads leave the feed in
// increasing revision order: a head at or below one already accepted is
// dropped, so re-reading every head after a gap is always safe.
package headfeed

import (
	"context"
	"sync"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Feed is one watch's queue of pool heads.
type Feed struct {
	out  chan *wsfleetv1.PolicyRevision
	wake chan struct{} // one slot: "something is waiting"

	mu      sync.Mutex
	pending map[string]*wsfleetv1.PolicyRevision // pool → newest undelivered head
	order   []string                             // pools in pending, oldest first
	last    map[string]int64                     // pool → highest revision accepted
}

// New returns an empty Feed.
func New() *Feed {
	return &Feed{
		out:     make(chan *wsfleetv1.PolicyRevision),
		wake:    make(chan struct{}, 1),
		pending: map[string]*wsfleetv1.PolicyRevision{},
		last:    map[string]int64{},
	}
}

// Out is the consumer's channel; Close closes it.
func (f *Feed) Out() <-chan *wsfleetv1.PolicyRevision { return f.out }

// Offer queues rev as its pool's newest head, replacing an undelivered
// older one, unless a revision of that pool at least as high was already
// accepted. It takes ownership of rev (the consumer gets it as it is) and
// never blocks. It reports whether rev was accepted.
func (f *Feed) Offer(rev *wsfleetv1.PolicyRevision) bool {
	pool := rev.GetPool()
	f.mu.Lock()
	if last, ok := f.last[pool]; ok && rev.GetRevision() <= last {
		f.mu.Unlock()
		return false
	}
	f.last[pool] = rev.GetRevision()
	if _, waiting := f.pending[pool]; !waiting {
		f.order = append(f.order, pool)
	}
	f.pending[pool] = rev
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return true
}

// next takes the head of the pool that has waited longest, or nil.
func (f *Feed) next() *wsfleetv1.PolicyRevision {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.order) == 0 {
		return nil
	}
	pool := f.order[0]
	f.order[0] = ""
	f.order = f.order[1:]
	if len(f.order) == 0 {
		f.order = nil // let the backing array go
	}
	rev := f.pending[pool]
	delete(f.pending, pool)
	return rev
}

// Close closes Out. Call it once, after Run has returned.
func (f *Feed) Close() { close(f.out) }

// Run delivers waiting heads to Out until ctx ends. Heads still waiting
// then are dropped: the watch is over.
func (f *Feed) Run(ctx context.Context) {
	for {
		rev := f.next()
		if rev == nil {
			select {
			case <-f.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case f.out <- rev:
		case <-ctx.Done():
			return
		}
	}
}
