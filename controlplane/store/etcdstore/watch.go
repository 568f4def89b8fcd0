package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/internal/headfeed"
)

// WatchHeads implements store.Store. It returns at once: the heads are
// read (and re-read while etcd is unreachable) by the watch's goroutine.
func (s *Store) WatchHeads(ctx context.Context) (<-chan *wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	s.watchMu.Lock()
	if s.closed.Load() {
		// Checked under the lock Close takes before it waits for the
		// watchers: a watch added after that would never be ended.
		s.watchMu.Unlock()
		return nil, store.ErrClosed
	}
	s.watchers.Add(1)
	s.watchMu.Unlock()

	f := headfeed.New()
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	go func() {
		defer s.watchers.Done()
		defer stop()
		defer cancel()
		var follow sync.WaitGroup
		follow.Go(func() { s.follow(wctx, f) })
		f.Run(wctx)
		follow.Wait()
		f.Close()
	}()
	return f.Out(), nil
}

// follow offers f every head: all of them first, then each one etcd's
// watch reports, resuming after every break until ctx ends.
func (s *Store) follow(ctx context.Context, f *headfeed.Feed) {
	log := s.cfg.Log.WithField("etcd_prefix", s.cfg.Prefix)
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     watchRetryMin,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         watchRetryMax,
	}
	retry.Reset()
	// A watcher of its own: etcd's client keeps a watch stream (and its
	// goroutines) open while its watcher lives, even with no watch left on
	// it, so the watch's end must close it to leave nothing behind.
	watcher := clientv3.NewWatcher(s.cli)
	defer watcher.Close()
	// after is the etcd revision every head change up to which has been
	// offered; 0 means the heads must be read (again).
	var after int64
	for ctx.Err() == nil {
		if after == 0 {
			heads, rev, err := s.heads(ctx, func(err error) {
				log.WithError(err).Error("a pool head in etcd cannot be read; not pushed")
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.WithError(err).Warn("cannot read the pools' heads from etcd; retrying")
				sleep(ctx, retry.NextBackOff())
				continue
			}
			for _, h := range heads {
				f.Offer(h)
			}
			after = rev
			retry.Reset()
		}
		next, err := s.watchFrom(ctx, watcher, f, after, log)
		if ctx.Err() != nil {
			return
		}
		if next > after {
			retry.Reset() // it worked for a while: this is a new break
		}
		entry := log.WithError(err).WithField("etcd_revision", next)
		if errors.Is(err, errCompacted) {
			entry.Warn("etcd compacted the revisions the watch of pool heads would resume from; re-reading every head")
			after = 0
		} else {
			entry.Warn("the etcd watch of pool heads ended; resuming")
			after = next
		}
		sleep(ctx, retry.NextBackOff())
	}
}

var errCompacted = errors.New("compacted")

// watchFrom follows etcd's watch of the heads from revision after+1,
// offering each new head to f, until the watch ends. It returns the
// revision up to which it offered every change, and why it ended.
func (s *Store) watchFrom(ctx context.Context, watcher clientv3.Watcher, f *headfeed.Feed, after int64, log logrus.FieldLogger) (int64, error) {
	// Its own context: leaving the loop below must end this watch in
	// etcd's client too. WithRequireLeader: a member cut off from the
	// cluster's leader ends the watch rather than keep it silently stale.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := watcher.Watch(wctx, s.headsDir, clientv3.WithPrefix(), clientv3.WithRev(after+1), clientv3.WithProgressNotify())
	defer func() {
		cancel()
		// etcd's client closes the channel once it has let go of the
		// watch (it does when its context is cancelled or the client is
		// closed): then the watch is over on our side, not just asked to
		// end.
		for range wch {
		}
	}()
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return after, fmt.Errorf("%w: revision %d is gone (compacted up to %d)", errCompacted, after+1, wr.CompactRevision)
		}
		if err := wr.Err(); err != nil {
			return after, err
		}
		if wr.IsProgressNotify() {
			// Every change up to the header's revision has been sent.
			after = max(after, wr.Header.GetRevision())
			continue
		}
		for _, ev := range wr.Events {
			after = max(after, ev.Kv.ModRevision)
			if ev.Type != mvccpb.PUT {
				// wsfleet never deletes a head; someone removed a key by
				// hand. Nodes keep what they run.
				log.WithField("key", clipKey(string(ev.Kv.Key))).Warn("a pool head was deleted from etcd; ignored")
				continue
			}
			pool := strings.TrimPrefix(string(ev.Kv.Key), s.headsDir)
			rev, err := s.decode(pool, 0, ev.Kv.Value)
			if err != nil {
				log.WithError(err).Error("a pool head in etcd cannot be read; not pushed")
				continue
			}
			f.Offer(rev)
		}
	}
	return after, errors.New("the watch channel closed")
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
