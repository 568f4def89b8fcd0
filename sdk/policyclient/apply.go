package policyclient

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// applyLoop takes the newest push and answers it, one at a time, until ctx
// ends. It is the only goroutine that calls Apply, writes the cache or
// sends ACKs and NACKs.
func (c *Client) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-c.slot:
			if p.stream.ctx.Err() != nil {
				continue
			}
			c.handle(p)
		}
	}
}

// handle validates, applies, caches and answers one push.
func (c *Client) handle(p push) {
	rev := p.resp.GetRevision()
	nonce := p.resp.GetNonce()
	log := c.log.WithFields(logrus.Fields{"revision": rev.GetRevision(), "policy_pool": rev.GetPool(), "nonce": nonce})
	if err := c.check(rev); err != nil {
		c.nack(p, log, fmt.Errorf("%w: %w", ErrInvalidPush, err))
		return
	}
	cur := c.applied.Load()
	if err := backwards(cur, rev); err != nil {
		// Never applied, whatever Apply would say: a control plane whose
		// store was reset must not roll the fleet back silently. The node
		// keeps serving what it runs; the control plane shows it as ahead.
		c.nack(p, log, err)
		return
	}
	if sameRevision(cur, rev) {
		if cur.GetStoreId() != rev.GetStoreId() {
			// The same revision re-issued by another store (a restored
			// backup, a store rebuilt with the same content): nothing to
			// apply, but the node now runs it as that store's, so later
			// hellos and comparisons name the store that issued it.
			c.adopt(rev, log)
		}
		// Pushed again (a stream that broke while it was being applied, a
		// control plane that forgot the hello): the node runs it already.
		log.Debug("policy already applied; acknowledging")
		c.ack(p, log)
		return
	}
	if err := c.cfg.Apply(rev); err != nil {
		c.nack(p, log, err)
		return
	}
	c.mu.Lock()
	c.status.LastApplyTime = time.Now()
	c.mu.Unlock()
	c.adopt(rev, log)
	log.Info("policy applied")
	c.ack(p, log)
}

// adopt makes rev the last good revision and caches it. The cache is
// written before the ACK: once the control plane records the node on this
// revision, a restart of the node resumes from it, store identity included.
func (c *Client) adopt(rev *wsfleetv1.PolicyRevision, log logrus.FieldLogger) {
	c.applied.Store(rev)
	c.mu.Lock()
	c.status.Revision = rev.GetRevision()
	c.status.Pool = rev.GetPool()
	c.status.StoreID = rev.GetStoreId()
	c.mu.Unlock()
	if c.cfg.CacheFile != "" {
		if err := writeCache(c.cfg.CacheFile, rev); err != nil {
			c.setError(err)
			log.WithError(err).Warn("policy applied but not cached; a restart before the next change starts without it")
		}
	}
}

// sameRevision: b is a, by pool, number and content. Content is compared
// too: two stores may issue the same number with different content, and
// backwards refuses that case before this is asked.
func sameRevision(a, b *wsfleetv1.PolicyRevision) bool {
	return a != nil && b != nil &&
		a.GetPool() == b.GetPool() && a.GetRevision() == b.GetRevision() &&
		proto.Equal(a.GetPolicy(), b.GetPolicy())
}

// backwards returns an error wrapping ErrBackwards when rev would take the
// node back from cur, the revision it runs: for the same pool, a lower
// number, or the same number with other content from another store (a
// store that was reset and has been written to since). Revision numbers
// only ever grow within a store, and a recovered revision is numbered
// above every revision the fleet reports, so a genuine change is never
// refused.
//
// Pools: a node runs its own pool's policy, or default's while its pool
// has none. Default's revision followed by the first one of the node's own
// pool is progress. The reverse, default's offered to a node that runs its
// own pool's, is refused: pools are never deleted, so the control plane
// offering default's means it lost the pool's policy.
func backwards(cur, rev *wsfleetv1.PolicyRevision) error {
	if cur == nil {
		return nil
	}
	var why string
	switch {
	case rev.GetPool() != cur.GetPool():
		if cur.GetPool() == policy.DefaultPool || rev.GetPool() != policy.DefaultPool {
			return nil
		}
		why = "the control plane has no policy for pool " + cur.GetPool()
	case rev.GetRevision() < cur.GetRevision():
	case rev.GetRevision() == cur.GetRevision() && rev.GetStoreId() != cur.GetStoreId() &&
		!proto.Equal(rev.GetPolicy(), cur.GetPolicy()):
		why = "same number, other content"
	default:
		return nil
	}
	err := fmt.Errorf("%w: running %s, offered %s", ErrBackwards, describe(cur), describe(rev))
	if why != "" {
		err = fmt.Errorf("%w (%s)", err, why)
	}
	return fmt.Errorf("%w; keeping %s@%d until the control plane recovers the pool's policy from the fleet (wsctl policy recover --pool %s)",
		err, cur.GetPool(), cur.GetRevision(), cur.GetPool())
}

// describe names a revision for a NACK text: "default@81 from store bolt-1a2b...".
func describe(rev *wsfleetv1.PolicyRevision) string {
	s := fmt.Sprintf("%s@%d", rev.GetPool(), rev.GetRevision())
	if id := rev.GetStoreId(); id != "" {
		return s + " from store " + id
	}
	return s + " from a store without identity"
}

func (c *Client) ack(p push, log logrus.FieldLogger) {
	req := &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Ack{Ack: &wsfleetv1.PolicyAck{Nonce: p.resp.GetNonce()}}}
	// Counted before Send and taken back if it fails, so that a Status read
	// by anyone who has seen the ACK arrive already counts it.
	c.count(&c.status.Acks, 1)
	if err := p.stream.stream.Send(req); err != nil {
		c.count(&c.status.Acks, -1)
		// The stream broke; the receive loop sees it and reconnects, and
		// the hello carries the revision this ACK was for.
		log.WithError(err).Debug("ACK not sent")
	}
}

// count adds delta to one of the status counters.
func (c *Client) count(counter *uint64, delta int) {
	c.mu.Lock()
	*counter += uint64(delta) // -1 wraps back: the counter was incremented first
	c.mu.Unlock()
}

func (c *Client) nack(p push, log logrus.FieldLogger, cause error) {
	// Valid UTF-8 whatever Apply put in its error (a quoted invalid
	// byte would make the NACK unmarshalable), cut on a rune boundary.
	text := clip.ValidString(cause.Error(), MaxNackBytes)
	c.mu.Lock()
	c.status.LastError = text
	c.status.LastErrorTime = time.Now()
	running := c.status.Revision
	c.mu.Unlock()
	log.WithError(cause).WithField("running_revision", running).Warn("policy refused (NACK); keeping the last good one")
	req := &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Nack{Nack: &wsfleetv1.PolicyNack{Nonce: p.resp.GetNonce(), Error: text}}}
	c.count(&c.status.Nacks, 1)
	if err := p.stream.stream.Send(req); err != nil {
		c.count(&c.status.Nacks, -1)
		log.WithError(err).Debug("NACK not sent")
	}
}
