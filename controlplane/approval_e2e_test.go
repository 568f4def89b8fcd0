package controlplane

// Approval end to end: real wsfleet-control, wsfleet-node and wsctl
// processes with a tokens file of two admins (alice, bob) and a viewer.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	aliceToken = "e2e-alice-token-0123456789"
	bobToken   = "e2e-bob-token-0123456789"
	veraToken  = "e2e-viewer-token-0123456789"
)

// approvalPolicy writes a complete policy allowing origins, with
// approval.required as given.
func approvalPolicy(t *testing.T, dir, name string, required bool, origins ...string) string {
	t.Helper()
	path := policyFile(t, dir, name, 65536, origins...)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("approval: {required: " + strconv.FormatBool(required) + "}\n"); err != nil {
		t.Fatal(err)
	}
	return path
}

var proposalStored = regexp.MustCompile(`proposal (\d+) stored`)

// proposeAs runs wsctl policy propose and returns the proposal id and the
// table it printed.
func proposeAs(t *testing.T, addr, token, file, msg string) (string, string) {
	t.Helper()
	out := mustWsctl(t, addr, "", "--token", token, "policy", "propose", "-f", file, "-m", msg)
	m := proposalStored.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("policy propose printed no id:\n%s", out)
	}
	return m[1], out
}

// wantRefused runs wsctl and wants it to fail saying every part of want.
func wantRefused(t *testing.T, addr string, want []string, args ...string) {
	t.Helper()
	r := runWsctl(t, addr, "", args...)
	if r.code == 0 {
		t.Fatalf("wsctl %v succeeded, want a refusal:\n%s", args, r.stdout)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("wsctl %v: stderr does not say %q:\n%s", args, w, r.stderr)
		}
	}
}

// approvedRevision is what `wsctl policy get -o json` says of the head.
type approvedRevision struct {
	Revision   json.Number `json:"revision"`
	Author     string      `json:"author"`
	ApprovedBy string      `json:"approved_by"`
	ProposalID json.Number `json:"proposal_id"`
	Message    string      `json:"message"`
}

func headAs(t *testing.T, addr, token string) approvedRevision {
	t.Helper()
	out := mustWsctl(t, addr, "", "--token", token, "policy", "get", "-o", "json")
	var r approvedRevision
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("policy get -o json: %v\n%s", err, out)
	}
	return r
}

func TestAPoolThatRequiresApprovalChangesOnlyWithASecondAdmin(t *testing.T) {
	dir, dataDir := t.TempDir(), t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	writeFile(t, tokens, "tokens:\n"+
		"  - {name: alice, role: admin, token: "+aliceToken+"}\n"+
		"  - {name: bob, role: admin, token: "+bobToken+"}\n"+
		"  - {name: vera, role: viewer, token: "+veraToken+"}\n"+
		"  - {name: node-a, role: node, token: "+nodeAToken+", nodes: [na], pools: [default]}\n")
	// A fixed address, so the node finds the control plane after its restart.
	addr := freeAddr(t)
	cp := startControl(t, dataDir, "--tokens-file", tokens, "--grpc-addr", addr)
	alice := []string{"--token", aliceToken}
	node := startNodeProc(t, "--control", addr, "--token", nodeAToken, "--node-id", "na", "--cache-file", filepath.Join(dir, "na.json"))
	nodeAt := func(what string, rev int64) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool {
			n := nodesAs(t, addr, alice...)["na"]
			return n.Connected && n.AppliedRevision == rev
		})
	}
	nodeAt("na connected at revision 1", 1)

	t.Run("alice turns approval on with a direct apply", func(t *testing.T) {
		on := approvalPolicy(t, dir, "on.yaml", true, "https://app.example.com")
		mustWsctl(t, addr, "", "--token", aliceToken, "policy", "apply", "-f", on, "-m", "approval on")
		nodeAt("na at revision 2", 2)
	})

	next := approvalPolicy(t, dir, "next.yaml", true, "https://app.example.com", "https://new.example.com")
	t.Run("alice's direct apply is refused", func(t *testing.T) {
		wantRefused(t, addr, []string{`pool "default" requires approval`, "wsctl policy propose"},
			"--token", aliceToken, "policy", "apply", "-f", next, "-m", "direct")
		if got := headAs(t, addr, aliceToken).Revision.String(); got != "2" {
			t.Fatalf("head is %s after a refused apply", got)
		}
	})

	var id string
	t.Run("alice proposes; she and the viewer cannot approve; bob can", func(t *testing.T) {
		var out string
		id, out = proposeAs(t, addr, aliceToken, next, "allow new")
		if !strings.Contains(out, `+ origins.allow: "https://new.example.com"`) {
			t.Fatalf("the proposal does not show its change:\n%s", out)
		}
		wantRefused(t, addr, []string{"you proposed it; another admin must approve"}, "--token", aliceToken, "policy", "approve", id)
		wantRefused(t, addr, []string{"permission denied"}, "--token", veraToken, "policy", "approve", id)
		listed := mustWsctl(t, addr, "", "--token", veraToken, "policy", "proposals", "--open")
		if !strings.Contains(listed, "allow new") || !strings.Contains(listed, "open") {
			t.Fatalf("the viewer does not see the open proposal:\n%s", listed)
		}

		out = mustWsctl(t, addr, "", "--token", bobToken, "policy", "approve", id, "-m", "ok")
		if !strings.Contains(out, "revision 2 -> 3") || !strings.Contains(out, "approved by bob") {
			t.Fatalf("approve printed:\n%s", out)
		}
		nodeAt("na at the approved revision 3", 3)
		if s := handshake(t, node.ws, "https://new.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the node does not run the approved revision: status %d", s)
		}
		head := headAs(t, addr, aliceToken)
		if head.Revision.String() != "3" || head.Author != "alice" || head.ApprovedBy != "bob" || head.ProposalID.String() != id || head.Message != "allow new" {
			t.Fatalf("head = %+v, want revision 3 by alice approved by bob from proposal %s", head, id)
		}
		hist := mustWsctl(t, addr, "", "--token", veraToken, "policy", "history")
		if !strings.Contains(hist, "(proposal "+id+", approved by bob)") {
			t.Fatalf("history does not show the approval:\n%s", hist)
		}
	})

	t.Run("a proposal overtaken by another approved change must be re-proposed", func(t *testing.T) {
		older, _ := proposeAs(t, addr, bobToken, approvalPolicy(t, dir, "older.yaml", true, "https://app.example.com", "https://older.example.com"), "older")
		newer, _ := proposeAs(t, addr, bobToken, approvalPolicy(t, dir, "newer.yaml", true, "https://app.example.com", "https://newer.example.com"), "newer")
		mustWsctl(t, addr, "", "--token", aliceToken, "policy", "approve", newer)
		nodeAt("na at revision 4", 4)
		shown := mustWsctl(t, addr, "", "--token", veraToken, "policy", "proposal", older)
		if !strings.Contains(shown, "stale") {
			t.Fatalf("the overtaken proposal is not shown stale:\n%s", shown)
		}
		wantRefused(t, addr, []string{"proposal " + older + " was made against revision 3; the head is now 4: re-propose"},
			"--token", aliceToken, "policy", "approve", older)
		if got := headAs(t, addr, aliceToken).Revision.String(); got != "4" {
			t.Fatalf("head is %s after a stale approval", got)
		}
	})

	t.Run("an open proposal survives a control-plane restart", func(t *testing.T) {
		pending, _ := proposeAs(t, addr, aliceToken, approvalPolicy(t, dir, "pending.yaml", true, "https://app.example.com", "https://pending.example.com"), "pending")
		cp.stop(t)
		startControl(t, dataDir, "--tokens-file", tokens, "--grpc-addr", addr)
		shown := mustWsctl(t, addr, "", "--token", bobToken, "policy", "proposal", pending)
		if !regexp.MustCompile(`state:\s+open\n`).MatchString(shown) {
			t.Fatalf("the proposal after a restart:\n%s", shown)
		}
		mustWsctl(t, addr, "", "--token", bobToken, "policy", "approve", pending)
		nodeAt("na at revision 5 after the restart", 5)
		if s := handshake(t, node.ws, "https://pending.example.com", ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the node does not run the approved revision: status %d", s)
		}
	})
}
