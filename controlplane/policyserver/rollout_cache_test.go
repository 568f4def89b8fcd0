package policyserver

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// countingStore counts the revisions read through it, and can be switched
// to another store underneath (a store reset: another identity behind the
// same server).
type countingStore struct {
	store.Store // writes go to the first store
	cur         atomic.Pointer[store.Store]
	reads       atomic.Int64
	// stamp, when set, is the store id every revision read carries, as
	// an etcd store replaced under a running control plane reads.
	stamp atomic.Pointer[string]
}

func (c *countingStore) stamped(r *wsfleetv1.PolicyRevision) *wsfleetv1.PolicyRevision {
	if id := c.stamp.Load(); id != nil && r != nil {
		r.StoreId = *id
	}
	return r
}

func newCountingStore(st store.Store) *countingStore {
	c := &countingStore{Store: st}
	c.cur.Store(&st)
	return c
}

func (c *countingStore) use(st store.Store) { c.cur.Store(&st) }

func (c *countingStore) Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error) {
	r, err := (*c.cur.Load()).Head(ctx, pool)
	if err == nil {
		c.reads.Add(1)
	}
	return c.stamped(r), err
}

func (c *countingStore) Get(ctx context.Context, pool string, n int64) (*wsfleetv1.PolicyRevision, error) {
	r, err := (*c.cur.Load()).Get(ctx, pool, n)
	if err == nil {
		c.reads.Add(1)
	}
	return r, err
}

func (c *countingStore) History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error) {
	rs, err := (*c.cur.Load()).History(ctx, pool, before, limit)
	c.reads.Add(int64(len(rs)))
	for _, r := range rs {
		c.stamped(r)
	}
	return rs, err
}

func (c *countingStore) Pools(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error) {
	rs, err := (*c.cur.Load()).Pools(ctx)
	c.reads.Add(int64(len(rs)))
	return rs, err
}

func (c *countingStore) ID() string { return (*c.cur.Load()).ID() }

func openBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// applyPlain stores n revisions without a rollout through srv.
func applyPlain(t *testing.T, srv *Server, n int) {
	t.Helper()
	for i := range n {
		p := stagingPolicy()
		p.Origins.Allow = []string{fmt.Sprintf("https://s%d.example.com", i)}
		if _, err := srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
}

// poll is one GetRollout and the revisions it read.
func poll(t *testing.T, srv *Server, cs *countingStore) (*wsfleetv1.RolloutStatus, int64, error) {
	t.Helper()
	before := cs.reads.Load()
	resp, err := srv.GetRollout(as("viewer"), &wsfleetv1.GetRolloutRequest{})
	return resp.GetRollout(), cs.reads.Load() - before, err
}

func TestGetRolloutRescansOnlyWhenTheHeadChanges(t *testing.T) {
	cs := newCountingStore(openBolt(t))
	logger, _ := logtest.NewNullLogger()
	srv, err := New(Config{Store: cs, Log: logger, Registerer: prometheus.NewRegistry(), Nodes: zoneNodes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy())); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PromoteRollout(as("bob"), &wsfleetv1.PromoteRolloutRequest{CanaryRevision: 2}); err != nil {
		t.Fatal(err)
	}
	const plain = 20 // revisions 4..23 after the rollout: a scan reads them all
	applyPlain(t, srv, plain)

	first, reads, err := poll(t, srv, cs)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_PROMOTED || first.GetCanaryRevision() != 2 || first.GetEndingRevision() != 3 {
		t.Fatalf("first poll: %v", first)
	}
	if reads <= plain {
		t.Fatalf("the first poll read %d revisions, want a scan past the %d after the rollout", reads, plain)
	}
	for i := range 3 {
		got, reads, err := poll(t, srv, cs)
		if err != nil {
			t.Fatal(err)
		}
		if reads > 3 {
			t.Errorf("poll %d with an unchanged head read %d revisions, want at most 3", i+2, reads)
		}
		if !proto.Equal(got, first) {
			t.Errorf("poll %d with an unchanged head: %v, want %v", i+2, got, first)
		}
	}

	t.Run("a new head is scanned again", func(t *testing.T) {
		applyPlain(t, srv, 1)
		got, reads, err := poll(t, srv, cs)
		if err != nil {
			t.Fatal(err)
		}
		if reads <= plain || got.GetEndingRevision() != 3 {
			t.Fatalf("poll after a new head read %d revisions, found %v; want a scan that finds ending revision 3", reads, got)
		}
		if _, err := srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy())); err != nil {
			t.Fatal(err)
		}
		got, _, err = poll(t, srv, cs)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING || got.GetCanaryRevision() != 25 || len(got.GetNodes()) != 4 {
			t.Fatalf("poll after a new canary: %v, want canary 25 baking with its nodes", got)
		}
		// The live nodes are not remembered with the rest.
		again, reads, err := poll(t, srv, cs)
		if err != nil || reads > 3 || len(again.GetNodes()) != 4 {
			t.Fatalf("second poll of the baking canary: %d nodes, %d revisions read, %v", len(again.GetNodes()), reads, err)
		}
	})

	for _, sameID := range []bool{false, true} {
		name := "an answer from another store identity is not used"
		if sameID {
			name = "an answer from a store replaced under the same identity is not used"
		}
		t.Run(name, func(t *testing.T) {
			cs.use(cs.Store)
			cs.stamp.Store(nil)
			if _, _, err := poll(t, srv, cs); err != nil {
				t.Fatal(err)
			}
			// Another store at the same head revision, without a rollout.
			other := openBolt(t)
			osrv, err := New(Config{Store: other, Log: logger})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := osrv.Bootstrap(context.Background()); err != nil {
				t.Fatal(err)
			}
			head, err := cs.Head(t.Context(), "default")
			if err != nil {
				t.Fatal(err)
			}
			applyPlain(t, osrv, int(head.GetRevision())-1)
			if oh, err := other.Head(t.Context(), "default"); err != nil || oh.GetRevision() != head.GetRevision() {
				t.Fatalf("the other store's head: %v %v, want revision %d", oh, err, head.GetRevision())
			}
			if sameID {
				id := cs.Store.ID()
				cs.stamp.Store(&id)
			}
			cs.use(other)
			got, _, err := poll(t, srv, cs)
			if status.Code(err) != codes.NotFound {
				t.Fatalf("poll after the store was replaced: %v, %v; want NotFound (the new store has no rollout)", got, err)
			}
		})
	}
}
