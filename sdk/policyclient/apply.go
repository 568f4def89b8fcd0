package policyclient

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

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
	if cur := c.applied.Load(); sameRevision(cur, rev) {
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
	c.applied.Store(rev)
	c.mu.Lock()
	c.status.Revision = rev.GetRevision()
	c.status.Pool = rev.GetPool()
	c.status.LastApplyTime = time.Now()
	c.mu.Unlock()
	log.Info("policy applied")
	// The cache is written before the ACK: once the control plane records
	// the node on this revision, a restart of the node resumes from it.
	if c.cfg.CacheFile != "" {
		if err := writeCache(c.cfg.CacheFile, rev); err != nil {
			c.setError(err)
			log.WithError(err).Warn("policy applied but not cached; a restart before the next change starts without it")
		}
	}
	c.ack(p, log)
}

// sameRevision: b is a, by pool, number and content. Content is compared
// too because a control plane whose store was wiped numbers again from 1.
func sameRevision(a, b *wsfleetv1.PolicyRevision) bool {
	return a != nil && b != nil &&
		a.GetPool() == b.GetPool() && a.GetRevision() == b.GetRevision() &&
		proto.Equal(a.GetPolicy(), b.GetPolicy())
}

func (c *Client) ack(p push, log logrus.FieldLogger) {
	req := &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Ack{Ack: &wsfleetv1.PolicyAck{Nonce: p.resp.GetNonce()}}}
	if err := p.stream.stream.Send(req); err != nil {
		// The stream broke; the receive loop sees it and reconnects, and
		// the hello carries the revision this ACK was for.
		log.WithError(err).Debug("ACK not sent")
		return
	}
	c.mu.Lock()
	c.status.Acks++
	c.mu.Unlock()
}

func (c *Client) nack(p push, log logrus.FieldLogger, cause error) {
	text := truncate(cause.Error(), MaxNackBytes)
	c.mu.Lock()
	c.status.LastError = text
	c.status.LastErrorTime = time.Now()
	running := c.status.Revision
	c.mu.Unlock()
	log.WithError(cause).WithField("running_revision", running).Warn("policy refused (NACK); keeping the last good one")
	req := &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Nack{Nack: &wsfleetv1.PolicyNack{Nonce: p.resp.GetNonce(), Error: text}}}
	if err := p.stream.stream.Send(req); err != nil {
		log.WithError(err).Debug("NACK not sent")
		return
	}
	c.mu.Lock()
	c.status.Nacks++
	c.mu.Unlock()
}

// truncatedMark ends a NACK text that was cut.
const truncatedMark = " ... (truncated)"

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len(truncatedMark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}
