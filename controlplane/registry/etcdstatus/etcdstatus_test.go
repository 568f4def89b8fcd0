package etcdstatus_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/registry"
	"github.com/wsfleet/wsfleet/controlplane/registry/etcdstatus"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const prefix = "/wsfleet/"

// clock is a settable registry clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// replica is one replica's registry, membership and Sync, running until
// the test ends.
type replica struct {
	reg    *registry.Registry
	member *replicas.Member
	sync   *etcdstatus.Sync
}

func start(t *testing.T, cli *clientv3.Client, regCfg registry.Config, interval time.Duration) *replica {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	regCfg.Shared, regCfg.Log = true, log
	reg, err := registry.New(regCfg)
	if err != nil {
		t.Fatal(err)
	}
	member, err := replicas.New(replicas.Config{Client: cli, Prefix: prefix, Addr: "127.0.0.1:1", LeaseTTL: 2 * time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := etcdstatus.New(etcdstatus.Config{
		Client: cli, Prefix: prefix, Member: member, Registry: reg,
		WriteInterval: interval, SweepInterval: 100 * time.Millisecond, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { member.Run(ctx) })
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &replica{reg: reg, member: member, sync: s}
}

func get(t *testing.T, cli *clientv3.Client, key string) *clientv3.GetResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func put(t *testing.T, cli *clientv3.Client, key, value string, opts ...clientv3.OpOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value, opts...); err != nil {
		t.Fatal(err)
	}
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

func listed(t *testing.T, reg *registry.Registry) map[string]*wsfleetv1.NodeStatus {
	t.Helper()
	resp, err := reg.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*wsfleetv1.NodeStatus{}
	for _, n := range resp.GetNodes() {
		out[n.GetNodeId()] = n
	}
	return out
}

// record is a node status record as a replica writes it.
func record(t *testing.T, s *wsfleetv1.NodeStatus) string {
	t.Helper()
	b, err := etcdstatus.Encode(registry.LocalRecord{Status: s})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestANodesStatusIsWrittenAtMostOncePerInterval(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	const interval = 300 * time.Millisecond
	r := start(t, cli, registry.Config{}, interval)
	key := etcdstatus.NodesDir(prefix) + r.member.ID() + "/busy"

	// Every write of the record, as etcd's watch reports it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := cli.Watch(ctx, key)
	var writes sync.WaitGroup
	var mu sync.Mutex
	count := 0
	writes.Go(func() {
		for wr := range watch {
			mu.Lock()
			count += len(wr.Events)
			mu.Unlock()
		}
	})

	begin := time.Now()
	const batches = 100
	for range batches {
		r.reg.TelemetryBatch("busy", 1, 0)
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(begin)
	waitFor(t, 10*time.Second, "the last status written", func() bool {
		resp := get(t, cli, key)
		if len(resp.Kvs) != 1 {
			return false
		}
		s, _, err := etcdstatus.Decode(resp.Kvs[0].Value)
		return err == nil && s.GetTelemetryEvents() == batches
	})
	cancel()
	writes.Wait()
	// One write at once, then at most one per interval: never one per
	// change.
	most := int(took/interval) + 2
	if count > most || count < 2 {
		t.Fatalf("%d changes over %s made %d writes, want between 2 and %d", batches, took.Round(time.Millisecond), count, most)
	}
	t.Logf("%d changes over %s: %d writes", batches, took.Round(time.Millisecond), count)
}

func TestEachReplicaSeesTheOthersRecordsAndNotItsOwnTwice(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	a := start(t, cli, registry.Config{}, 50*time.Millisecond)
	b := start(t, cli, registry.Config{}, 50*time.Millisecond)
	a.reg.TelemetryBatch("on-a", 3, 0)
	b.reg.TelemetryBatch("on-b", 4, 0)
	for name, r := range map[string]*replica{"A": a, "B": b} {
		waitFor(t, 10*time.Second, name+" lists both", func() bool {
			nodes := listed(t, r.reg)
			return len(nodes) == 2 && nodes["on-a"].GetTelemetryEvents() == 3 && nodes["on-b"].GetTelemetryEvents() == 4
		})
	}
	// A record that cannot be read is left out, not fatal.
	put(t, cli, etcdstatus.NodesDir(prefix)+"r-other/garbage", "not a record")
	put(t, cli, etcdstatus.NodesDir(prefix)+"r-other/wrong-id", record(t, &wsfleetv1.NodeStatus{NodeId: "someone-else"}))
	put(t, cli, etcdstatus.NodesDir(prefix)+"r-other/fine", record(t, &wsfleetv1.NodeStatus{NodeId: "fine", LastSeenTime: timestamppb.Now()}))
	waitFor(t, 10*time.Second, "A lists the readable record only", func() bool {
		nodes := listed(t, a.reg)
		return len(nodes) == 3 && nodes["fine"] != nil
	})
	if d := a.sync.Degraded(); d != "" {
		t.Fatalf("degraded: %s", d)
	}
}

func TestForgottenNodesRecordsAreDeleted(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	clk := &clock{t: time.Now()}
	r := start(t, cli, registry.Config{Now: clk.Now, ForgetAfter: time.Hour}, 50*time.Millisecond)
	nodes := etcdstatus.NodesDir(prefix)
	old := timestamppb.New(clk.Now().Add(-2 * time.Hour))

	// A gone replica's record of a node not seen for ForgetAfter; a live
	// replica's; a gone replica's seen recently.
	put(t, cli, nodes+"r-gone/stale", record(t, &wsfleetv1.NodeStatus{NodeId: "stale", LastSeenTime: old}))
	put(t, cli, nodes+"r-gone/recent", record(t, &wsfleetv1.NodeStatus{NodeId: "recent", LastSeenTime: timestamppb.New(clk.Now())}))
	lease, err := cli.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	put(t, cli, replicas.KeyDir(prefix)+"r-live", `{"addr":"127.0.0.1:2"}`, clientv3.WithLease(lease.ID))
	put(t, cli, nodes+"r-live/its-own", record(t, &wsfleetv1.NodeStatus{NodeId: "its-own", LastSeenTime: old}))
	// This replica's own node, to be forgotten.
	r.reg.TelemetryBatch("mine", 1, 0)
	mine := nodes + r.member.ID() + "/mine"
	waitFor(t, 10*time.Second, "this replica's record written", func() bool { return len(get(t, cli, mine).Kvs) == 1 })

	waitFor(t, 10*time.Second, "the gone replica's stale record deleted", func() bool {
		return len(get(t, cli, nodes+"r-gone/stale").Kvs) == 0
	})
	for _, key := range []string{nodes + "r-gone/recent", nodes + "r-live/its-own"} {
		if len(get(t, cli, key).Kvs) != 1 {
			t.Fatalf("%s deleted", key)
		}
	}
	clk.advance(2 * time.Hour)
	waitFor(t, 10*time.Second, "this replica's forgotten node's record deleted", func() bool {
		return len(get(t, cli, mine).Kvs) == 0
	})
}

func TestDegradedSaysWhenEtcdCannotBeReached(t *testing.T) {
	e := etcdtest.Start(t, nil)
	proxy := etcdtest.NewProxy(t, e.Endpoint)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the replica has stopped (cleanups run last first).
	t.Cleanup(func() { _ = cli.Close() })
	r := start(t, cli, registry.Config{}, 50*time.Millisecond)
	waitFor(t, 10*time.Second, "registered, not degraded", func() bool {
		lease, _ := r.member.Lease()
		return lease != 0 && r.sync.Degraded() == ""
	})
	proxy.Cut()
	waitFor(t, 10*time.Second, "degraded", func() bool { return r.sync.Degraded() != "" })
	// The registry keeps working meanwhile.
	r.reg.TelemetryBatch("while-cut", 1, 0)
	if listed(t, r.reg)["while-cut"] == nil {
		t.Fatal("a change while etcd is away is not listed here")
	}
	proxy.Heal()
	waitFor(t, 15*time.Second, "whole again, and the change written", func() bool {
		return r.sync.Degraded() == "" && len(get(t, e.Client(t), etcdstatus.NodesDir(prefix)+r.member.ID()+"/while-cut").Kvs) == 1
	})
}
