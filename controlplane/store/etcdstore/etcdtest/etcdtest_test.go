package etcdtest_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The embedded etcd stores and serves; a proxy in front of it makes it
// unreachable on Cut and reachable again on Heal.
func TestEtcdServesAndTheProxyCutsAndHeals(t *testing.T) {
	e := etcdtest.Start(t, nil)
	c := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Get(ctx, "k"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v, %v", r, err)
	}
	e.Compact(t)

	p := etcdtest.NewProxy(t, e.Endpoint)
	pc, err := clientv3.New(clientv3.Config{Endpoints: []string{p.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	get := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := pc.Get(ctx, "k")
		return err
	}
	if err := get(10 * time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := get(500 * time.Millisecond); err == nil {
		t.Fatal("a read through a cut proxy succeeded")
	}
	p.Heal()
	deadline := time.Now().Add(15 * time.Second)
	for get(time.Second) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no read through the healed proxy within 15s")
		}
	}
}
