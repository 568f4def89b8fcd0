package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// canaryRev is revision n of pool baking as a canary for selector over
// base.
func canaryRev(pool string, n int64, selector string, base int64) *wsfleetv1.PolicyRevision {
	r := rev(pool, n)
	r.Rollout = &wsfleetv1.RolloutSpec{Selector: selector, BaseRevision: base, Bake: durationpb.New(time.Minute)}
	return r
}

// storeOf reads revisions from a fixed set, as Config.Revision reads the
// store.
func storeOf(revs ...*wsfleetv1.PolicyRevision) func(context.Context, string, int64) (*wsfleetv1.PolicyRevision, error) {
	return func(_ context.Context, pool string, n int64) (*wsfleetv1.PolicyRevision, error) {
		for _, r := range revs {
			if r.GetPool() == pool && r.GetRevision() == n {
				return r, nil
			}
		}
		return nil, errors.New("not found")
	}
}

// TestABakingCanaryIsPushedOnlyToTheNodesItsSelectorMatches: while the
// head is a canary, matching nodes of its pool get it; the other nodes of
// the pool, nodes falling back to it, and nodes connecting during the
// bake get or keep the base; the ending revision goes to every node.
func TestABakingCanaryIsPushedOnlyToTheNodesItsSelectorMatches(t *testing.T) {
	base := rev("default", 1)
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{base}, Revision: storeOf(base)})
	a := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-a", Labels: map[string]string{"zone": "a"}})
	b := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-b", Labels: map[string]string{"zone": "b"}})
	eu := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-eu", Pool: "eu", Labels: map[string]string{"zone": "a"}})
	for _, n := range []*fakeNode{a, b, eu} {
		m := n.next(2 * time.Second)
		if m.GetRevision().GetRevision() != 1 {
			t.Fatalf("first push %v", m)
		}
		n.ack(m)
	}
	eventually(t, "acks of 1", func() bool { return status1(t, f.r, "node-eu").GetAppliedRevision() == 1 })
	f.r.advance(canaryRev("default", 2, "zone=a", 1))

	t.Run("a matching node of the pool gets the canary", func(t *testing.T) {
		if m := a.next(2 * time.Second); m.GetRevision().GetRevision() != 2 {
			t.Fatalf("push %v", m)
		}
	})
	t.Run("a node the selector does not match keeps the base", func(t *testing.T) {
		b.none(300 * time.Millisecond)
	})
	t.Run("a node falling back to the pool keeps the base even when it matches", func(t *testing.T) {
		eu.none(300 * time.Millisecond)
	})
	t.Run("a node connecting during the bake gets the base", func(t *testing.T) {
		b2 := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-b2", Labels: map[string]string{"zone": "b"}})
		if m := b2.next(2 * time.Second); m.GetRevision().GetRevision() != 1 {
			t.Fatalf("push %v", m)
		}
		a2 := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-a2", Labels: map[string]string{"zone": "a"}})
		if m := a2.next(2 * time.Second); m.GetRevision().GetRevision() != 2 {
			t.Fatalf("push %v", m)
		}
	})
	t.Run("ListNodes shows what each node should run as its head", func(t *testing.T) {
		resp, err := f.r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"node-a": 2, "node-a2": 2, "node-b": 1, "node-b2": 1, "node-eu": 1}
		for _, n := range resp.GetNodes() {
			if n.GetHeadRevision() != want[n.GetNodeId()] {
				t.Errorf("%s head_revision %d, want %d", n.GetNodeId(), n.GetHeadRevision(), want[n.GetNodeId()])
			}
		}
	})
	t.Run("the ending revision reaches every node", func(t *testing.T) {
		end := rev("default", 3)
		end.RolloutOutcome = &wsfleetv1.RolloutOutcome{CanaryRevision: 2, Result: wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK}
		f.r.advance(end)
		for _, n := range []*fakeNode{a, b, eu} {
			if m := n.next(2 * time.Second); m.GetRevision().GetRevision() != 3 {
				t.Fatalf("push %v", m)
			}
		}
	})
}

// TestACanaryWhoseBaseCannotBeReadPushesNothingElsewhere: the nodes
// outside the canary must never be pushed the canary; without its base
// they are pushed nothing until the rollout ends.
func TestACanaryWhoseBaseCannotBeReadPushesNothingElsewhere(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{canaryRev("default", 2, "zone=a", 1)}, Revision: storeOf()})
	b := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-b", Labels: map[string]string{"zone": "b"}})
	b.none(300 * time.Millisecond)
	a := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "node-a", Labels: map[string]string{"zone": "a"}})
	if m := a.next(2 * time.Second); m.GetRevision().GetRevision() != 2 {
		t.Fatalf("push %v", m)
	}
}
