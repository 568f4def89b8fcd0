package etcdmirror_test

import (
	"context"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wsfleet/wsfleet/controlplane/internal/etcdmirror"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// copyOf is a Handler keeping a map, as the package's users do.
type copyOf struct {
	mu      sync.Mutex
	keys    map[string]string
	loading map[string]string
	resets  int
	broken  bool
}

func (c *copyOf) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loading = map[string]string{}
	c.resets++
}

func (c *copyOf) Put(kv *mvccpb.KeyValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading != nil {
		c.loading[string(kv.Key)] = string(kv.Value)
		return
	}
	c.keys[string(kv.Key)] = string(kv.Value)
}

func (c *copyOf) Delete(key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, string(key))
}

func (c *copyOf) Synced() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys, c.loading, c.broken = c.loading, nil, false
}

func (c *copyOf) Broken(error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken = true
}

func (c *copyOf) Resumed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken = false
}

func (c *copyOf) state() (string, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(c.keys)) {
		kv = append(kv, k+"="+c.keys[k])
	}
	return strings.Join(kv, ","), c.resets, c.broken
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheCopyFollowsTheRangeAndIsReadAgainAfterACompaction(t *testing.T) {
	e := etcdtest.Start(t, nil)
	proxy := etcdtest.NewProxy(t, e.Endpoint)
	direct := e.Client(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	put := func(k, v string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := direct.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// More keys than one page, and a key outside the range.
	for i := range 1005 {
		put("/r/k"+strings.Repeat("0", 4-len(itoa(i)))+itoa(i), "v")
	}
	put("/s/outside", "x")

	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &copyOf{keys: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		etcdmirror.Run(ctx, etcdmirror.Config{Client: cli, Key: "/r/", End: "/r0", RequestTimeout: time.Second, What: "test", Log: log}, c)
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	waitFor(t, "every key of the range read", func() bool {
		s, _, _ := c.state()
		return strings.Count(s, ",") == 1004 && !strings.Contains(s, "outside")
	})

	// Changes follow the read.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := direct.Delete(ctx2, "/r/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	put("/r/a", "1")
	waitFor(t, "the changes followed", func() bool {
		s, resets, _ := c.state()
		return s == "/r/a=1" && resets == 1
	})

	// Cut off while the range changes and etcd compacts what the watch
	// would resume from: once back, the copy is read again. (A cut itself
	// is silent: etcd's client retries the watch; the replicas notice it
	// by their lease.)
	proxy.Cut()
	put("/r/b", "2")
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	if _, err := direct.Delete(ctx3, "/r/a"); err != nil {
		t.Fatal(err)
	}
	e.Compact(t)
	proxy.Heal()
	waitFor(t, "the range read again", func() bool {
		s, resets, broken := c.state()
		return s == "/r/b=2" && resets >= 2 && !broken
	})
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
