package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// TestACanaryNodeThatComesBackWithOtherLabelsKeepsTheCanary: a canary
// node restarted from its cache with labels the selector no longer
// matches runs the canary revision; its base is a lower number the node
// refuses as going backwards, so it is pushed nothing (no NACK) until the
// revision that ends the rollout, which it takes like every node. A node
// the selector does not match that runs something else still gets the
// base.
func TestACanaryNodeThatComesBackWithOtherLabelsKeepsTheCanary(t *testing.T) {
	base := rev("default", 1)
	canary := canaryRev("default", 2, "zone=a", 1)
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{canary}, Revision: storeOf(base, canary)})

	moved := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-a", Labels: map[string]string{"zone": "b"}, Running: canary})
	other := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-b", Labels: map[string]string{"zone": "b"}, Running: base})
	fresh := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-c", Labels: map[string]string{"zone": "b"}})

	t.Run("the node running the canary is pushed nothing", func(t *testing.T) {
		moved.none(500 * time.Millisecond)
	})
	t.Run("a node running the base keeps it", func(t *testing.T) {
		other.none(100 * time.Millisecond)
	})
	t.Run("a new node outside the canary gets the base", func(t *testing.T) {
		if m := fresh.next(2 * time.Second); m.GetRevision().GetRevision() != 1 {
			t.Fatalf("push %v", m)
		}
	})
	t.Run("ListNodes shows the canary as the moved node's head", func(t *testing.T) {
		resp, err := f.r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"node-a": 2, "node-b": 1, "node-c": 1}
		for _, n := range resp.GetNodes() {
			if n.GetHeadRevision() != want[n.GetNodeId()] || n.GetLastNackError() != "" {
				t.Errorf("%s head_revision %d (nack %q), want %d and no NACK", n.GetNodeId(), n.GetHeadRevision(), n.GetLastNackError(), want[n.GetNodeId()])
			}
		}
	})
	t.Run("the ending revision reaches it", func(t *testing.T) {
		end := rev("default", 3)
		end.RolloutOutcome = &wsfleetv1.RolloutOutcome{CanaryRevision: 2, Result: wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK}
		f.r.advance(end)
		for _, n := range []*fakeNode{moved, other} {
			if m := n.next(2 * time.Second); m.GetRevision().GetRevision() != 3 {
				t.Fatalf("push %v", m)
			}
		}
	})
}

// TestACanaryBaseThatFailedToReadIsReadAgain: the store failed the read
// of the canary's base when the head arrived (briefly unreachable). The
// nodes outside the canary are not left without it for the whole bake:
// the read is tried again while they wait, and once it succeeds they get
// the base, the one that waited since before and one connecting later.
func TestACanaryBaseThatFailedToReadIsReadAgain(t *testing.T) {
	base := rev("default", 1)
	canary := canaryRev("default", 2, "zone=a", 1)
	var mu sync.Mutex
	failures := 2
	read := storeOf(base, canary)
	flaky := func(ctx context.Context, pool string, n int64) (*wsfleetv1.PolicyRevision, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return nil, errors.New("etcdserver: request timed out")
		}
		return read(ctx, pool, n)
	}
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{canary}, Revision: flaky, BaseRetry: 200 * time.Millisecond})
	b := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-b", Labels: map[string]string{"zone": "b"}})
	if m := b.next(10 * time.Second); m.GetRevision().GetRevision() != 1 {
		t.Fatalf("push %v, want the base", m)
	}
	c := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-c", Labels: map[string]string{"zone": "c"}})
	if m := c.next(2 * time.Second); m.GetRevision().GetRevision() != 1 {
		t.Fatalf("push %v, want the base", m)
	}
	a := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-a", Labels: map[string]string{"zone": "a"}})
	if m := a.next(2 * time.Second); m.GetRevision().GetRevision() != 2 {
		t.Fatalf("push %v, want the canary", m)
	}
}
