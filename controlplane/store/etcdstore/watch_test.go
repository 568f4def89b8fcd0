package etcdstore_test

import (
	"context"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func nextHead(t *testing.T, ch <-chan *wsfleetv1.PolicyRevision) *wsfleetv1.PolicyRevision {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("the watch ended")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no head within 10s")
	}
	return nil
}

// TestTheWatchPushesEveryPoolItCanRead: a head someone damaged or deleted
// in etcd by hand is logged and left out; every other pool's heads keep
// coming.
func TestTheWatchPushesEveryPoolItCanRead(t *testing.T) {
	e := etcdtest.Start(t, nil)
	s := openStore(t, e.Endpoint, "")
	for _, pool := range []string{"a", "b"} {
		if _, err := s.Append(t.Context(), storetest.Revision(pool, "first"), 0); err != nil {
			t.Fatal(err)
		}
	}
	cli := e.Client(t)
	put(t, cli, etcdstore.DefaultPrefix+"heads/broken", "\xff not a revision")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := s.WatchHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for range 2 {
		r := nextHead(t, ch)
		got[r.GetPool()] = r.GetRevision()
	}
	if got["a"] != 1 || got["b"] != 1 {
		t.Fatalf("first heads %v, want a@1 and b@1", got)
	}

	put(t, cli, etcdstore.DefaultPrefix+"heads/broken", "\xfe still not one")
	delCtx, delCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer delCancel()
	if _, err := cli.Delete(delCtx, etcdstore.DefaultPrefix+"heads/b"); err != nil {
		t.Fatal(err)
	}
	next, err := s.Append(t.Context(), storetest.Revision("a", "second"), store.AnyRevision)
	if err != nil {
		t.Fatal(err)
	}
	if r := nextHead(t, ch); r.GetPool() != "a" || r.GetRevision() != next.GetRevision() {
		t.Fatalf("after a damaged and a deleted head: delivered %s@%d, want a@%d", r.GetPool(), r.GetRevision(), next.GetRevision())
	}
}
