package controlplane

// One fleet view from every replica, end to end: three real
// wsfleet-control processes on one etcd (embedded in the test process),
// two real wsfleet-node processes each attached to one replica, and wsctl
// asking each replica in turn.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

func TestEveryReplicaProcessShowsTheWholeFleet(t *testing.T) {
	e := etcdtest.Start(t, nil)
	args := etcdArgs(e.Endpoint, "--lease-ttl", testLeaseTTL.String(), "--peer-timeout", "1s")
	cps := []*controlProc{startControl(t, t.TempDir(), args...), startControl(t, t.TempDir(), args...), startControl(t, t.TempDir(), args...)}
	dir := t.TempDir()
	// Each node knows one replica only, so that it stays put when that
	// replica dies.
	n1 := startNodeProc(t, "--control", cps[0].addr, "--node-id", "n1", "--cache-file", filepath.Join(dir, "n1.json"))
	n2 := startNodeProc(t, "--control", cps[2].addr, "--node-id", "n2", "--cache-file", filepath.Join(dir, "n2.json"))

	for i, cp := range cps {
		waitFor(t, 15*time.Second, "replica "+string(rune('A'+i))+" lists both nodes connected on revision 1", func() bool {
			nodes := nodesList(t, cp.addr)
			return len(nodes) == 2 && nodes["n1"].Connected && nodes["n1"].AppliedRevision == 1 &&
				nodes["n2"].Connected && nodes["n2"].AppliedRevision == 1
		})
	}

	// A rejected handshake on each node: n1 reports it to A, n2 to C.
	for node, trace := range map[*nodeProc]string{n1: "via-a", n2: "via-c"} {
		if s := handshake(t, node.ws, "https://not-allowed.example.com", "trace_id="+trace); s != http.StatusForbidden {
			t.Fatalf("status %d", s)
		}
	}
	for i, cp := range cps {
		for trace, node := range map[string]string{"via-a": "n1", "via-c": "n2"} {
			var out string
			waitFor(t, 10*time.Second, "wsctl trace "+trace+" on replica "+string(rune('A'+i)), func() bool {
				r := runWsctl(t, cp.addr, "", "trace", trace)
				out = r.stdout
				return r.code == 0
			})
			if !strings.Contains(out, "node:") || !strings.Contains(out, node) || !strings.Contains(out, "origin_rejected") {
				t.Fatalf("trace %s on replica %d:\n%s", trace, i, out)
			}
		}
	}
	t.Run("errors top on B counts both nodes' rejections", func(t *testing.T) {
		var top struct {
			Groups []struct {
				Key   string `json:"key"`
				Count int64  `json:"count"`
			} `json:"groups"`
			Total int64 `json:"total"`
		}
		out := mustWsctl(t, cps[1].addr, "", "errors", "top", "--by", "node", "-o", "json")
		if err := json.Unmarshal([]byte(out), &top); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var groups []string
		for _, g := range top.Groups {
			groups = append(groups, fmt.Sprintf("%s=%d", g.Key, g.Count))
		}
		sort.Strings(groups)
		if strings.Join(groups, ",") != "n1=1,n2=1" || top.Total != 2 {
			t.Fatalf("errors top --by node on B: %s, total %d\n%s", groups, top.Total, out)
		}
	})

	t.Run("a replica killed takes its node with it on the others within the lease TTL", func(t *testing.T) {
		cps[2].kill()
		killed := time.Now()
		for i, cp := range cps[:2] {
			waitFor(t, testLeaseTTL+5*time.Second, "replica "+string(rune('A'+i))+" shows n2 disconnected", func() bool {
				nodes := nodesList(t, cp.addr)
				return nodes["n1"].Connected && !nodes["n2"].Connected && nodes["n2"].AppliedRevision == 1
			})
		}
		t.Logf("n2 shown disconnected %s after its replica was killed (lease TTL %s)", time.Since(killed).Round(time.Millisecond), testLeaseTTL)
		if r := runWsctl(t, cps[1].addr, "", "trace", "via-a"); r.code != 0 || !strings.Contains(r.stdout, "n1") {
			t.Fatalf("trace via-a on B after C died: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}
