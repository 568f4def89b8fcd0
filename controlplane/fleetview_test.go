package controlplane

// One fleet view from every replica: three control planes in this process
// on one embedded etcd, nodes' watch streams and telemetry reporters on
// different replicas, and every replica answering for the whole fleet.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/telemetry/fanout"
)

// testLeaseTTL is the replicas' lease in these tests: a dead replica's
// nodes show disconnected within it.
const testLeaseTTL = 2 * time.Second

// replica starts a control plane on the etcd at endpoint.
func replica(t *testing.T, endpoint string, mutate ...func(*Config)) *Server {
	t.Helper()
	return startServer(t, func(c *Config) {
		onEtcd(endpoint)(c)
		c.LeaseTTL = testLeaseTTL
		for _, m := range mutate {
			m(c)
		}
	})
}

func fleetOf(t *testing.T, srv *Server) wsfleetv1.FleetServiceClient {
	return wsfleetv1.NewFleetServiceClient(dial(t, srv))
}

// listAll reads every page of ListNodes, pageSize nodes at a time, and
// fails the test if a node comes twice.
func listAll(t *testing.T, fc wsfleetv1.FleetServiceClient, pageSize int32) (map[string]*wsfleetv1.NodeStatus, string) {
	t.Helper()
	nodes := map[string]*wsfleetv1.NodeStatus{}
	req := &wsfleetv1.ListNodesRequest{PageSize: pageSize}
	degraded := ""
	for range 100 {
		resp, err := fc.ListNodes(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range resp.GetNodes() {
			if nodes[n.GetNodeId()] != nil {
				t.Fatalf("node %s listed twice", n.GetNodeId())
			}
			nodes[n.GetNodeId()] = n
		}
		if degraded == "" {
			degraded = resp.GetDegraded()
		}
		if resp.GetNextPageToken() == "" {
			return nodes, degraded
		}
		req.PageToken = resp.GetNextPageToken()
	}
	t.Fatal("ListNodes did not end within 100 pages")
	return nil, ""
}

func ids(nodes map[string]*wsfleetv1.NodeStatus) string {
	var out []string
	for id, n := range nodes {
		state := "connected"
		if !n.GetConnected() {
			state = "disconnected"
		}
		out = append(out, id+"="+state)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// report sends one telemetry batch to srv as node (its reporter a fresh
// one) and waits for the ack.
func report(t *testing.T, srv *Server, node string, events ...*wsfleetv1.ErrorEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := wsfleetv1.NewNodeServiceClient(dial(t, srv)).ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.ReportTelemetryRequest{NodeId: node, ReporterId: fmt.Sprint(node, "-", time.Now().UnixNano()), Sequence: 1, Events: events}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
}

func event(class wsfleetv1.ErrorClass, trace string, at time.Time) *wsfleetv1.ErrorEvent {
	return &wsfleetv1.ErrorEvent{Class: class, TraceId: trace, Origin: "https://app.example.com", Time: timestamppb.New(at)}
}

func TestEveryReplicaListsTheWholeFleetOnce(t *testing.T) {
	e := etcdtest.Start(t, nil)
	rs := []*Server{replica(t, e.Endpoint), replica(t, e.Endpoint), replica(t, e.Endpoint)}
	attached := map[string]int{"n1": 0, "n2": 0, "n3": 1, "n4": 2, "n5": 2}
	for id, r := range attached {
		watchAs(t, rs[r], id, "").ackNext()
	}
	// A node that only reports telemetry, to B.
	report(t, rs[1], "reporter-only", event(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, "r1", time.Now()))

	want := "n1=connected,n2=connected,n3=connected,n4=connected,n5=connected,reporter-only=disconnected"
	for i, r := range rs {
		fc := fleetOf(t, r)
		for _, pageSize := range []int32{0, 1, 2} {
			t.Run(fmt.Sprintf("replica %d in pages of %d", i, pageSize), func(t *testing.T) {
				var got string
				waitFor(t, 10*time.Second, "the whole fleet, each node once", func() bool {
					nodes, degraded := listAll(t, fc, pageSize)
					got = ids(nodes)
					if got != want || degraded != "" {
						return false
					}
					for id, n := range nodes {
						if id != "reporter-only" && (n.GetAppliedRevision() != 1 || n.GetHeadRevision() != 1 || n.GetAhead()) {
							return false
						}
					}
					return nodes["reporter-only"].GetTelemetryEvents() == 1
				})
			})
		}
	}
}

func TestAReplicaThatDiesHasItsNodesShownDisconnectedWithinTheLeaseTTL(t *testing.T) {
	e := etcdtest.Start(t, nil)
	proxy := etcdtest.NewProxy(t, e.Endpoint)
	a, b := replica(t, e.Endpoint), replica(t, e.Endpoint)
	c := replica(t, proxy.Addr, func(c *Config) { c.Etcd.RequestTimeout = time.Second })
	watchAs(t, a, "on-a", "").ackNext()
	watchAs(t, c, "on-c", "").ackNext()
	for _, r := range []*Server{a, b} {
		waitFor(t, 10*time.Second, "both nodes connected on revision 1", func() bool {
			nodes, _ := listAll(t, fleetOf(t, r), 0)
			return ids(nodes) == "on-a=connected,on-c=connected" && nodes["on-c"].GetAppliedRevision() == 1
		})
	}

	// C dies: etcd hears nothing more from it, nobody reaches it.
	proxy.Cut()
	died := time.Now()
	c.grpc.Stop()

	for name, r := range map[string]*Server{"A": a, "B": b} {
		waitFor(t, testLeaseTTL+5*time.Second, name+" shows C's node disconnected", func() bool {
			nodes, _ := listAll(t, fleetOf(t, r), 0)
			return ids(nodes) == "on-a=connected,on-c=disconnected"
		})
	}
	t.Logf("C's node shown disconnected %s after C died (lease TTL %s)", time.Since(died).Round(time.Millisecond), testLeaseTTL)
	nodes, _ := listAll(t, fleetOf(t, a), 0)
	if n := nodes["on-c"]; n.GetAppliedRevision() != 1 || n.GetLastSeenTime() == nil || n.GetPool() != "default" {
		t.Fatalf("C's node lost its last known status: %v", n)
	}
}

func TestAReplicaCutOffFromEtcdKeepsItsNodesAndSaysSo(t *testing.T) {
	e := etcdtest.Start(t, nil)
	proxy := etcdtest.NewProxy(t, e.Endpoint)
	a := replica(t, e.Endpoint)
	c := replica(t, proxy.Addr, func(c *Config) { c.Etcd.RequestTimeout = time.Second })
	watchAs(t, a, "on-a", "").ackNext()
	onC := watchAs(t, c, "on-c", "")
	onC.ackNext()
	for name, r := range map[string]*Server{"A": a, "C": c} {
		waitFor(t, 10*time.Second, name+" sees the whole fleet", func() bool {
			nodes, degraded := listAll(t, fleetOf(t, r), 0)
			return ids(nodes) == "on-a=connected,on-c=connected" && degraded == ""
		})
	}

	proxy.Cut()
	t.Run("C lists its own node connected and says its view is degraded", func(t *testing.T) {
		var degraded string
		waitFor(t, testLeaseTTL+5*time.Second, "C says it is degraded", func() bool {
			var nodes map[string]*wsfleetv1.NodeStatus
			nodes, degraded = listAll(t, fleetOf(t, c), 0)
			return nodes["on-c"].GetConnected() && degraded != ""
		})
		if !strings.Contains(degraded, "etcd") {
			t.Fatalf("degraded = %q, want it to name etcd", degraded)
		}
		t.Logf("degraded: %s", degraded)
	})
	top := t // the late node's stream lives as long as the test
	t.Run("a node attaching to C meanwhile is served and listed there", func(t *testing.T) {
		// Nothing of a watch stream waits for etcd.
		if r := watchAs(top, c, "late-on-c", "").ackNext(); r.GetRevision() != 1 {
			t.Fatalf("pushed %d", r.GetRevision())
		}
		waitFor(t, 10*time.Second, "C lists it on revision 1", func() bool {
			nodes, _ := listAll(t, fleetOf(t, c), 0)
			return nodes["late-on-c"].GetConnected() && nodes["late-on-c"].GetAppliedRevision() == 1
		})
	})
	t.Run("A shows C's node disconnected", func(t *testing.T) {
		waitFor(t, testLeaseTTL+5*time.Second, "A shows on-c disconnected", func() bool {
			nodes, _ := listAll(t, fleetOf(t, a), 0)
			return ids(nodes) == "on-a=connected,on-c=disconnected"
		})
	})
	t.Run("once etcd is back C registers again and its nodes are connected everywhere", func(t *testing.T) {
		proxy.Heal()
		for name, r := range map[string]*Server{"A": a, "C": c} {
			waitFor(t, 15*time.Second, name+" shows every node connected, not degraded", func() bool {
				nodes, degraded := listAll(t, fleetOf(t, r), 0)
				return ids(nodes) == "late-on-c=connected,on-a=connected,on-c=connected" && degraded == ""
			})
		}
	})
}

// topBy is TopErrors on fc grouped by by, as "key=count" sorted, and the
// total.
func topBy(t *testing.T, fc wsfleetv1.FleetServiceClient, by wsfleetv1.TopErrorsRequest_GroupBy) (string, int64, *wsfleetv1.TopErrorsResponse) {
	t.Helper()
	resp, err := fc.TopErrors(context.Background(), &wsfleetv1.TopErrorsRequest{GroupBy: by})
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, g := range resp.GetGroups() {
		groups = append(groups, fmt.Sprintf("%s=%d", g.GetKey(), g.GetCount()))
	}
	sort.Strings(groups)
	return strings.Join(groups, ","), resp.GetTotal(), resp
}

func TestEveryReplicaAnswersEventQueriesForTheWholeFleet(t *testing.T) {
	e := etcdtest.Start(t, nil)
	rs := []*Server{replica(t, e.Endpoint), replica(t, e.Endpoint), replica(t, e.Endpoint)}
	for _, r := range rs {
		waitFor(t, 10*time.Second, "every replica registered", func() bool { return len(r.member.Peers()) == 2 })
	}
	now := time.Now()
	rejected, reset := wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET
	report(t, rs[0], "node-a",
		event(rejected, "trace-on-a", now.Add(-5*time.Second)),
		event(rejected, "", now.Add(-4*time.Second)),
		event(reset, "", now.Add(-3*time.Second)))
	folded := event(rejected, "", now.Add(-2*time.Second))
	folded.Repeat = 10 // counts ten times
	report(t, rs[1], "node-b", folded, event(reset, "", now.Add(-time.Second)))
	report(t, rs[2], "node-c", event(reset, "newest", now))

	t.Run("errors top on every replica adds up every replica's counts", func(t *testing.T) {
		for i, r := range rs {
			fc := fleetOf(t, r)
			byClass, total, resp := topBy(t, fc, wsfleetv1.TopErrorsRequest_GROUP_BY_CLASS)
			if byClass != "conn_reset=3,origin_rejected=12" || total != 15 || len(resp.GetMissingReplicas()) != 0 {
				t.Fatalf("replica %d: by class %s, total %d, missing %v", i, byClass, total, resp.GetMissingReplicas())
			}
			byNode, _, resp := topBy(t, fc, wsfleetv1.TopErrorsRequest_GROUP_BY_NODE)
			if byNode != "node-a=3,node-b=11,node-c=1" {
				t.Fatalf("replica %d: by node %s", i, byNode)
			}
			// node-b's most common class is the folded rejection, though
			// its replica told it apart from the reset only by counts.
			for _, g := range resp.GetGroups() {
				if g.GetKey() == "node-b" && (g.GetTopClass() != rejected || len(g.GetClasses()) != 2) {
					t.Fatalf("replica %d: node-b's group %v", i, g)
				}
			}
			byOrigin, _, resp := topBy(t, fc, wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN)
			if byOrigin != "https://app.example.com=15" || resp.GetGroups()[0].GetTopClass() != rejected {
				t.Fatalf("replica %d: by origin %s (%v)", i, byOrigin, resp.GetGroups())
			}
		}
	})
	t.Run("the errors chart on every replica adds up every replica's counts per minute", func(t *testing.T) {
		for i, r := range rs {
			resp, err := fleetOf(t, r).ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{
				StartTime: timestamppb.New(now.Add(-10 * time.Minute)), EndTime: timestamppb.New(now.Add(time.Minute)),
			}})
			if err != nil {
				t.Fatal(err)
			}
			var sums []string
			for _, s := range resp.GetSeries() {
				var n int64
				for _, c := range s.GetCounts() {
					n += c
				}
				if len(s.GetCounts()) != int(resp.GetBuckets()) {
					t.Fatalf("replica %d: %d counts for %d buckets", i, len(s.GetCounts()), resp.GetBuckets())
				}
				sums = append(sums, fmt.Sprintf("%s=%d", s.GetClass(), n))
			}
			if got := strings.Join(sums, ","); got != "ERROR_CLASS_ORIGIN_REJECTED=12,ERROR_CLASS_CONN_RESET=3" || len(resp.GetMissingReplicas()) != 0 || resp.GetBuckets() < 11 {
				t.Fatalf("replica %d: %s in %d buckets, missing %v", i, got, resp.GetBuckets(), resp.GetMissingReplicas())
			}
		}
	})
	t.Run("a trace reported to A is found on C", func(t *testing.T) {
		resp, err := fleetOf(t, rs[2]).QueryEvents(context.Background(), &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{TraceId: "trace-on-a"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetNodeId() != "node-a" || len(resp.GetMissingReplicas()) != 0 {
			t.Fatalf("trace-on-a on C: %v", resp)
		}
	})
	t.Run("errors tail merges every replica's events newest first within the limit", func(t *testing.T) {
		resp, err := fleetOf(t, rs[1]).QueryEvents(context.Background(), &wsfleetv1.QueryEventsRequest{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, ev := range resp.GetEvents() {
			nodes = append(nodes, ev.GetNodeId())
		}
		if got := strings.Join(nodes, ","); got != "node-c,node-b,node-b,node-a" {
			t.Fatalf("newest 4 events from B: %s", got)
		}
	})
	t.Run("a tail on B has every replica's backlog and A's new events", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a tail that gets nothing fails, not hangs
		defer cancel()
		tail, err := fleetOf(t, rs[1]).TailEvents(ctx, &wsfleetv1.TailEventsRequest{Backlog: 3})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range 3 {
			m, err := tail.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m.GetEvent().GetNodeId())
		}
		if strings.Join(got, ",") != "node-b,node-b,node-c" {
			t.Fatalf("backlog, oldest first: %v", got)
		}
		report(t, rs[0], "node-a", event(rejected, "live-on-a", time.Now()))
		m, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetEvent().GetTraceId() != "live-on-a" {
			t.Fatalf("the tail on B got %v, want A's new event", m)
		}
	})
}

// register puts a replica's key in etcd under a lease of its own, as a
// replica at addr would: the others then ask it too.
func register(t *testing.T, e *etcdtest.Etcd, id, addr string) {
	t.Helper()
	cli := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(map[string]string{"addr": addr})
	if _, err := cli.Put(ctx, replicas.KeyDir(DefaultEtcdPrefix)+id, string(v), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
}

// hungReplica is a replica whose FleetService never answers: a process
// that is stuck.
func hungReplica(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	wsfleetv1.RegisterFleetServiceServer(srv, hung{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return l.Addr().String()
}

type hung struct {
	wsfleetv1.UnimplementedFleetServiceServer
}

func (hung) QueryEvents(ctx context.Context, _ *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hung) TopErrors(ctx context.Context, _ *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hung) TailEvents(_ *wsfleetv1.TailEventsRequest, st wsfleetv1.FleetService_TailEventsServer) error {
	<-st.Context().Done()
	return st.Context().Err()
}

func TestAReplicaThatDoesNotAnswerMakesAFlaggedPartialAnswerWithinThePeerTimeout(t *testing.T) {
	const peerTimeout = time.Second
	e := etcdtest.Start(t, nil)
	a := replica(t, e.Endpoint, func(c *Config) { c.PeerTimeout = peerTimeout })
	b := replica(t, e.Endpoint)
	hung, down := hungReplica(t), closedAddr(t)
	register(t, e, "r-hung", hung)
	register(t, e, "r-down", down)
	waitFor(t, 10*time.Second, "A knows every replica", func() bool { return len(a.member.Peers()) == 3 })
	report(t, b, "node-b", event(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, "on-b", time.Now()))

	wantMissing := func(t *testing.T, missing []*wsfleetv1.ReplicaError) {
		t.Helper()
		got := map[string]string{}
		for _, m := range missing {
			got[m.GetReplica()] = m.GetError()
		}
		if len(got) != 2 || got[hung] != "no answer within 1s" || !strings.Contains(got[down], "Unavailable") {
			t.Fatalf("missing replicas %v, want %s without an answer within 1s and %s unavailable", got, hung, down)
		}
	}
	bound := peerTimeout + 5*time.Second
	t.Run("errors top", func(t *testing.T) {
		start := time.Now()
		resp, err := fleetOf(t, a).TopErrors(context.Background(), &wsfleetv1.TopErrorsRequest{})
		if took := time.Since(start); took > bound {
			t.Errorf("answered after %s", took)
		}
		if err != nil {
			t.Fatal(err)
		}
		wantMissing(t, resp.GetMissingReplicas())
		if resp.GetTotal() != 1 {
			t.Fatalf("total %d, want B's event", resp.GetTotal())
		}
	})
	t.Run("trace", func(t *testing.T) {
		start := time.Now()
		resp, err := fleetOf(t, a).QueryEvents(context.Background(), &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{TraceId: "on-b"}})
		if took := time.Since(start); took > bound {
			t.Errorf("answered after %s", took)
		}
		if err != nil {
			t.Fatal(err)
		}
		wantMissing(t, resp.GetMissingReplicas())
		if len(resp.GetEvents()) != 1 {
			t.Fatalf("events %v, want B's", resp.GetEvents())
		}
	})
	t.Run("errors tail --follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a tail that gets nothing fails, not hangs
		defer cancel()
		tail, err := fleetOf(t, a).TailEvents(ctx, &wsfleetv1.TailEventsRequest{Backlog: 5})
		if err != nil {
			t.Fatal(err)
		}
		var lost []*wsfleetv1.ReplicaError
		var backlog []string
		for len(lost) < 2 {
			m, err := tail.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if m.GetReplicaLost() != nil {
				lost = append(lost, m.GetReplicaLost())
			} else {
				backlog = append(backlog, m.GetEvent().GetTraceId())
			}
		}
		wantMissing(t, lost)
		if !slices.Equal(backlog, []string{"on-b"}) {
			t.Fatalf("backlog %v, want B's event", backlog)
		}
	})
	t.Run("a call forwarded by a replica is answered by that replica alone", func(t *testing.T) {
		// What B answers A: its own event, no missing replica (B asks no one).
		resp, err := fleetOf(t, b).TopErrors(forwardedCtx(), &wsfleetv1.TopErrorsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal() != 1 || len(resp.GetMissingReplicas()) != 0 {
			t.Fatalf("forwarded call: %v", resp)
		}
	})
}

// forwardedCtx is a call's context as a replica forwards it.
func forwardedCtx() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), fanout.ForwardedHeader, "r-test")
}

func TestReplicaSettingsAreChecked(t *testing.T) {
	etcd := func(c *Config) { onEtcd("127.0.0.1:1")(c) }
	tests := []struct {
		name   string
		mutate func(*Config)
		says   string
	}{
		{"an advertised address without the etcd store", func(c *Config) { c.AdvertiseAddr = "127.0.0.1:7400" }, "need --store etcd"},
		{"a gRPC address on every interface and nothing advertised", func(c *Config) { etcd(c); c.GRPCAddr = ":7400" }, "--advertise-addr HOST:PORT"},
		{"a wildcard advertised address", func(c *Config) { etcd(c); c.AdvertiseAddr = "0.0.0.0:7400" }, "wildcard"},
		{"an advertised address without a port", func(c *Config) { etcd(c); c.AdvertiseAddr = "127.0.0.1" }, "not HOST:PORT"},
		{"an address reached over the network without TLS", func(c *Config) { etcd(c); c.AdvertiseAddr = "10.1.2.3:7400" }, "plaintext"},
		{"a lease shorter than etcd grants", func(c *Config) { etcd(c); c.LeaseTTL = time.Second }, "--lease-ttl must be at least 2s"},
		{"a peer CA without TLS", func(c *Config) { etcd(c); c.PeerCA = "ca.pem" }, "need --tls-cert"},
		{"a peer certificate without its key", func(c *Config) { etcd(c); c.PeerCert = "c.pem" }, "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := quietConfig(t.TempDir())
			tt.mutate(&cfg)
			srv, err := New(cfg)
			if err == nil {
				srv.Close()
				t.Fatal("New accepted it")
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("New: %v, want ErrConfig saying %q", err, tt.says)
			}
		})
	}
}

func TestATailSaysWhenAReplicasEventsStopAndResume(t *testing.T) {
	e := etcdtest.Start(t, nil)
	// B is reached through a proxy the test can cut: the network between
	// the replicas fails while B lives.
	bAddr := freeAddr(t)
	proxy := etcdtest.NewProxy(t, bAddr)
	a := replica(t, e.Endpoint)
	b := replica(t, e.Endpoint, func(c *Config) { c.GRPCAddr, c.AdvertiseAddr = bAddr, proxy.Addr })
	waitFor(t, 10*time.Second, "A knows B", func() bool { return len(a.member.Peers()) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a tail that gets nothing fails, not hangs
	defer cancel()
	tail, err := fleetOf(t, a).TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The header comes once every replica's tail is open.
	if _, err := tail.Header(); err != nil {
		t.Fatal(err)
	}
	next := func() *wsfleetv1.TailEventsResponse {
		t.Helper()
		m, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	report(t, b, "node-b", event(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, "before", time.Now()))
	if m := next(); m.GetEvent().GetTraceId() != "before" {
		t.Fatalf("got %v, want B's event", m)
	}

	proxy.Cut()
	if m := next(); m.GetReplicaLost().GetReplica() != proxy.Addr {
		t.Fatalf("got %v, want B said lost", m)
	}
	proxy.Heal()
	if m := next(); m.GetReplicaBack() != proxy.Addr {
		t.Fatalf("got %v, want B said back", m)
	}
	report(t, b, "node-b", event(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, "after", time.Now()))
	if m := next(); m.GetEvent().GetTraceId() != "after" {
		t.Fatalf("got %v, want B's new event", m)
	}
}
