package controlplane

// Rollouts against an unlucky operator: the control plane SIGKILLed in the
// middle of a bake (alone, or one of two replicas), a canary node
// restarted with other labels. Real
// wsfleet-control, wsfleet-node and wsctl processes on loopback.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// rolloutFleet is one control plane (fixed address and data directory, so
// it can be killed and started again where the nodes look for it) and
// three nodes: node-a in zone a, node-b1 and node-b2 in zone b, every one
// on revision 2, which allows app.
type rolloutFleet struct {
	// top owns the processes: one started in a subtest outlives it.
	top             *testing.T
	addr, data, dir string
	cp              *controlProc
	nodes           map[string]*nodeProc
}

const rolloutApp = "https://app.example.com"

func startRolloutFleet(t *testing.T) *rolloutFleet {
	t.Helper()
	f := &rolloutFleet{top: t, addr: freeAddr(t), data: t.TempDir(), dir: t.TempDir(), nodes: map[string]*nodeProc{}}
	f.restartControl()
	for id, zone := range map[string]string{"node-a": "a", "node-b1": "b", "node-b2": "b"} {
		f.nodes[id] = f.startNode(t, id, zone)
	}
	mustWsctl(t, f.addr, "", "policy", "apply", "-f", policyFile(t, f.dir, "base.yaml", 65536, rolloutApp), "-m", "allow app")
	f.waitOn(t, 2, "node-a", "node-b1", "node-b2")
	return f
}

func (f *rolloutFleet) restartControl() {
	f.top.Helper()
	f.cp = startControl(f.top, f.data, "--dev", "--grpc-addr", f.addr, "--rollout-interval", "1s")
}

func (f *rolloutFleet) startNode(t *testing.T, id, zone string, more ...string) *nodeProc {
	t.Helper()
	return startNodeProc(t, append([]string{"--control", f.addr, "--node-id", id, "--label", "zone=" + zone,
		"--cache-file", filepath.Join(f.dir, id+".json"), "--fold-window", "2s",
		// Back within a few seconds of a control-plane restart.
		"--control-backoff-min", "200ms", "--control-backoff-max", "2s"}, more...)...)
}

func (f *rolloutFleet) waitOn(t *testing.T, rev int64, ids ...string) {
	t.Helper()
	waitFor(t, 30*time.Second, "nodes on the revision", func() bool {
		list := nodesList(t, f.addr)
		for _, id := range ids {
			if n := list[id]; !n.Connected || n.AppliedRevision != rev {
				return false
			}
		}
		return true
	})
}

// neverRan fails the test if a zone b node's log names rev: it was never
// to run the canary.
func (f *rolloutFleet) neverRan(t *testing.T, rev int64) {
	t.Helper()
	for _, id := range []string{"node-b1", "node-b2"} {
		if seen := appliedRevisions(t, f.nodes[id]); seen[rev] {
			t.Errorf("%s's log names the canary revision %d: %v", id, rev, seen)
		}
	}
}

// TestARolloutSurvivesTheControlPlaneKilledMidBake: the rollout lives in
// the store, so a control plane SIGKILLed during a bake and started again
// carries on: a harmless canary is promoted once the bake, counted from
// the canary's store time and not from the restart, has passed; a harmful
// one is still rolled back within its bake on the evidence the nodes
// report to the new process. The zone b nodes never run either canary.
func TestARolloutSurvivesTheControlPlaneKilledMidBake(t *testing.T) {
	f := startRolloutFleet(t)

	t.Run("a harmless canary is promoted after its bake counted from its store time", func(t *testing.T) {
		harmless := policyFile(t, f.dir, "harmless.yaml", 65536, rolloutApp, "https://new.example.com")
		applied := time.Now()
		mustWsctl(t, f.addr, "", "policy", "apply", "-f", harmless, "--canary", "zone=a", "--bake", "12s", "-m", "allow new too")
		f.waitOn(t, 3, "node-a")
		// Kill late in the bake: promoted 12s after the restart would be
		// the bake counted again from the restart.
		time.Sleep(time.Until(applied.Add(8 * time.Second)))
		f.cp.kill()
		f.restartControl()
		restarted := time.Now()
		var st rolloutJSON
		waitFor(t, 30*time.Second, "the canary promoted", func() bool {
			st = rolloutStatus(t, f.addr)
			return st.State == "ROLLOUT_STATE_PROMOTED"
		})
		if took := time.Since(applied); took < 12*time.Second {
			t.Errorf("promoted %s after the apply, before its 12s bake", took)
		}
		if since := time.Since(restarted); since >= 10*time.Second {
			t.Errorf("promoted %s after the restart: the bake was counted from the restart, not from the canary's store time", since)
		}
		if !st.Outcome.Automatic || st.EndingRevision != 4 {
			t.Fatalf("outcome %+v", st)
		}
		f.waitOn(t, 4, "node-a", "node-b1", "node-b2")
		f.neverRan(t, 3)
	})

	t.Run("a harmful canary is still rolled back within its bake", func(t *testing.T) {
		tr := startTraffic(rolloutApp, f.nodes)
		defer tr.halt()
		drop := policyFile(t, f.dir, "drop.yaml", 65536, "https://other.example.com")
		applied := time.Now()
		mustWsctl(t, f.addr, "", "policy", "apply", "-f", drop, "--canary", "zone=a", "--bake", "40s", "-m", "drop app")
		f.waitOn(t, 5, "node-a")
		// Before any decision could be made: the rejections reach the
		// control plane after the 2s fold window.
		f.cp.kill()
		f.restartControl()
		var st rolloutJSON
		waitFor(t, 35*time.Second, "the canary rolled back", func() bool {
			st = rolloutStatus(t, f.addr)
			return st.State != "ROLLOUT_STATE_BAKING"
		})
		if st.State != "ROLLOUT_STATE_ROLLED_BACK" || !st.Outcome.Automatic || st.EndingRevision != 6 || !strings.HasPrefix(st.Outcome.Reason, "origin_rejected ") {
			t.Fatalf("outcome %+v", st)
		}
		if took := time.Since(applied); took >= 40*time.Second {
			t.Errorf("rolled back %s after the apply, not within the 40s bake", took)
		}
		f.waitOn(t, 6, "node-a", "node-b1", "node-b2")
		counts := tr.halt()
		for _, id := range []string{"node-b1", "node-b2"} {
			if n := counts[id][http.StatusForbidden]; n != 0 {
				t.Errorf("%s rejected the origin %d times: it ran the canary (%v)", id, n, counts[id])
			}
		}
		f.neverRan(t, 5)
		if h := getJSON(t, f.addr); h.Revision != 6 {
			t.Fatalf("head %d after the rollback, want 6: the restarted control plane decided twice", h.Revision)
		}
	})
}

// TestACanaryNodeRestartedWithOtherLabelsStaysInTheCanary: node-a runs a
// harmful canary, then is restarted from its cache with zone=b, which the
// selector does not match. It cannot go back to the base (a lower
// revision), so it is not offered it (no NACK), and the rejections it
// makes still count as the canary's: the canary is rolled back.
func TestACanaryNodeRestartedWithOtherLabelsStaysInTheCanary(t *testing.T) {
	f := startRolloutFleet(t)
	drop := policyFile(t, f.dir, "drop.yaml", 65536, "https://other.example.com")
	mustWsctl(t, f.addr, "", "policy", "apply", "-f", drop, "--canary", "zone=a", "--bake", "40s", "-m", "drop app")
	f.waitOn(t, 3, "node-a")
	f.nodes["node-a"].stop(t)
	moved := f.startNode(t, "node-a", "b")
	f.waitOn(t, 3, "node-a")
	tr := startTraffic(rolloutApp, map[string]*nodeProc{"node-a": moved, "node-b1": f.nodes["node-b1"]})
	defer tr.halt()
	var st rolloutJSON
	waitFor(t, 38*time.Second, "the canary rolled back", func() bool {
		if n := nodesList(t, f.addr)["node-a"]; n.LastNackError != "" {
			t.Fatalf("node-a refused revision %d: %s", n.LastNackRevision, n.LastNackError)
		}
		st = rolloutStatus(t, f.addr)
		return st.State != "ROLLOUT_STATE_BAKING"
	})
	if st.State != "ROLLOUT_STATE_ROLLED_BACK" || !strings.HasPrefix(st.Outcome.Reason, "origin_rejected ") || !strings.Contains(st.Outcome.Reason, "vs 0.0/min elsewhere") {
		t.Fatalf("outcome %+v", st)
	}
	f.waitOn(t, 4, "node-a", "node-b1", "node-b2")
	if s := handshake(t, moved.ws, rolloutApp, ""); s != http.StatusSwitchingProtocols {
		t.Fatalf("node-a is not back on the base content: status %d", s)
	}
	f.neverRan(t, 3)
}

// TestTheSurvivingReplicaDecidesARolloutWhoseReplicaDied: two replicas on
// one etcd; the canary is applied through A, which is then SIGKILLed and
// never comes back. B carries the rollout on from the store: once A's
// lease is gone (its telemetry is no longer missing, only gone) and the
// bake has passed, B promotes it, and every node, failed over to B, takes
// the promotion; the zone b nodes never run the canary.
func TestTheSurvivingReplicaDecidesARolloutWhoseReplicaDied(t *testing.T) {
	e := etcdtest.Start(t, nil)
	a := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--rollout-interval", "1s", "--lease-ttl", "3s")...)
	b := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--rollout-interval", "1s", "--lease-ttl", "3s")...)
	dir := t.TempDir()
	nodes := map[string]*nodeProc{}
	for id, spec := range map[string][2]string{"node-a": {a.addr + "," + b.addr, "a"}, "node-b1": {b.addr, "b"}, "node-b2": {a.addr + "," + b.addr, "b"}} {
		nodes[id] = startNodeProc(t, "--control", spec[0], "--node-id", id, "--label", "zone="+spec[1],
			"--control-backoff-min", "200ms", "--control-backoff-max", "2s",
			"--cache-file", filepath.Join(dir, id+".json"), "--fold-window", "2s")
	}
	on := func(addr string, rev int64, ids ...string) func() bool {
		return func() bool {
			list := nodesList(t, addr)
			for _, id := range ids {
				if n := list[id]; !n.Connected || n.AppliedRevision != rev {
					return false
				}
			}
			return true
		}
	}
	mustWsctl(t, a.addr, "", "policy", "apply", "-f", policyFile(t, dir, "base.yaml", 65536, rolloutApp), "-m", "allow app")
	// Both replicas' views (A checks the canary's selector against its own).
	waitFor(t, 15*time.Second, "B sees every node on revision 2", on(b.addr, 2, "node-a", "node-b1", "node-b2"))
	waitFor(t, 15*time.Second, "A sees every node on revision 2", on(a.addr, 2, "node-a", "node-b1", "node-b2"))

	harmless := policyFile(t, dir, "harmless.yaml", 65536, rolloutApp, "https://new.example.com")
	applied := time.Now()
	mustWsctl(t, a.addr, "", "policy", "apply", "-f", harmless, "--canary", "zone=a", "--bake", "10s", "-m", "allow new too")
	waitFor(t, 15*time.Second, "node-a on the canary", on(b.addr, 3, "node-a"))
	a.kill()

	var st rolloutJSON
	waitFor(t, 40*time.Second, "B promotes the canary", func() bool {
		st = rolloutStatus(t, b.addr)
		return st.State != "ROLLOUT_STATE_BAKING"
	})
	if st.State != "ROLLOUT_STATE_PROMOTED" || !st.Outcome.Automatic || st.EndingRevision != 4 {
		t.Fatalf("outcome %+v", st)
	}
	if took := time.Since(applied); took < 10*time.Second {
		t.Errorf("promoted %s after the apply, before its 10s bake", took)
	}
	if !strings.Contains(b.logText(), `"msg":"rollout decided"`) {
		t.Error("B did not log the decision")
	}
	waitFor(t, 20*time.Second, "every node on the promotion through B", on(b.addr, 4, "node-a", "node-b1", "node-b2"))
	for _, id := range []string{"node-b1", "node-b2"} {
		if seen := appliedRevisions(t, nodes[id]); seen[3] {
			t.Errorf("%s's log names the canary revision 3: %v", id, seen)
		}
	}
}

// TestLiveConnectionsRideThroughACanaryAndItsAbort: a canary that
// shortens the heartbeat and lowers the connection limits below what
// node-a holds, then its abort, drop no healthy connection on either the
// canary node or the others (issue 7's guarantee holds for canaries and
// rollbacks as for any revision), and every connection still carries
// traffic afterwards.
func TestLiveConnectionsRideThroughACanaryAndItsAbort(t *testing.T) {
	f := startRolloutFleet(t)
	clients := []*liveClient{
		dialLive(t, "a1", f.nodes["node-a"].ws, rolloutApp),
		dialLive(t, "a2", f.nodes["node-a"].ws, rolloutApp),
		dialLive(t, "b1", f.nodes["node-b1"].ws, rolloutApp),
	}
	for i, c := range clients {
		c.roundTrip(t, "before", fmt.Sprint("before-", i))
	}
	tight := filepath.Join(f.dir, "tight.yaml")
	body := fmt.Sprintf(`origins: {allow: [%q], allow_missing: true}
heartbeat: {interval: 5s, timeout: 15s}
limits: {max_connections: 1, max_connections_per_ip: 1, handshakes_per_second: 100000, handshake_burst: 100000, messages_per_second: 50, message_burst: 100, max_message_bytes: 32768}
breaker: {failure_ratio: 0.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`, rolloutApp)
	if err := os.WriteFile(tight, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	mustWsctl(t, f.addr, "", "policy", "apply", "-f", tight, "--canary", "zone=a", "--bake", "5m", "-m", "tighter")
	f.waitOn(t, 3, "node-a")
	// Longer than the canary's heartbeat interval: the node pings under
	// the new settings at least once.
	time.Sleep(6 * time.Second)
	for i, c := range clients {
		c.roundTrip(t, "canary", fmt.Sprint("canary-", i))
	}
	if s := handshake(t, f.nodes["node-a"].ws, rolloutApp, ""); s == http.StatusSwitchingProtocols {
		t.Error("node-a admitted a third connection under max_connections 1: it does not run the canary")
	}
	mustWsctl(t, f.addr, "", "rollout", "abort", "-m", "too tight")
	f.waitOn(t, 4, "node-a", "node-b1", "node-b2")
	for i, c := range clients {
		c.roundTrip(t, "after", fmt.Sprint("after-", i))
	}
}

// TestACanaryItsNodeRefusesIsRolledBackWithTheNodesWords: node-a, in the
// canary, caps frames at 64 KiB (--max-message-bytes), so it NACKs a
// canary raising max_message_bytes to 1 MiB. The canary is rolled back at
// once, long before its bake ends, with node-a's refusal as the reason,
// and every node takes the rollback.
func TestACanaryItsNodeRefusesIsRolledBackWithTheNodesWords(t *testing.T) {
	f := &rolloutFleet{top: t, addr: freeAddr(t), data: t.TempDir(), dir: t.TempDir(), nodes: map[string]*nodeProc{}}
	f.restartControl()
	f.nodes["node-a"] = f.startNode(t, "node-a", "a", "--max-message-bytes", "65536")
	f.nodes["node-b1"] = f.startNode(t, "node-b1", "b")
	f.nodes["node-b2"] = f.startNode(t, "node-b2", "b")
	mustWsctl(t, f.addr, "", "policy", "apply", "-f", policyFile(t, f.dir, "base.yaml", 65536, rolloutApp), "-m", "allow app")
	f.waitOn(t, 2, "node-a", "node-b1", "node-b2")

	big := policyFile(t, f.dir, "big.yaml", 1<<20, rolloutApp)
	applied := time.Now()
	mustWsctl(t, f.addr, "", "policy", "apply", "-f", big, "--canary", "zone=a", "--bake", "5m", "-m", "1 MiB frames")
	var st rolloutJSON
	waitFor(t, 30*time.Second, "the refused canary rolled back", func() bool {
		st = rolloutStatus(t, f.addr)
		return st.State != "ROLLOUT_STATE_BAKING"
	})
	t.Logf("rolled back %s after the apply: %s", time.Since(applied).Round(time.Millisecond), st.Outcome.Reason)
	if st.State != "ROLLOUT_STATE_ROLLED_BACK" || !st.Outcome.Automatic || st.EndingRevision != 4 ||
		!strings.HasPrefix(st.Outcome.Reason, "node node-a refused canary revision 3: ") || !strings.Contains(st.Outcome.Reason, "max_message_bytes") {
		t.Fatalf("outcome %+v", st)
	}
	f.waitOn(t, 4, "node-a", "node-b1", "node-b2")
	if n := nodesList(t, f.addr)["node-a"]; n.LastNackError != "" {
		t.Errorf("node-a still shows a NACK after the rollback: %+v", n)
	}
	f.neverRan(t, 3)
}
