package storetest_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/internal/headfeed"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReferenceStore proves the suite can be passed: memStore is the
// simplest Store that honours the contract.
func TestReferenceStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newMemStore()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// memStore keeps clones of revisions in memory under one mutex. A pool's
// revisions are oldest first; numbers may have gaps (a recovery's jump).
// Each watch is a feed offered every append, with one goroutine.
type memStore struct {
	mu       sync.Mutex
	closed   bool
	pools    map[string][]*wsfleetv1.PolicyRevision
	props    memProposals
	feeds    map[*headfeed.Feed]struct{}
	closing  context.Context
	endAll   context.CancelFunc
	watchers sync.WaitGroup
}

func newMemStore() *memStore {
	s := &memStore{pools: map[string][]*wsfleetv1.PolicyRevision{}, feeds: map[*headfeed.Feed]struct{}{}}
	s.closing, s.endAll = context.WithCancel(context.Background())
	return s
}

var _ store.Store = (*memStore)(nil)

func (s *memStore) ID() string { return "mem-1" }

func (s *memStore) enter(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

func (s *memStore) Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	revs := s.pools[pool]
	if len(revs) == 0 {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	return clone(revs[len(revs)-1]), nil
}

func (s *memStore) Get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	for _, r := range s.pools[pool] {
		if r.GetRevision() == revision {
			return clone(r), nil
		}
	}
	return nil, fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
}

func (s *memStore) Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	return s.appendLocked(rev, expected)
}

// appendLocked is Append with s.mu held.
func (s *memStore) appendLocked(rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	var head int64
	if revs := s.pools[rev.GetPool()]; len(revs) > 0 {
		head = revs[len(revs)-1].GetRevision()
	}
	if expected != store.AnyRevision && expected != head {
		return nil, &store.ConflictError{Pool: rev.GetPool(), Expected: expected, Current: head}
	}
	stored := clone(rev)
	stored.Revision = max(head+1, rev.GetRevision())
	stored.StoreId = s.ID()
	s.pools[rev.GetPool()] = append(s.pools[rev.GetPool()], stored)
	for f := range s.feeds {
		f.Offer(clone(stored))
	}
	return clone(stored), nil
}

func (s *memStore) WatchHeads(ctx context.Context) (<-chan *wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	f := headfeed.New()
	for _, revs := range s.pools {
		f.Offer(clone(revs[len(revs)-1]))
	}
	s.feeds[f] = struct{}{}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	s.watchers.Go(func() {
		defer stop()
		defer cancel()
		f.Run(wctx)
		s.mu.Lock()
		delete(s.feeds, f)
		s.mu.Unlock()
		f.Close()
	})
	return f.Out(), nil
}

func (s *memStore) History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	revs := s.pools[pool]
	if len(revs) == 0 {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	var out []*wsfleetv1.PolicyRevision
	for i := len(revs) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if before > 0 && revs[i].GetRevision() >= before {
			continue
		}
		out = append(out, clone(revs[i]))
	}
	return out, nil
}

func (s *memStore) Pools(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(s.pools))
	for name := range s.pools {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*wsfleetv1.PolicyRevision, 0, len(names))
	for _, name := range names {
		revs := s.pools[name]
		out = append(out, clone(revs[len(revs)-1]))
	}
	return out, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.endAll()
	s.mu.Unlock()
	s.watchers.Wait()
	return nil
}

func clone(r *wsfleetv1.PolicyRevision) *wsfleetv1.PolicyRevision {
	return proto.Clone(r).(*wsfleetv1.PolicyRevision)
}
