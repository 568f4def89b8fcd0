// Package etcdmirror keeps a process's copy of a range of etcd keys: it
// reads the range (in pages, all at one etcd revision) and then follows
// etcd's watch of the range from that revision, so that no change is
// missed between the two. The replicas' membership and the node status
// they share (packages replicas and registry/etcdstatus) are copies of
// this kind.
//
// etcd's client resumes a broken watch stream by itself from the last
// revision it delivered. When the watch ends anyway (etcd lost its leader,
// or compacted the revisions the watch would resume from), Run resumes it
// from the last revision it saw, and after a compaction reads the whole
// range again. Reads are retried with exponential backoff (at most
// retryMax apart) while etcd is unreachable; Run returns only when its
// context ends.
//
// Goroutines: Run runs in its caller's goroutine and calls the Handler
// from it, one call at a time; it leaves nothing running when it returns
// (its watcher is closed). A Handler must not block for long: the watch's
// events wait meanwhile.
package etcdmirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// pageSize is how many keys one read of the range returns at most.
	pageSize = 1000
	// Reads of the range while etcd is unreachable back off from retryMin
	// to retryMax between attempts.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// Handler receives the copy's changes, from Run's goroutine.
type Handler interface {
	// Reset says a read of the whole range begins: every key follows
	// through Put, then Synced.
	Reset()
	// Put is a key as read, or as changed later.
	Put(kv *mvccpb.KeyValue)
	// Delete is a key deleted (by hand, or by etcd when its lease
	// expired).
	Delete(key []byte)
	// Synced ends a read of the whole range: a key held since before
	// Reset and not Put since is gone.
	Synced()
	// Broken says the copy may be stale from now on, and why: reading the
	// range or watching it failed. Synced or Resumed ends that.
	Broken(err error)
	// Resumed says the watch runs again after Broken, without a new read:
	// nothing was missed.
	Resumed()
}

// Config is a range to mirror.
type Config struct {
	Client *clientv3.Client
	// Key and End delimit the range [Key, End).
	Key, End string
	// RequestTimeout bounds each read.
	RequestTimeout time.Duration
	// What names the range in log lines ("the replicas", ...).
	What string
	Log  logrus.FieldLogger
}

var errCompacted = errors.New("compacted")

// Run mirrors cfg's range into h until ctx ends.
func Run(ctx context.Context, cfg Config, h Handler) {
	log := cfg.Log.WithField("mirror", cfg.What)
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     retryMin,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         retryMax,
	}
	retry.Reset()
	// A watcher of its own: etcd's client keeps a watch stream (and its
	// goroutines) open while its watcher lives, so Run's end must close it.
	watcher := clientv3.NewWatcher(cfg.Client)
	defer watcher.Close()
	// after is the etcd revision every change up to which has been handed
	// to h; 0 means the range must be read (again).
	var after int64
	broken := false
	for ctx.Err() == nil {
		if after == 0 {
			rev, err := read(ctx, cfg, h)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if !broken {
					h.Broken(err)
					broken = true
				}
				log.WithError(err).Warn("cannot read from etcd; retrying")
				sleep(ctx, retry.NextBackOff())
				continue
			}
			h.Synced()
			broken = false
			after = rev
			retry.Reset()
		}
		next, err := watchFrom(ctx, cfg, watcher, h, after, func() {
			if broken {
				h.Resumed()
				broken = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		if next > after {
			retry.Reset() // it worked for a while: this is a new break
		}
		if !broken {
			h.Broken(err)
			broken = true
		}
		entry := log.WithError(err).WithField("etcd_revision", next)
		if errors.Is(err, errCompacted) {
			entry.Warn("etcd compacted the revisions the watch would resume from; reading everything again")
			after = 0
		} else {
			entry.Warn("the etcd watch ended; resuming")
			after = next
		}
		sleep(ctx, retry.NextBackOff())
	}
}

// read hands h every key of the range, in pages at one etcd revision, and
// returns that revision.
func read(ctx context.Context, cfg Config, h Handler) (int64, error) {
	key := cfg.Key
	var rev int64
	reset := false
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(cfg.End), clientv3.WithLimit(pageSize), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		resp, err := cfg.Client.Get(cctx, key, opts...)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return 0, fmt.Errorf("no answer from etcd within %s", cfg.RequestTimeout)
			}
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.GetRevision()
		}
		if !reset {
			h.Reset()
			reset = true
		}
		for _, kv := range resp.Kvs {
			h.Put(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// watchFrom follows etcd's watch of the range from revision after+1,
// handing each change to h, until the watch ends. It calls created once
// etcd has made the watch. It returns the revision up to which it handed
// every change, and why it ended.
func watchFrom(ctx context.Context, cfg Config, watcher clientv3.Watcher, h Handler, after int64, created func()) (int64, error) {
	// Its own context: leaving the loop below must end this watch in
	// etcd's client too. WithRequireLeader: a member cut off from the
	// cluster's leader ends the watch rather than keep it silently stale.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := watcher.Watch(wctx, cfg.Key, clientv3.WithRange(cfg.End), clientv3.WithRev(after+1),
		clientv3.WithCreatedNotify(), clientv3.WithProgressNotify())
	defer func() {
		cancel()
		// etcd's client closes the channel once it has let go of the watch.
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
		if wr.Created {
			created()
			continue
		}
		if wr.IsProgressNotify() {
			after = max(after, wr.Header.GetRevision())
			continue
		}
		for _, ev := range wr.Events {
			after = max(after, ev.Kv.ModRevision)
			if ev.Type == mvccpb.DELETE {
				h.Delete(ev.Kv.Key)
			} else {
				h.Put(ev.Kv)
			}
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
