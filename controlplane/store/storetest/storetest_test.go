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
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReferenceStore proves the suite can be passed: memStore is the
// simplest Store that honours the contract.
func TestReferenceStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := &memStore{pools: map[string][]*wsfleetv1.PolicyRevision{}}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// memStore keeps clones of revisions in memory under one mutex.
type memStore struct {
	mu     sync.Mutex
	closed bool
	pools  map[string][]*wsfleetv1.PolicyRevision // index i holds revision i+1
}

var _ store.Store = (*memStore)(nil)

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
	revs := s.pools[pool]
	if revision < 1 || revision > int64(len(revs)) {
		return nil, fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
	}
	return clone(revs[revision-1]), nil
}

func (s *memStore) Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	head := int64(len(s.pools[rev.GetPool()]))
	if expected != store.AnyRevision && expected != head {
		return nil, &store.ConflictError{Pool: rev.GetPool(), Expected: expected, Current: head}
	}
	stored := clone(rev)
	stored.Revision = head + 1
	s.pools[rev.GetPool()] = append(s.pools[rev.GetPool()], stored)
	return clone(stored), nil
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
	top := int64(len(revs))
	if before > 0 && before-1 < top {
		top = before - 1
	}
	var out []*wsfleetv1.PolicyRevision
	for n := top; n >= 1 && len(out) < limit; n-- {
		out = append(out, clone(revs[n-1]))
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
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	return nil
}

func clone(r *wsfleetv1.PolicyRevision) *wsfleetv1.PolicyRevision {
	return proto.Clone(r).(*wsfleetv1.PolicyRevision)
}
