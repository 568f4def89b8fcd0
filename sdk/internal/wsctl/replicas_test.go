package wsctl

import (
	"strings"
	"testing"
)

func TestAddrTakesTheReplicasOfAControlPlane(t *testing.T) {
	t.Run("reads and writes reach the live replica whichever is listed first", func(t *testing.T) {
		h := newHarness(t)
		dead := closedAddr(t)
		// Each invocation shuffles the replicas, so about half of these
		// runs try the dead one first; every run must be answered.
		for i := range 10 {
			list := dead + "," + h.addr
			if i%2 == 1 {
				list = h.addr + "," + dead
			}
			h.run("--addr", list, "policy", "get").want(t, 0)
		}
		h.run("--addr", dead+","+h.addr, "policy", "apply", "-f", writeFile(t, stagingYAML), "-m", "through a list").want(t, 0)
		if got := h.fake.head("default"); got.GetRevision() != 2 || got.GetMessage() != "through a list" {
			t.Fatalf("head %d %q; want revision 2 from the apply", got.GetRevision(), got.GetMessage())
		}
	})
	t.Run("the list from WSFLEET_ADDR works like the flag", func(t *testing.T) {
		h := newHarness(t)
		h.env[envAddr] = closedAddr(t) + "," + h.addr
		h.run("nodes", "list").want(t, 0)
	})
	t.Run("no live replica is unreachable, naming the list", func(t *testing.T) {
		list := closedAddr(t) + "," + closedAddr(t)
		h := &harness{t: t, env: map[string]string{}}
		r := h.run("--addr", list, "policy", "get")
		r.want(t, exitUnreachable)
		assertContains(t, "stderr", r.stderr, "error: the control plane at "+list+" is unreachable", "nothing was sent")
	})
	t.Run("a malformed list is refused before any call", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("--addr", h.addr+",", "policy", "get")
		r.want(t, exitError)
		assertContains(t, "stderr", r.stderr, "has an empty entry")
		if md, _ := h.fake.recorded(); len(md) != 0 {
			t.Errorf("%d calls reached the control plane", len(md))
		}
	})
	t.Run("a token is refused in plaintext when one replica is not loopback", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("--addr", h.addr+",10.0.0.1:7400", "--token", "secret", "policy", "get")
		r.want(t, exitError)
		assertContains(t, "stderr", r.stderr, "refusing to send a token in plaintext to 10.0.0.1:7400", "--tls")
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("stderr leaks the token:\n%s", r.stderr)
		}
		if md, _ := h.fake.recorded(); len(md) != 0 {
			t.Errorf("%d calls reached the control plane", len(md))
		}
	})
}
