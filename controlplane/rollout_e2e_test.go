package controlplane

// Staged rollout end to end: one control plane, three real nodes (node-a
// in zone a, node-b1 and node-b2 in zone b), wsctl applying canaries.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// rolloutJSON is the part of `wsctl rollout status -o json` the test reads.
type rolloutJSON struct {
	CanaryRevision int64  `json:"canary_revision"`
	State          string `json:"state"`
	EndingRevision int64  `json:"ending_revision"`
	Outcome        struct {
		Result    string `json:"result"`
		Automatic bool   `json:"automatic"`
		Reason    string `json:"reason"`
	} `json:"outcome"`
}

func rolloutStatus(t *testing.T, addr string) rolloutJSON {
	t.Helper()
	out := mustWsctl(t, addr, "", "rollout", "status", "-o", "json")
	var st rolloutJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("rollout status -o json: %v\n%s", err, out)
	}
	return st
}

// upgradeStatus is handshake without t: it runs in the traffic goroutine.
func upgradeStatus(addr, origin string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\nOrigin: " + origin + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// traffic makes handshakes from origin to every node, one round every
// 50ms, until stopped; it counts the statuses per node.
type traffic struct {
	mu     sync.Mutex
	status map[string]map[int]int
	stop   chan struct{}
	done   chan struct{}
}

func startTraffic(origin string, nodes map[string]*nodeProc) *traffic {
	tr := &traffic{status: map[string]map[int]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		// Bounded: at most 5 minutes of rounds.
		for i := 0; i < 6000; i++ {
			for id, n := range nodes {
				code, err := upgradeStatus(n.ws, origin)
				if err != nil {
					code = -1
				}
				tr.mu.Lock()
				if tr.status[id] == nil {
					tr.status[id] = map[int]int{}
				}
				tr.status[id][code]++
				tr.mu.Unlock()
			}
			select {
			case <-tr.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return tr
}

func (tr *traffic) halt() map[string]map[int]int {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.status
}

// appliedRevisions lists every revision a node's log says it applied or
// refused: the policy client logs each push it applies ("policy applied",
// revision) or NACKs (with the revision), and the node logs each applied
// change (new_revision). A revision absent from these never ran there.
func appliedRevisions(t *testing.T, n *nodeProc) map[int64]bool {
	t.Helper()
	seen := map[int64]bool{}
	for _, line := range strings.Split(n.logText(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		for _, k := range []string{"revision", "new_revision"} {
			if v, ok := m[k].(float64); ok {
				seen[int64(v)] = true
			}
		}
	}
	return seen
}

func TestCanaryRolloutRollsBackAutomaticallyAndPromotesAHarmlessOne(t *testing.T) {
	const app = "https://app.example.com"
	dir := t.TempDir()
	cp := startControl(t, t.TempDir(), "--dev", "--rollout-interval", "1s")
	nodes := map[string]*nodeProc{}
	for id, zone := range map[string]string{"node-a": "a", "node-b1": "b", "node-b2": "b"} {
		// A short fold window: the folded rejections reach the control plane
		// within 2s rather than the default 10s.
		nodes[id] = startNodeProc(t, "--control", cp.addr, "--node-id", id, "--label", "zone="+zone,
			"--cache-file", filepath.Join(dir, id+".json"), "--fold-window", "2s")
	}
	base := policyFile(t, dir, "base.yaml", 65536, app)
	mustWsctl(t, cp.addr, "", "policy", "apply", "-f", base, "-m", "allow app")
	onRevision := func(rev int64, ids ...string) func() bool {
		return func() bool {
			list := nodesList(t, cp.addr)
			for _, id := range ids {
				if n := list[id]; !n.Connected || n.AppliedRevision != rev {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "every node on revision 2", onRevision(2, "node-a", "node-b1", "node-b2"))

	t.Run("a canary rejecting the test's origin is rolled back within its bake and the rest never runs it", func(t *testing.T) {
		tr := startTraffic(app, nodes)
		defer tr.halt()
		drop := policyFile(t, dir, "drop.yaml", 65536, "https://other.example.com")
		applied := time.Now()
		out := mustWsctl(t, cp.addr, "", "policy", "apply", "-f", drop, "--canary", "zone=a", "--bake", "20s", "-m", "drop app")
		for _, want := range []string{"canary revision 3", "node-a", "keep revision 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, out)
			}
		}
		// While it bakes, the zone b nodes stay on the base: sampled until
		// the rollout ends.
		var st rolloutJSON
		sawCanaryOnA := false
		waitFor(t, 19*time.Second, "the canary rolled back", func() bool {
			list := nodesList(t, cp.addr)
			for _, id := range []string{"node-b1", "node-b2"} {
				if list[id].AppliedRevision == 3 {
					t.Fatalf("%s runs the canary revision: %+v", id, list[id])
				}
			}
			if list["node-a"].AppliedRevision == 3 {
				sawCanaryOnA = true
			}
			st = rolloutStatus(t, cp.addr)
			return st.State == "ROLLOUT_STATE_ROLLED_BACK"
		})
		took := time.Since(applied)
		t.Logf("rolled back %s after the apply: %s", took.Round(time.Millisecond), st.Outcome.Reason)
		if took >= 20*time.Second {
			t.Errorf("rolled back after %s, not within the 20s bake", took)
		}
		if !sawCanaryOnA {
			t.Error("node-a was never seen on the canary revision")
		}
		if !st.Outcome.Automatic || st.EndingRevision != 4 || !strings.HasPrefix(st.Outcome.Reason, "origin_rejected ") || !strings.Contains(st.Outcome.Reason, "per canary node vs 0.0/min elsewhere") {
			t.Fatalf("outcome %+v", st)
		}
		waitFor(t, 10*time.Second, "every node on the rollback revision 4", onRevision(4, "node-a", "node-b1", "node-b2"))
		if s := handshake(t, nodes["node-a"].ws, app, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("node-a is not back on the base content: status %d", s)
		}
		counts := tr.halt()
		if counts["node-a"][http.StatusForbidden] == 0 {
			t.Errorf("node-a never rejected the origin while it ran the canary: %v", counts["node-a"])
		}
		for _, id := range []string{"node-b1", "node-b2"} {
			if n := counts[id][http.StatusForbidden]; n != 0 {
				t.Errorf("%s rejected the origin %d times: it ran the canary (%v)", id, n, counts[id])
			}
			if seen := appliedRevisions(t, nodes[id]); seen[3] || !seen[4] {
				t.Errorf("%s's log names revisions %v: want 4 and never the canary 3", id, seen)
			}
		}
		if seen := appliedRevisions(t, nodes["node-a"]); !seen[3] {
			t.Errorf("node-a's log does not name the canary revision 3: %v", seen)
		}
		hist := mustWsctl(t, cp.addr, "", "policy", "history")
		if !strings.Contains(hist, "[canary zone=a, bake 20s, base 2]") || !strings.Contains(hist, "[canary 3 rolled back automatically]") {
			t.Errorf("history does not show the rollout:\n%s", hist)
		}
	})

	t.Run("a harmless canary is promoted to every node after its bake", func(t *testing.T) {
		tr := startTraffic(app, nodes)
		defer tr.halt()
		harmless := policyFile(t, dir, "harmless.yaml", 65536, app, "https://new.example.com")
		applied := time.Now()
		mustWsctl(t, cp.addr, "", "policy", "apply", "-f", harmless, "--canary", "zone=a", "--bake", "10s", "-m", "allow new too")
		var st rolloutJSON
		waitFor(t, 25*time.Second, "the canary promoted", func() bool {
			list := nodesList(t, cp.addr)
			for _, id := range []string{"node-b1", "node-b2"} {
				if list[id].AppliedRevision == 5 {
					t.Fatalf("%s runs the canary revision before the promotion: %+v", id, list[id])
				}
			}
			st = rolloutStatus(t, cp.addr)
			return st.State == "ROLLOUT_STATE_PROMOTED"
		})
		if took := time.Since(applied); took < 10*time.Second {
			t.Errorf("promoted %s after the apply, before the 10s bake ended", took)
		}
		if !st.Outcome.Automatic || st.EndingRevision != 6 || !strings.Contains(st.Outcome.Reason, "bake of 10s passed; no class worse on canary") {
			t.Fatalf("outcome %+v", st)
		}
		waitFor(t, 10*time.Second, "every node on the promoted revision 6", onRevision(6, "node-a", "node-b1", "node-b2"))
		for id, n := range nodes {
			if s := handshake(t, n.ws, "https://new.example.com", ""); s != http.StatusSwitchingProtocols {
				t.Errorf("%s does not run the promoted content: status %d", id, s)
			}
		}
		counts := tr.halt()
		for id, c := range counts {
			if c[http.StatusForbidden] != 0 || c[-1] != 0 {
				t.Errorf("%s: statuses %v during a harmless rollout", id, c)
			}
		}
		if out := fmt.Sprint(appliedRevisions(t, nodes["node-b1"])); strings.Contains(out, "5:true") {
			t.Errorf("node-b1 ran the canary revision 5 before its promotion: %s", out)
		}
	})
}

// Two replicas on one etcd: the canary is applied through A, its node
// reports to B, both evaluate it; it is rolled back exactly once, on the
// evidence B's telemetry holds, and the nodes on either replica follow.
func TestACanaryIsDecidedOnceAcrossReplicas(t *testing.T) {
	const app = "https://app.example.com"
	e := etcdtest.Start(t, nil)
	a := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--rollout-interval", "1s")...)
	b := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--rollout-interval", "1s")...)
	dir := t.TempDir()
	nodes := map[string]*nodeProc{}
	for id, spec := range map[string][2]string{"node-a": {b.addr, "a"}, "node-b1": {a.addr, "b"}, "node-b2": {b.addr, "b"}} {
		nodes[id] = startNodeProc(t, "--control", spec[0], "--node-id", id, "--label", "zone="+spec[1],
			"--cache-file", filepath.Join(dir, id+".json"), "--fold-window", "2s")
	}
	mustWsctl(t, a.addr, "", "policy", "apply", "-f", policyFile(t, dir, "base.yaml", 65536, app), "-m", "allow app")
	everyNodeOn := func(rev int64) func() bool {
		return func() bool {
			list := nodesList(t, a.addr)
			for id := range nodes {
				if n := list[id]; !n.Connected || n.AppliedRevision != rev {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 15*time.Second, "A sees every node on revision 2", everyNodeOn(2))

	tr := startTraffic(app, nodes)
	defer tr.halt()
	drop := policyFile(t, dir, "drop.yaml", 65536, "https://other.example.com")
	out := mustWsctl(t, a.addr, "", "policy", "apply", "-f", drop, "--canary", "zone=a", "--bake", "20s", "-m", "drop app")
	if !strings.Contains(out, "canary revision 3") || !strings.Contains(out, "node-a") {
		t.Fatalf("apply output:\n%s", out)
	}
	var st rolloutJSON
	waitFor(t, 19*time.Second, "the canary rolled back", func() bool {
		st = rolloutStatus(t, b.addr)
		return st.State == "ROLLOUT_STATE_ROLLED_BACK"
	})
	if !st.Outcome.Automatic || st.EndingRevision != 4 || !strings.HasPrefix(st.Outcome.Reason, "origin_rejected ") {
		t.Fatalf("outcome %+v", st)
	}
	waitFor(t, 15*time.Second, "every node, on either replica, on revision 4", everyNodeOn(4))
	counts := tr.halt()
	for _, id := range []string{"node-b1", "node-b2"} {
		if counts[id][http.StatusForbidden] != 0 {
			t.Errorf("%s rejected the origin: it ran the canary (%v)", id, counts[id])
		}
		if seen := appliedRevisions(t, nodes[id]); seen[3] {
			t.Errorf("%s's log names the canary revision 3: %v", id, seen)
		}
	}
	// Both replicas kept evaluating after the decision; one revision ended
	// the rollout and none followed it.
	time.Sleep(2 * time.Second)
	if r := getJSON(t, a.addr); r.Revision != 4 {
		t.Fatalf("head %d after the rollback, want 4", r.Revision)
	}
	decided := strings.Count(a.logText(), `"msg":"rollout decided"`) + strings.Count(b.logText(), `"msg":"rollout decided"`)
	if decided != 1 {
		t.Fatalf("%d replicas logged the decision, want 1", decided)
	}
}
