package controlplane

// Control-plane replicas sharing one store: two Servers in this process
// on one embedded etcd. The push follows the store, so an apply through
// either replica reaches the nodes attached to the other.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// onEtcd makes a Config use the etcd store at endpoint.
func onEtcd(endpoint string) func(*Config) {
	return func(c *Config) {
		c.Store = StoreEtcd
		c.Etcd.Endpoints = []string{endpoint}
	}
}

func TestAnApplyOnOneReplicaReachesTheNodesOfAnother(t *testing.T) {
	e := etcdtest.Start(t, nil)
	a := startServer(t, onEtcd(e.Endpoint))
	b := startServer(t, onEtcd(e.Endpoint))
	if a.store.ID() != b.store.ID() || !strings.HasPrefix(a.store.ID(), "etcd-") {
		t.Fatalf("replicas on one etcd have store identities %q and %q, want one", a.store.ID(), b.store.ID())
	}
	onA, onB := watchAs(t, a, "node-a", "eu"), watchAs(t, b, "node-b", "eu")
	for _, w := range []*watcher{onA, onB} {
		if r := w.ackNext(); r.GetPool() != policy.DefaultPool || r.GetRevision() != 1 || r.GetStoreId() != a.store.ID() {
			t.Fatalf("first push %s@%d from %s, want default@1 from %s", r.GetPool(), r.GetRevision(), r.GetStoreId(), a.store.ID())
		}
	}

	apply := func(srv *Server, pool string, maxConns int32) *wsfleetv1.PolicyRevision {
		t.Helper()
		p := policy.Default()
		p.Limits.MaxConnections = maxConns
		resp, err := wsfleetv1.NewPolicyServiceClient(dial(t, srv)).ApplyPolicy(context.Background(),
			&wsfleetv1.ApplyPolicyRequest{Pool: pool, Policy: p, Message: "replica test"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRevision()
	}
	t.Run("a change applied on A reaches the node on B", func(t *testing.T) {
		want := apply(a, policy.DefaultPool, 4242)
		for what, w := range map[string]*watcher{"the node on B": onB, "the node on A": onA} {
			got := w.ackNext()
			if got.GetRevision() != want.GetRevision() || got.GetPolicy().GetLimits().GetMaxConnections() != 4242 {
				t.Fatalf("%s got %s@%d, want default@%d", what, got.GetPool(), got.GetRevision(), want.GetRevision())
			}
		}
	})
	t.Run("a pool's first policy applied on B reaches the node on A", func(t *testing.T) {
		want := apply(b, "eu", 777)
		for what, w := range map[string]*watcher{"the node on A": onA, "the node on B": onB} {
			if got := w.ackNext(); got.GetPool() != "eu" || got.GetRevision() != want.GetRevision() {
				t.Fatalf("%s got %s@%d, want eu@%d", what, got.GetPool(), got.GetRevision(), want.GetRevision())
			}
		}
	})
	t.Run("each replica shows every node on the head and the head's revision", func(t *testing.T) {
		for name, srv := range map[string]*Server{"A": a, "B": b} {
			waitFor(t, 10*time.Second, name+" shows both nodes' ACKs of eu@1", func() bool {
				resp, err := srv.fleet.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
				if err != nil || len(resp.GetNodes()) != 2 {
					return false
				}
				for _, n := range resp.GetNodes() {
					if !n.GetConnected() || n.GetAppliedPool() != "eu" || n.GetAppliedRevision() != 1 || n.GetHeadRevision() != 1 {
						return false
					}
				}
				return true
			})
		}
		body := httpGet(t, "http://"+a.HTTPAddr().String()+"/metrics")
		for _, want := range []string{`wsfleet_control_policy_revision{pool="default"} 2`, `wsfleet_control_policy_revision{pool="eu"} 1`} {
			if !strings.Contains(body, want) {
				t.Errorf("A's /metrics lacks %s (the head committed on B)", want)
			}
		}
	})
}
