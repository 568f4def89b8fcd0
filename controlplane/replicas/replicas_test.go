package replicas_test

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const prefix = "/wsfleet/"

func run(t *testing.T, cli *clientv3.Client, addr string) (*replicas.Member, func()) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	m, err := replicas.New(replicas.Config{Client: cli, Prefix: prefix, Addr: addr, LeaseTTL: replicas.MinLeaseTTL, RequestTimeout: time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	stop := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(stop)
	return m, stop
}

func waitFor(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReplicasFindEachOtherAndAStoppedOneIsGoneAtOnce(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	a, _ := run(t, cli, "10.0.0.1:7400")
	b, stopB := run(t, cli, "10.0.0.2:7400")
	waitFor(t, 10*time.Second, "A and B see each other", func() bool {
		pa, pb := a.Peers(), b.Peers()
		return len(pa) == 1 && pa[0] == replicas.Peer{ID: b.ID(), Addr: "10.0.0.2:7400"} &&
			len(pb) == 1 && pb[0].ID == a.ID()
	})
	if !a.Alive(a.ID()) || !a.Alive(b.ID()) || a.Alive("r-nobody") || a.Degraded() != "" {
		t.Fatalf("alive %v %v %v, degraded %q", a.Alive(a.ID()), a.Alive(b.ID()), a.Alive("r-nobody"), a.Degraded())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, replicas.KeyDir(prefix)+b.ID())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("B's key: %v %v", resp, err)
	}
	var rec map[string]string
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil || rec["addr"] != "10.0.0.2:7400" {
		t.Fatalf("B's key holds %s", resp.Kvs[0].Value)
	}

	// A clean stop revokes the lease: the key is gone when Run returns,
	// not after the TTL.
	stopB()
	if resp, err := cli.Get(ctx, replicas.KeyDir(prefix)+b.ID()); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("B's key after its stop: %v %v", resp, err)
	}
	waitFor(t, 10*time.Second, "B gone from A's view", func() bool { return len(a.Peers()) == 0 && !a.Alive(b.ID()) })
}

func TestALostLeaseIsReplacedAndSaidMeanwhile(t *testing.T) {
	e := etcdtest.Start(t, nil)
	proxy := etcdtest.NewProxy(t, e.Endpoint)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	m, _ := run(t, cli, "127.0.0.1:7400")
	var first clientv3.LeaseID
	var changed <-chan struct{}
	waitFor(t, 10*time.Second, "a lease", func() bool {
		first, changed = m.Lease()
		return first != 0
	})

	proxy.Cut()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the lease was not said lost within 10s")
	}
	if id, _ := m.Lease(); id != 0 || m.Degraded() == "" {
		t.Fatalf("lease %x, degraded %q", id, m.Degraded())
	}
	proxy.Heal()
	waitFor(t, 15*time.Second, "a new lease", func() bool {
		id, _ := m.Lease()
		return id != 0 && id != first && m.Degraded() == ""
	})
	// The key is back, under the new lease.
	other := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := other.Get(ctx, replicas.KeyDir(prefix)+m.ID())
	id, _ := m.Lease()
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != id {
		t.Fatalf("key %v (%v), want it under lease %x", resp, err, id)
	}
}

func TestConfigIsChecked(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  replicas.Config
	}{
		{"no client", replicas.Config{Prefix: prefix, Addr: "a:1"}},
		{"a prefix without its slash", replicas.Config{Client: &clientv3.Client{}, Prefix: "/wsfleet", Addr: "a:1"}},
		{"no address", replicas.Config{Client: &clientv3.Client{}, Prefix: prefix}},
		{"a lease shorter than etcd grants", replicas.Config{Client: &clientv3.Client{}, Prefix: prefix, Addr: "a:1", LeaseTTL: time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := replicas.New(tt.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
