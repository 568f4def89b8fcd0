package registry

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type watchOnly struct {
	wsfleetv1.UnimplementedNodeServiceServer
	r *Registry
}

func (w watchOnly) Watch(s wsfleetv1.NodeService_WatchServer) error { return w.r.Watch(s) }

type listOnly struct {
	wsfleetv1.UnimplementedFleetServiceServer
	r *Registry
}

func (l listOnly) ListNodes(ctx context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	return l.r.ListNodes(ctx, req)
}

func rev(pool string, n int64) *wsfleetv1.PolicyRevision {
	p := policy.Default()
	p.Limits.MaxConnections = int32(1000 + n)
	return &wsfleetv1.PolicyRevision{Pool: pool, Revision: n, Policy: p}
}

// fixture runs a registry behind a real gRPC server on loopback.
func fixture(t *testing.T, cfg Config) (*Registry, wsfleetv1.NodeServiceClient) {
	t.Helper()
	f := newServed(t, cfg)
	return f.r, f.nodes
}

// served is a registry behind a real gRPC server on loopback, serving
// Watch and ListNodes; watchEnds receives what every Watch handler returned.
type served struct {
	r         *Registry
	nodes     wsfleetv1.NodeServiceClient
	fleet     wsfleetv1.FleetServiceClient
	watchEnds chan error
}

func newServed(t *testing.T, cfg Config) *served {
	t.Helper()
	if cfg.Log == nil {
		log := logrus.New()
		log.SetOutput(io.Discard)
		cfg.Log = log
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &served{r: r, watchEnds: make(chan error, 256)}
	srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, withTestIdentity(ss))
		select {
		case f.watchEnds <- err:
		default:
		}
		return err
	}))
	wsfleetv1.RegisterNodeServiceServer(srv, watchOnly{r: r})
	wsfleetv1.RegisterFleetServiceServer(srv, listOnly{r: r})
	go func() { _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		r.Shutdown()
		srv.Stop()
	})
	f.nodes = wsfleetv1.NewNodeServiceClient(cc)
	f.fleet = wsfleetv1.NewFleetServiceClient(cc)
	return f
}

// Metadata a test client sends to say which credential its stream
// has; without it a stream is a credential "test" that may act as any
// node, as the control plane's interceptors would store it.
const (
	credKey  = "test-credential"
	nodesKey = "test-nodes"
	poolsKey = "test-pools"
)

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

func withTestIdentity(ss grpc.ServerStream) grpc.ServerStream {
	ctx := ss.Context()
	id := auth.Identity{Name: "test", Role: auth.RoleNode, Credential: "test", Nodes: auth.Patterns{"*"}, Pools: auth.Patterns{"*"}}
	if v := metadata.ValueFromIncomingContext(ctx, credKey); len(v) > 0 {
		id.Name, id.Credential = v[0], "token:"+v[0]
	}
	if v := metadata.ValueFromIncomingContext(ctx, nodesKey); len(v) > 0 {
		id.Nodes = strings.Split(v[0], ",")
	}
	if v := metadata.ValueFromIncomingContext(ctx, poolsKey); len(v) > 0 {
		id.Pools = strings.Split(v[0], ",")
	}
	return identityStream{ServerStream: ss, ctx: auth.WithIdentity(ctx, id)}
}

// as is a context whose streams carry credential cred, allowed nodes and
// pools (comma-separated patterns).
func as(cred, nodes, pools string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), credKey, cred, nodesKey, nodes, poolsKey, pools)
}

type fakeNode struct {
	t      *testing.T
	stream wsfleetv1.NodeService_WatchClient
	cancel context.CancelFunc
	pushes chan *wsfleetv1.WatchResponse
	done   chan error
}

func connect(t *testing.T, c wsfleetv1.NodeServiceClient, hello *wsfleetv1.NodeHello) *fakeNode {
	t.Helper()
	return connectAs(t, context.Background(), c, hello)
}

// connectAs is connect with the credential of ctx (see as).
func connectAs(t *testing.T, parent context.Context, c wsfleetv1.NodeServiceClient, hello *wsfleetv1.NodeHello) *fakeNode {
	t.Helper()
	ctx, cancel := context.WithCancel(parent)
	st, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, stream: st, cancel: cancel, pushes: make(chan *wsfleetv1.WatchResponse, 16), done: make(chan error, 1)}
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				n.done <- err
				return
			}
			n.pushes <- m
		}
	}()
	t.Cleanup(func() { cancel(); <-n.done })
	return n
}

func (n *fakeNode) next(within time.Duration) *wsfleetv1.WatchResponse {
	n.t.Helper()
	select {
	case m := <-n.pushes:
		return m
	case err := <-n.done:
		n.done <- err // for cleanup
		n.t.Fatalf("stream ended: %v", err)
	case <-time.After(within):
		n.t.Fatalf("no push within %s", within)
	}
	return nil
}

func (n *fakeNode) none(within time.Duration) {
	n.t.Helper()
	select {
	case m := <-n.pushes:
		n.t.Fatalf("unexpected push of %s@%d", m.GetRevision().GetPool(), m.GetRevision().GetRevision())
	case <-time.After(within):
	}
}

func (n *fakeNode) ack(m *wsfleetv1.WatchResponse) {
	n.t.Helper()
	if err := n.stream.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Ack{Ack: &wsfleetv1.PolicyAck{Nonce: m.GetNonce()}}}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) nack(m *wsfleetv1.WatchResponse, why string) {
	n.t.Helper()
	if err := n.stream.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Nack{Nack: &wsfleetv1.PolicyNack{Nonce: m.GetNonce(), Error: why}}}); err != nil {
		n.t.Fatal(err)
	}
}

func status1(t *testing.T, r *Registry, id string) *wsfleetv1.NodeStatus {
	t.Helper()
	resp, _ := r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	for _, s := range resp.GetNodes() {
		if s.GetNodeId() == id {
			return s
		}
	}
	t.Fatalf("node %s not listed", id)
	return nil
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHelloGetsTheEffectivePolicyAndAckIsRecorded(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 3)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", Pool: "eu", Labels: map[string]string{"zone": "a"}})
	m := n.next(time.Second)
	if m.GetRevision().GetPool() != "default" || m.GetRevision().GetRevision() != 3 || m.GetNonce() == "" {
		t.Fatalf("push %v", m)
	}
	n.ack(m)
	eventually(t, "ack recorded", func() bool { return status1(t, r, "n1").GetAppliedRevision() == 3 })
	s := status1(t, r, "n1")
	if !s.GetConnected() || s.GetPool() != "eu" || s.GetAppliedPool() != "default" || s.GetPushes() != 1 || s.GetLabels()["zone"] != "a" || s.GetLastAckTime() == nil {
		t.Fatalf("status %v", s)
	}

	t.Run("the pool's first policy replaces default's", func(t *testing.T) {
		r.advance(rev("eu", 1))
		m := n.next(time.Second)
		if m.GetRevision().GetPool() != "eu" || m.GetRevision().GetRevision() != 1 {
			t.Fatalf("push %v", m)
		}
		n.ack(m)
	})
	t.Run("a change to default no longer concerns the node", func(t *testing.T) {
		r.advance(rev("default", 4))
		n.none(200 * time.Millisecond)
	})
}

func TestANodeAlreadyRunningTheHeadGetsNoPush(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 5)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", AppliedPool: "default", AppliedRevision: 5})
	n.none(200 * time.Millisecond)
	if s := status1(t, r, "n1"); s.GetAppliedRevision() != 5 || s.GetPushes() != 0 {
		t.Fatalf("status %v", s)
	}
	r.advance(rev("default", 6))
	if m := n.next(time.Second); m.GetRevision().GetRevision() != 6 {
		t.Fatalf("push %v", m)
	}
}

func TestANackedRevisionIsNotPushedAgain(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	n.ack(n.next(time.Second))
	eventually(t, "ack", func() bool { return status1(t, r, "n1").GetAppliedRevision() == 1 })
	r.advance(rev("default", 2))
	m := n.next(time.Second)
	n.nack(m, "unsupported field")
	eventually(t, "nack recorded", func() bool { return status1(t, r, "n1").GetLastNackRevision() == 2 })
	s := status1(t, r, "n1")
	if s.GetLastNackError() != "unsupported field" || s.GetAppliedRevision() != 1 {
		t.Fatalf("status %v", s)
	}
	// An unrelated nudge (a commit to another pool) and a reconnect must not resend it.
	r.advance(rev("other", 1))
	n.none(200 * time.Millisecond)
	n.cancel()
	n2 := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", AppliedPool: "default", AppliedRevision: 1})
	n2.none(200 * time.Millisecond)
	if p := status1(t, r, "n1").GetPushes(); p != 2 {
		t.Fatalf("pushes = %d, want 2 (rev 1 and rev 2 once)", p)
	}
	r.advance(rev("default", 3))
	m = n2.next(time.Second)
	if m.GetRevision().GetRevision() != 3 {
		t.Fatalf("push %v", m)
	}

	t.Run("a later revision the node applies clears the NACK", func(t *testing.T) {
		if s := status1(t, r, "n1"); s.GetLastNackRevision() != 2 {
			t.Fatalf("before the ACK: last NACK %d, want 2 still shown", s.GetLastNackRevision())
		}
		n2.ack(m)
		eventually(t, "ack of 3", func() bool { return status1(t, r, "n1").GetAppliedRevision() == 3 })
		if s := status1(t, r, "n1"); s.GetLastNackRevision() != 0 || s.GetLastNackError() != "" {
			t.Fatalf("after applying revision 3 the NACK of 2 is still shown: %v", s)
		}
	})
}

func TestStaleNoncesAreIgnored(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	first := n.next(time.Second)
	r.advance(rev("default", 2))
	second := n.next(time.Second)
	n.ack(first) // stale: quotes the first push's nonce
	time.Sleep(100 * time.Millisecond)
	if s := status1(t, r, "n1"); s.GetAppliedRevision() != 0 {
		t.Fatalf("a stale ack was recorded: %v", s)
	}
	n.ack(second)
	eventually(t, "ack", func() bool { return status1(t, r, "n1").GetAppliedRevision() == 2 })
}

func TestANewStreamReplacesTheOldOne(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	old := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	old.next(time.Second)
	fresh := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	fresh.next(time.Second)
	select {
	case err := <-old.done:
		if status.Code(err) != codes.Aborted {
			t.Fatalf("old stream ended with %v", err)
		}
		old.done <- err // for cleanup
	case <-time.After(2 * time.Second):
		t.Fatal("old stream still open")
	}
	if !status1(t, r, "n1").GetConnected() {
		t.Fatal("node shown disconnected")
	}
}

func TestBadStreamsAreRefused(t *testing.T) {
	_, c := fixture(t, Config{HelloTimeout: 200 * time.Millisecond})
	tests := []struct {
		name  string
		first *wsfleetv1.WatchRequest
		code  codes.Code
	}{
		{"an ack before a hello is refused", &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Ack{Ack: &wsfleetv1.PolicyAck{}}}, codes.InvalidArgument},
		{"a hello without node id is refused", &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{}}}, codes.InvalidArgument},
		{"a hello with a bad pool is refused", &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: "x", Pool: "Bad Pool"}}}, codes.InvalidArgument},
		{"silence is cut after the hello timeout", nil, codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			st, err := c.Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tt.first != nil {
				_ = st.Send(tt.first)
			}
			_, err = st.Recv()
			if status.Code(err) != tt.code {
				t.Fatalf("err = %v, want %v", err, tt.code)
			}
		})
	}
}

func TestDisconnectAndTelemetryAreShown(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	n.next(time.Second)
	r.TelemetryBatch("n1", 10, 2)
	r.TelemetryBatch("n1", 5, 0)
	n.cancel()
	eventually(t, "disconnect", func() bool { return !status1(t, r, "n1").GetConnected() })
	s := status1(t, r, "n1")
	if s.GetTelemetryEvents() != 15 || s.GetTelemetryDropped() != 2 {
		t.Fatalf("status %v", s)
	}
}

func TestShutdownEndsStreamsWithUnavailable(t *testing.T) {
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1"})
	n.next(time.Second)
	r.Shutdown()
	select {
	case err := <-n.done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v", err)
		}
		n.done <- err
	case <-time.After(2 * time.Second):
		t.Fatal("stream not ended")
	}
}
