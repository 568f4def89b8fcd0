package controlplane

// Failover between control-plane replicas, end to end: real
// wsfleet-control processes, a real wsfleet-node given all of them with
// --control A,B,C, and wsctl with --addr A,B,C.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replicaDirs gives n data directories holding copies of one store file:
// the same identity and history, as replicas sharing one store see it.
// Each replica then commits to its own copy; an apply made on every
// survivor stands for one made once on a shared store.
func replicaDirs(t *testing.T, n int) []string {
	t.Helper()
	seed := t.TempDir()
	startControl(t, seed, "--dev").stop(t)
	db, err := os.ReadFile(filepath.Join(seed, "policy.db"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
		if err := os.WriteFile(filepath.Join(dirs[i], "policy.db"), db, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// attachedTo waits for the one live replica that shows node connected at
// revision rev, and returns its index.
func attachedTo(t *testing.T, cps []*controlProc, dead map[int]bool, node string, rev int64, within time.Duration) int {
	t.Helper()
	at := -1
	took := waitFor(t, within, "a replica shows the node connected at the head", func() bool {
		for i, cp := range cps {
			if dead[i] {
				continue
			}
			if n := nodesList(t, cp.addr)[node]; n.Connected && n.AppliedRevision == rev {
				at = i
				return true
			}
		}
		return false
	})
	t.Logf("%s connected at revision %d on replica %d after %s", node, rev, at, took.Round(time.Millisecond))
	return at
}

func TestANodeFailsOverWhenItsReplicaIsKilled(t *testing.T) {
	dirs := replicaDirs(t, 3)
	cps := make([]*controlProc, len(dirs))
	addrs := make([]string, len(dirs))
	for i, dir := range dirs {
		cps[i] = startControl(t, dir, "--dev")
		addrs[i] = cps[i].addr
	}
	list := strings.Join(addrs, ",")
	const backoffMin = 200 * time.Millisecond
	node := startNodeProc(t, "--control", list, "--node-id", "n1",
		"--control-backoff-min", backoffMin.String(), "--control-backoff-max", "2s",
		"--cache-file", filepath.Join(t.TempDir(), "cache.json"))
	dead := map[int]bool{}
	on := attachedTo(t, cps, dead, "n1", 1, 10*time.Second)
	policyDir := t.TempDir()

	for rev := int64(2); rev <= 3; rev++ {
		// Revision rev is applied while the node is on its replica, which
		// does not have it; then that replica is killed.
		origin := fmt.Sprintf("https://revision-%d.example.com", rev)
		file := policyFile(t, policyDir, fmt.Sprintf("revision-%d.yaml", rev), 65536, origin)
		for i, cp := range cps {
			if i != on && !dead[i] {
				mustWsctl(t, cp.addr, "", "policy", "apply", "-f", file, "-m", "while n1 is elsewhere")
			}
		}
		cps[on].kill()
		dead[on] = true

		// Within the node's backoff and a few seconds it is on a live
		// replica and has ACKed the revision it missed.
		on = attachedTo(t, cps, dead, "n1", rev, backoffMin+5*time.Second)
		if s := handshake(t, node.ws, origin, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("after the failover the node does not run revision %d: %s gets %d", rev, origin, s)
		}

		// Telemetry flows to the new replica: an event recorded after the
		// failover is there.
		trace := fmt.Sprint("after-failover-", rev)
		if s := handshake(t, node.ws, "https://not-allowed-"+trace+".example.com", "trace_id="+trace); s != http.StatusForbidden {
			t.Fatalf("a foreign origin got %d", s)
		}
		waitFor(t, 5*time.Second, "the new replica holds the event recorded after the failover", func() bool {
			return runWsctl(t, cps[on].addr, "", "trace", trace).code == 0
		})
		if ev := traceEvent(t, cps[on].addr, trace); ev.NodeID != "n1" {
			t.Fatalf("trace %s names node %q", trace, ev.NodeID)
		}
	}

	// wsctl given every replica, dead ones included, reads from the live
	// one, however the list is shuffled.
	for range 4 {
		if r := getJSON(t, list); r.Revision != 3 {
			t.Fatalf("wsctl --addr %s reads revision %d, want 3", list, r.Revision)
		}
	}
	if n := nodesList(t, list)["n1"]; !n.Connected || n.AppliedRevision != 3 {
		t.Fatalf("wsctl --addr %s: n1 = %+v", list, n)
	}
}
