package controlplane

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestADryRunAfterAControlPlaneRestartSaysItSawNoTraffic: traffic samples
// live in the control plane's memory. After a restart, before any node
// reports again, a dry run that drops an origin busy an hour ago must say
// it saw no traffic and that its window is short, not "nothing would
// change" — through the real binaries and wsctl.
func TestADryRunAfterAControlPlaneRestartSaysItSawNoTraffic(t *testing.T) {
	const originA, originB = "https://a.example.com", "https://b.example.com"
	dir, data := t.TempDir(), t.TempDir()
	cp := startControl(t, data, "--dev")
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "edge-1", "--cache-file", filepath.Join(dir, "c.json"),
		"--traffic-interval", "300ms")
	waitFor(t, 10*time.Second, "registered", func() bool { return nodesList(t, cp.addr)["edge-1"].Connected })
	mustWsctl(t, cp.addr, "", "policy", "apply", "-f", impactPolicy(t, dir, "ab.yaml", 100000, originA, originB), "-m", "allow a and b")
	rev := getJSON(t, cp.addr).Revision
	waitFor(t, 10*time.Second, "node on the new revision", func() bool { return nodesList(t, cp.addr)["edge-1"].AppliedRevision == rev })
	for range 3 {
		if s := handshake(t, node.ws, originB, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("origin B: status %d", s)
		}
	}
	dropB := impactPolicy(t, dir, "a.yaml", 100000, originA)
	waitFor(t, 15*time.Second, "the dry run sees B's accepted handshakes", func() bool {
		return rejectedOf(dryRun(t, cp.addr, dropB), originB) == 3
	})

	// The node stops (its samples are acknowledged: none is resent), the
	// control plane restarts on the same data directory.
	node.stop(t)
	cp.stop(t)
	cp = startControl(t, data, "--dev")
	if got := getJSON(t, cp.addr).Revision; got != rev {
		t.Fatalf("revision %d after the restart, want %d", got, rev)
	}
	if r := dryRun(t, cp.addr, dropB); r.Impact.NodesReporting != 0 || len(r.Impact.NewlyRejected) != 0 {
		t.Fatalf("impact after the restart %+v: want no node reporting, nothing known", r.Impact)
	}
	human := mustWsctl(t, cp.addr, "", "policy", "apply", "--dry-run", "-f", dropB)
	for _, want := range []string{"no traffic seen: no node reported", "the window is short"} {
		if !strings.Contains(human, want) {
			t.Errorf("the dry run does not say %q:\n%s", want, human)
		}
	}
	if strings.Contains(human, "no origin newly rejected or admitted, no limit exceeded") {
		t.Errorf("the dry run reassures without data:\n%s", human)
	}
}
