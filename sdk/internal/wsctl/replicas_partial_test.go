package wsctl

import (
	"strings"
	"testing"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// A control plane with replicas answers for the whole fleet; when part of
// the fleet is missing from an answer, wsctl says so on stderr and keeps
// stdout what it always is.
func TestPartialAnswersAreSaid(t *testing.T) {
	lost := &wsfleetv1.ReplicaError{Replica: "cp-3.internal:7400", Error: "no answer within 2s"}
	t.Run("nodes list from a degraded replica", func(t *testing.T) {
		fx := newFleetFixture(t)
		fx.fleet.mu.Lock()
		fx.fleet.degraded = "cannot read the fleet's node status from etcd for 12s"
		fx.fleet.mu.Unlock()
		r := fx.run("nodes", "list")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "node-a", "node-b", "node-c")
		assertContains(t, "stderr", r.stderr, "may be incomplete or stale", "cannot read the fleet's node status from etcd")

		r = fx.run("nodes", "list", "-o", "json")
		r.want(t, 0)
		var resp wsfleetv1.ListNodesResponse
		parseJSON(t, r.stdout, &resp)
		assertContains(t, "json", resp.GetDegraded(), "etcd")
	})
	for _, args := range [][]string{{"errors", "top"}, {"errors", "tail"}, {"trace", "abc"}} {
		t.Run(strings.Join(args, " ")+" names a replica that did not answer", func(t *testing.T) {
			fx := newFleetFixture(t)
			fx.fleet.mu.Lock()
			fx.fleet.missing = []*wsfleetv1.ReplicaError{lost}
			fx.fleet.mu.Unlock()
			r := fx.run(args...)
			r.want(t, 0)
			assertContains(t, "stderr", r.stderr, "replica cp-3.internal:7400 did not answer (no answer within 2s)")
			if strings.Contains(r.stdout, "cp-3.internal") {
				t.Errorf("stdout names the replica:\n%s", r.stdout)
			}
		})
	}
	t.Run("a trace not found while a replica did not answer may be on it", func(t *testing.T) {
		fx := newFleetFixture(t)
		fx.fleet.mu.Lock()
		fx.fleet.missing = []*wsfleetv1.ReplicaError{lost}
		fx.fleet.mu.Unlock()
		r := fx.run("trace", "nowhere")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "did not answer", "from the control-plane replicas that answered")
	})
	t.Run("errors tail --follow says when a replica's events stop and resume", func(t *testing.T) {
		fx := newFleetFixture(t)
		fx.fleet.mu.Lock()
		fx.fleet.tailNews = []*wsfleetv1.TailEventsResponse{{ReplicaLost: lost}, {ReplicaBack: "cp-3.internal:7400"}}
		fx.fleet.mu.Unlock()
		r := fx.start("errors", "tail", "--follow", "--limit", "1", "--since", "1h")
		fx.waitTailing()
		r.waitFor("the backlog", func(out string) bool { return strings.Contains(out, "trace=") })
		fx.push(liveEvent("live-1"))
		r.waitFor("the live event", func(out string) bool { return strings.Contains(out, "trace=live-1") })
		if code := r.stop(); code != 0 {
			t.Errorf("exit code %d", code)
		}
		if n := len(lines(r.stdout.String())); n != 2 {
			t.Errorf("stdout has %d lines, want the backlog event and the live one:\n%s", n, r.stdout)
		}
		assertContains(t, "stderr", r.stderr.String(), "replica cp-3.internal:7400 did not answer", "replica cp-3.internal:7400 answers again")
	})
}
