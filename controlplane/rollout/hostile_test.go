package rollout

import (
	"context"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
)

// TestACanaryNodeWithOtherLabelsStillCountsAsTheCanary: node-a took the
// canary, then restarted from its cache with labels the selector no longer
// matches. It still runs the canary revision (it cannot go back to the
// base), so its events are the canary's: counted against the rest they
// would hide the canary's harm and make the rest look worse.
func TestACanaryNodeWithOtherLabelsStillCountsAsTheCanary(t *testing.T) {
	f := newFixture(t)
	moved := func(context.Context, string) ([]*wsfleetv1.NodeStatus, error) {
		return []*wsfleetv1.NodeStatus{
			{NodeId: "node-a", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}, AppliedPool: "default", AppliedRevision: 2},
			{NodeId: "node-b1", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}, AppliedPool: "default", AppliedRevision: 1},
			{NodeId: "node-b2", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}, AppliedPool: "default", AppliedRevision: 1},
		}, nil
	}
	f.events.onCanary = counts{"node-a": {originRejected: 20}}
	f.events.all = counts{"node-a": {originRejected: 20}, "node-b1": {originRejected: 1}}
	f.clk.Set(f.start.Add(30 * time.Second))
	logger, _ := logtest.NewNullLogger()
	e, err := New(Config{Heads: f.st.Pools, Nodes: moved, Events: f.events, Ender: f.srv, Context: policyserver.SystemContext, Log: logger, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.Tick(context.Background())
	head := f.head(t)
	o := head.GetRolloutOutcome()
	if head.GetRevision() != 3 || o.GetResult() != wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK {
		t.Fatalf("head %d outcome %v, want the canary rolled back", head.GetRevision(), o)
	}
	if want := "origin_rejected 40.0/min per canary node vs 1.0/min elsewhere (20 events)"; o.GetReason() != want {
		t.Errorf("reason %q, want %q", o.GetReason(), want)
	}
}
