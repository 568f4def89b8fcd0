package etcdstore_test

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func quiet() logrus.FieldLogger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// openStore opens the store under prefix through endpoint and closes it
// at the end of the test; the cleanup accepts a store the test closed.
func openStore(t testing.TB, endpoint, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{endpoint}, Prefix: prefix, Log: quiet()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the store suite on a real etcd: every sub-test
// gets a store of its own under a fresh prefix, reached through a proxy
// the gap sub-test cuts.
func TestConformance(t *testing.T) {
	e := etcdtest.Start(t, nil)
	var (
		n       atomic.Int64
		mu      sync.Mutex
		proxies = map[store.Store]*etcdtest.Proxy{}
	)
	newStore := func(t *testing.T) store.Store {
		p := etcdtest.NewProxy(t, e.Endpoint)
		s := openStore(t, p.Addr, fmt.Sprintf("/conformance/%d/", n.Add(1)))
		mu.Lock()
		proxies[s] = p
		mu.Unlock()
		return s
	}
	shared := func(t *testing.T, s store.Store) store.Store {
		// Another replica: its own client, straight to etcd.
		return openStore(t, e.Endpoint, s.(*etcdstore.Store).Prefix())
	}
	gap := func(t *testing.T, s store.Store, during func()) {
		mu.Lock()
		p := proxies[s]
		mu.Unlock()
		p.Cut()
		during()
		e.Compact(t)
		p.Heal()
	}
	storetest.Run(t, newStore, storetest.WithShared(shared), storetest.WithGap(gap))
}
