package registry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// TestFollowPushesTheStoresHeads: heads reach nodes through Follow, the
// store's watch, whoever committed them; a repeated or older head (a watch
// re-reading the heads after a gap) changes nothing; Follow ends with the
// watch.
func TestFollowPushesTheStoresHeads(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}, Registerer: reg})
	heads := make(chan *wsfleetv1.PolicyRevision)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		f.r.Follow(heads)
	}()
	t.Cleanup(func() {
		select {
		case <-followed:
		default:
			close(heads)
			<-followed
		}
	})
	gauge := func() float64 { return revisionGauge(t, reg, "default") }

	n := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1"})
	n.ack(n.next(time.Second))
	eventually(t, "ack of 1", func() bool { return status1(t, f.r, "n1").GetAppliedRevision() == 1 })

	t.Run("a newer head is pushed", func(t *testing.T) {
		heads <- rev("default", 3)
		m := n.next(2 * time.Second)
		if m.GetRevision().GetRevision() != 3 {
			t.Fatalf("push %v", m)
		}
		n.ack(m)
		if g := gauge(); g != 3 {
			t.Fatalf("policy_revision{pool=default} = %v, want 3", g)
		}
	})
	t.Run("a repeated or older head is not pushed", func(t *testing.T) {
		heads <- rev("default", 3)
		heads <- rev("default", 2)
		n.none(200 * time.Millisecond)
		if g := gauge(); g != 3 {
			t.Fatalf("policy_revision{pool=default} = %v, want 3", g)
		}
	})
	t.Run("a pool's first head replaces default's for its nodes", func(t *testing.T) {
		eu := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n2", Pool: "eu"})
		eu.ack(eu.next(time.Second))
		heads <- rev("eu", 1)
		if m := eu.next(2 * time.Second); m.GetRevision().GetPool() != "eu" || m.GetRevision().GetRevision() != 1 {
			t.Fatalf("push %v", m)
		}
		n.none(200 * time.Millisecond)
	})
	t.Run("Follow returns when the watch ends", func(t *testing.T) {
		close(heads)
		select {
		case <-followed:
		case <-time.After(5 * time.Second):
			t.Fatal("Follow did not return after its channel closed")
		}
	})
	if got := revisionGauge(t, reg, "eu"); got != 1 {
		t.Fatalf("policy_revision{pool=eu} = %v, want 1", got)
	}
}

// revisionGauge is wsfleet_control_policy_revision{pool}.
func revisionGauge(t *testing.T, reg *prometheus.Registry, pool string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wsfleet_control_policy_revision" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pool" && l.GetValue() == pool {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no wsfleet_control_policy_revision{pool=%q}", pool)
	return 0
}
