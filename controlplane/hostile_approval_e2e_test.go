package controlplane

// Proposals and rollouts against hostile credentials: real wsfleet-control
// and wsctl processes with a tokens file.

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	alicePhoneToken = "e2e-alice-phone-token-0123456789"
	pubToken        = "e2e-publisher-token-0123456789"
)

// TestOnlyAdminsDecideAndAnIdentityIsATokenName: viewer, node and
// publisher tokens are refused every write of proposals (and of rollouts:
// auth's TestOnlyAdminsWriteProposalsAndRollouts). An
// identity is a token's name: the same person holding a second admin token
// under another name counts as a second admin (so give each person one
// token), and a proposal outlives its proposer's token (a reload that
// removes it neither withdraws nor blocks it: reject it to withdraw it).
func TestOnlyAdminsDecideAndAnIdentityIsATokenName(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	all := "tokens:\n" +
		"  - {name: alice, role: admin, token: " + aliceToken + "}\n" +
		"  - {name: alice-phone, role: admin, token: " + alicePhoneToken + "}\n" +
		"  - {name: bob, role: admin, token: " + bobToken + "}\n" +
		"  - {name: vera, role: viewer, token: " + veraToken + "}\n" +
		"  - {name: node-a, role: node, token: " + nodeAToken + ", nodes: [na], pools: [default]}\n" +
		"  - {name: pub, role: publisher, token: " + pubToken + ", pools: [default]}\n"
	writeFile(t, tokens, all)
	cp := startControl(t, t.TempDir(), "--tokens-file", tokens)
	first := approvalPolicy(t, dir, "first.yaml", false, "https://first.example.com")
	id, _ := proposeAs(t, cp.addr, aliceToken, first, "first")

	t.Run("viewer, node and publisher tokens are refused every write", func(t *testing.T) {
		for _, tok := range []string{veraToken, nodeAToken, pubToken} {
			for _, args := range [][]string{
				{"policy", "propose", "-f", first, "-m", "sneak"},
				{"policy", "approve", id, "-m", "sneak"},
				{"policy", "reject", id, "-m", "sneak"},
			} {
				wantRefused(t, cp.addr, []string{"permission denied"}, append([]string{"--token", tok}, args...)...)
			}
		}
		out := mustWsctl(t, cp.addr, "", "--token", bobToken, "policy", "proposals")
		if strings.Contains(out, "sneak") || !strings.Contains(out, "open") {
			t.Fatalf("a refused call left a trace:\n%s", out)
		}
	})

	t.Run("a second token under another name is a second admin", func(t *testing.T) {
		out := mustWsctl(t, cp.addr, "", "--token", alicePhoneToken, "policy", "approve", id, "-m", "me again")
		if !strings.Contains(out, "approved by alice-phone") {
			t.Fatalf("approve printed:\n%s", out)
		}
		if h := headAs(t, cp.addr, bobToken); h.Author != "alice" || h.ApprovedBy != "alice-phone" {
			t.Fatalf("head %+v", h)
		}
	})

	t.Run("a proposal outlives its proposer's token", func(t *testing.T) {
		second := approvalPolicy(t, dir, "second.yaml", false, "https://second.example.com")
		id2, _ := proposeAs(t, cp.addr, aliceToken, second, "second")
		writeFile(t, tokens, strings.Replace(all, "  - {name: alice, role: admin, token: "+aliceToken+"}\n", "", 1))
		reloads := strings.Count(cp.logText(), `"msg":"tokens reloaded"`)
		if err := cp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the tokens reloaded", func() bool {
			return strings.Count(cp.logText(), `"msg":"tokens reloaded"`) > reloads
		})
		wantRefused(t, cp.addr, []string{"did not accept the credentials"}, "--token", aliceToken, "policy", "reject", id2, "-m", "withdraw")
		out := mustWsctl(t, cp.addr, "", "--token", bobToken, "policy", "approve", id2, "-m", "ok")
		if !strings.Contains(out, "approved by bob") {
			t.Fatalf("approve printed:\n%s", out)
		}
		if h := headAs(t, cp.addr, bobToken); h.Author != "alice" || h.ApprovedBy != "bob" {
			t.Fatalf("head %+v, want alice's revision approved by bob", h)
		}
	})
}
