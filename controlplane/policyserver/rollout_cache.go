package policyserver

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// rolloutCache remembers, per pool, what RolloutStatus found in the
// pool's history, keyed by the head it scanned from: revisions are
// immutable, so the answer (which revision holds the latest rollout, which
// one ended it, and what they say) changes only when the head does, and a
// console tab polling GetRollout every few seconds then reads the head
// alone instead of up to MaxRolloutScan revisions. The nodes and the
// comparison are live and never cached. One entry per pool, and pools are
// bounded by the store; a head of another store identity (the store was
// reset or replaced) drops every entry. The head's create time is part of
// the key too: an etcd prefix deleted and created anew under a running
// control plane still reads with the identity it opened with, and its
// head may reach the same revision number.
type rolloutCache struct {
	mu      sync.Mutex
	storeID string
	pools   map[string]rolloutEntry
}

type rolloutEntry struct {
	head     int64
	headTime time.Time
	st       *wsfleetv1.RolloutStatus // nil: no rollout within MaxRolloutScan
}

// get returns a copy of pool's status scanned from head (which carries
// its store's identity), and whether there was one.
func (c *rolloutCache) get(pool string, head *wsfleetv1.PolicyRevision) (*wsfleetv1.RolloutStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.pools[pool]
	if !ok || c.storeID != head.GetStoreId() || e.head != head.GetRevision() || !e.headTime.Equal(head.GetCreateTime().AsTime()) {
		return nil, false
	}
	if e.st == nil {
		return nil, true
	}
	return proto.Clone(e.st).(*wsfleetv1.RolloutStatus), true
}

// put remembers st (nil: none found) as pool's status scanned from head.
func (c *rolloutCache) put(pool string, head *wsfleetv1.PolicyRevision, st *wsfleetv1.RolloutStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pools == nil || c.storeID != head.GetStoreId() {
		c.storeID, c.pools = head.GetStoreId(), map[string]rolloutEntry{}
	}
	// Heads only grow within a store: a slower scan from an older head
	// never replaces a newer one's answer.
	if e, ok := c.pools[pool]; ok && e.head > head.GetRevision() {
		return
	}
	if st != nil {
		st = proto.Clone(st).(*wsfleetv1.RolloutStatus)
	}
	c.pools[pool] = rolloutEntry{head: head.GetRevision(), headTime: head.GetCreateTime().AsTime(), st: st}
}
