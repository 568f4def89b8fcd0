package registry

import (
	"context"
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
