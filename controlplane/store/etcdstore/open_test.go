package etcdstore_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesAnIdentityOnlyUnderAnEmptyPrefix(t *testing.T) {
	e := etcdtest.Start(t, nil)
	first := openStore(t, e.Endpoint, "/fleet")
	if !first.Created() || !strings.HasPrefix(first.ID(), "etcd-") || first.Prefix() != "/fleet/" {
		t.Fatalf("first open: created %v, id %q, prefix %q; want a new etcd- identity under /fleet/", first.Created(), first.ID(), first.Prefix())
	}
	again := openStore(t, e.Endpoint, "/fleet/")
	if again.Created() || again.ID() != first.ID() {
		t.Fatalf("second open: created %v, id %q; want the existing %q", again.Created(), again.ID(), first.ID())
	}
	// "/fleet" is "/fleet/": keys of "/fleet2/" are no concern of it.
	sibling := openStore(t, e.Endpoint, "/fleet2")
	if !sibling.Created() || sibling.ID() == first.ID() {
		t.Fatalf("a sibling prefix shares the store: created %v, id %q", sibling.Created(), sibling.ID())
	}
}

func TestReplicasOpeningAnEmptyPrefixTogetherAgreeOnOneIdentity(t *testing.T) {
	e := etcdtest.Start(t, nil)
	const replicas = 8
	stores := make([]*etcdstore.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, Log: quiet()})
		})
	}
	close(start)
	wg.Wait()
	created, ids := 0, map[string]bool{}
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		defer s.Close()
		ids[s.ID()] = true
		if s.Created() {
			created++
		}
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d replicas created a store, identities %v; want one creator and one identity", created, ids)
	}
}

func TestOpenRefusesAPrefixItCannotUse(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, prefix string)
		want    error
		says    string
	}{
		{"a head without an identity is wsfleet data without an identity", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"heads/default", "x")
		}, etcdstore.ErrNoIdentity, "heads/default"},
		{"a revision without an identity is wsfleet data without an identity", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"revs/default/00000000000000000001", "x")
		}, etcdstore.ErrNoIdentity, "revs/default"},
		{"a node status record left without an identity is wsfleet data without an identity", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"fleet/nodes/r-0123/edge-1", "{}")
		}, etcdstore.ErrNoIdentity, "fleet/nodes"},
		{"another program's key is foreign", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"config/feature-flags", "on")
		}, etcdstore.ErrForeign, "config/feature-flags"},
		{"a newer layout is refused", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"meta/store_id", "etcd-0123456789abcdef")
			put(t, cli, prefix+"meta/schema_version", "2")
		}, etcdstore.ErrSchemaTooNew, "upgrade"},
		{"an identity without a schema version is corrupt", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"meta/store_id", "etcd-0123456789abcdef")
		}, etcdstore.ErrCorrupt, "schema_version"},
		{"an identity that is not one is corrupt", func(t *testing.T, prefix string) {
			put(t, cli, prefix+"meta/store_id", "two\nlines")
			put(t, cli, prefix+"meta/schema_version", "1")
		}, etcdstore.ErrCorrupt, "not a store identity"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "/refuse/" + string(rune('a'+i)) + "/"
			tt.prepare(t, prefix)
			s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, Prefix: prefix, Log: quiet()})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !errors.Is(err, tt.want) || !strings.Contains(msg, tt.says) || !strings.Contains(msg, prefix) || !strings.Contains(msg, e.Endpoint) || strings.Contains(msg, "\n") {
				t.Fatalf("Open: error = %q, want one line, %v, naming %q, the prefix and the endpoint", msg, tt.want, tt.says)
			}
			// Nothing was written over.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := cli.Get(ctx, prefix+"meta/store_id")
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != etcdstore.ErrSchemaTooNew && tt.want != etcdstore.ErrCorrupt && len(resp.Kvs) != 0 {
				t.Fatalf("a refused prefix got an identity %q", resp.Kvs[0].Value)
			}
		})
	}
}

func TestCreateNeverReplacesAStore(t *testing.T) {
	e := etcdtest.Start(t, nil)
	s := openStore(t, e.Endpoint, "")
	_, err := etcdstore.Create(etcdstore.Config{Endpoints: []string{e.Endpoint}, Log: quiet()})
	if !errors.Is(err, etcdstore.ErrExists) || !strings.Contains(err.Error(), s.ID()) {
		t.Fatalf("Create over a store: %v, want ErrExists naming %s", err, s.ID())
	}
	fresh, err := etcdstore.Create(etcdstore.Config{Endpoints: []string{e.Endpoint}, Prefix: "/other/", Log: quiet()})
	if err != nil {
		t.Fatalf("Create under an empty prefix: %v", err)
	}
	defer fresh.Close()
	if !fresh.Created() || fresh.ID() == s.ID() {
		t.Fatalf("Create: created %v, id %q", fresh.Created(), fresh.ID())
	}
}

func TestAnUnreachableEtcdIsAnErrorWithinTheDialTimeout(t *testing.T) {
	// A port nothing listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()

	const timeout = 500 * time.Millisecond
	start := time.Now()
	s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{addr}, DialTimeout: timeout, Log: quiet()})
	took := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, etcdstore.ErrUnavailable) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "500ms") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Open: %v, want ErrUnavailable naming %s, the timeout and why", err, addr)
	}
	// Bounded, not a hang: generous for a loaded machine.
	if took > 10*time.Second {
		t.Fatalf("Open took %s with a %s dial timeout", took, timeout)
	}
}

func TestConfigIsChecked(t *testing.T) {
	tests := []struct {
		name string
		cfg  etcdstore.Config
	}{
		{"no endpoint", etcdstore.Config{}},
		{"an empty endpoint", etcdstore.Config{Endpoints: []string{"127.0.0.1:2379", " "}}},
		{"a certificate without its key", etcdstore.Config{Endpoints: []string{"127.0.0.1:2379"}, CertFile: "c.pem"}},
		{"a username without a password", etcdstore.Config{Endpoints: []string{"127.0.0.1:2379"}, Username: "root"}},
		{"a negative timeout", etcdstore.Config{Endpoints: []string{"127.0.0.1:2379"}, RequestTimeout: -time.Second}},
		{"a CA file that does not exist", etcdstore.Config{Endpoints: []string{"127.0.0.1:2379"}, CAFile: "/nonexistent/ca.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			s, err := etcdstore.Open(tt.cfg)
			if err == nil {
				_ = s.Close()
			}
			if !errors.Is(err, etcdstore.ErrInvalidConfig) {
				t.Fatalf("Open: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestAStoreReplacedUnderARunningReplicaFailsItsWrites(t *testing.T) {
	e := etcdtest.Start(t, nil)
	s := openStore(t, e.Endpoint, "")
	if _, err := s.Append(t.Context(), storetest.Revision("default", "first"), 0); err != nil {
		t.Fatal(err)
	}
	// Someone deletes the store and a new one is created in its place.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client(t).Delete(ctx, etcdstore.DefaultPrefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, e.Endpoint, "")
	if !other.Created() {
		t.Fatal("no new store was created in place of the deleted one")
	}
	_, err := s.Append(t.Context(), storetest.Revision("default", "into the new store"), store.AnyRevision)
	if !errors.Is(err, etcdstore.ErrReplaced) {
		t.Fatalf("Append after the store was replaced: %v, want ErrReplaced", err)
	}
	if _, err := other.Head(t.Context(), "default"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the new store got a revision from the old one's replica: %v", err)
	}
}

// TestAWriteWithoutAnAnswerIsSettled: a write whose transaction gets no
// answer may or may not have been committed. The store reads the revision
// back: committed (the answer was lost, or came after the store stopped
// waiting) is a success, not a failure the API would pass on as "nothing
// was stored"; not committed is ErrUnavailable and nothing is stored.
func TestAWriteWithoutAnAnswerIsSettled(t *testing.T) {
	e := etcdtest.Start(t, nil)
	const (
		none = iota
		loseTheAnswer
		neverSend
	)
	var fault atomic.Int32
	faulty := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method != "/etcdserverpb.KV/Txn" {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		switch fault.Swap(none) {
		case loseTheAnswer:
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return err
			}
			<-ctx.Done() // the answer never arrives
			return ctx.Err()
		case neverSend:
			<-ctx.Done()
			return ctx.Err()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	s, err := etcdstore.Open(etcdstore.WithDialOptions(etcdstore.Config{
		Endpoints: []string{e.Endpoint}, RequestTimeout: time.Second, Log: quiet(),
	}, faulty))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(t.Context(), storetest.Revision("default", "first"), 0); err != nil {
		t.Fatal(err)
	}

	t.Run("a committed write whose answer is lost is a success", func(t *testing.T) {
		fault.Store(loseTheAnswer)
		r, err := s.Append(t.Context(), storetest.Revision("default", "answer lost"), 1)
		if err != nil || r.GetRevision() != 2 {
			t.Fatalf("Append = revision %d, %v; want revision 2, which etcd stored", r.GetRevision(), err)
		}
		if h, err := s.Head(t.Context(), "default"); err != nil || h.GetMessage() != "answer lost" {
			t.Fatalf("head %v (%v)", h, err)
		}
	})
	t.Run("a write that never reached etcd is unavailable and stores nothing", func(t *testing.T) {
		fault.Store(neverSend)
		_, err := s.Append(t.Context(), storetest.Revision("default", "never sent"), 2)
		if !errors.Is(err, etcdstore.ErrUnavailable) {
			t.Fatalf("Append: %v, want ErrUnavailable", err)
		}
		if h, err := s.Head(t.Context(), "default"); err != nil || h.GetRevision() != 2 {
			t.Fatalf("head %v (%v), want revision 2 still", h, err)
		}
	})
}
