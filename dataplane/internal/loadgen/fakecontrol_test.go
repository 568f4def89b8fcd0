package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeControl is the part of the control plane Propagation talks to, and
// nothing else (dataplane never imports controlplane): GetPolicy and
// ApplyPolicy on the default pool, a Watch that pushes the head to every
// watching stream as soon as it changes and counts the ACKs, and ListNodes
// saying when each node's last ACK arrived. It may listen on several
// addresses: replicas sharing one store.
type fakeControl struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	wsfleetv1.UnimplementedNodeServiceServer
	wsfleetv1.UnimplementedFleetServiceServer

	// withhold, when set, is a node id that gets the first push of its
	// stream and never another: a control plane that loses a node.
	withhold string
	// applyOffset is added to the revision ApplyPolicy reports: a control
	// plane that another writer has moved on.
	applyOffset int64
	// refuseWatch ends every watch stream at once with Unavailable.
	refuseWatch bool
	// ackDelay is how long the control plane takes to take in an ACK
	// before it stamps its arrival.
	ackDelay time.Duration
	// ackClockBehind sets the arrival stamps this far in the past: a
	// control plane whose clock is behind the bench's.
	ackClockBehind time.Duration
	// hideAcks makes ListNodes never show an applied revision.
	hideAcks bool

	srv *grpc.Server
	ln  net.Listener

	mu       sync.Mutex
	head     *wsfleetv1.PolicyRevision
	watchers map[chan struct{}]struct{}
	nodes    map[string]*wsfleetv1.NodeStatus
	// watchesOn counts watch streams by the address they came in on.
	watchesOn map[string]int

	acks    atomic.Int64
	watches atomic.Int64
}

type fakeControlOption func(*fakeControl)

func newFakeControl(addr string, opts ...fakeControlOption) (*fakeControl, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &fakeControl{
		ln:        ln,
		srv:       grpc.NewServer(),
		head:      &wsfleetv1.PolicyRevision{Pool: policy.DefaultPool, Revision: 1, Policy: policy.Default()},
		watchers:  map[chan struct{}]struct{}{},
		nodes:     map[string]*wsfleetv1.NodeStatus{},
		watchesOn: map[string]int{},
	}
	for _, o := range opts {
		o(f)
	}
	wsfleetv1.RegisterPolicyServiceServer(f.srv, f)
	wsfleetv1.RegisterNodeServiceServer(f.srv, f)
	wsfleetv1.RegisterFleetServiceServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// listenAlso serves f on one more loopback address, another replica of
// the same store, and returns it.
func (f *fakeControl) listenAlso(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.srv.Serve(ln) }()
	return ln.Addr().String()
}

func (f *fakeControl) watchesAt(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchesOn[addr]
}

// acked records that node applied rev, stamping the ACK's arrival.
func (f *fakeControl) acked(node string, rev int64) {
	time.Sleep(f.ackDelay)
	now := time.Now().Add(-f.ackClockBehind)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[node] = &wsfleetv1.NodeStatus{NodeId: node, Pool: policy.DefaultPool, Connected: true,
		AppliedPool: policy.DefaultPool, AppliedRevision: rev, LastAckTime: timestamppb.New(now)}
}

// ListNodes answers every node in one page, as a control plane that
// predates paging does.
func (f *fakeControl) ListNodes(_ context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &wsfleetv1.ListNodesResponse{}
	for _, n := range f.nodes {
		n = proto.Clone(n).(*wsfleetv1.NodeStatus)
		if f.hideAcks {
			n.AppliedRevision, n.LastAckTime = 0, nil
		}
		resp.Nodes = append(resp.Nodes, n)
	}
	return resp, nil
}

func startFakeControl(t *testing.T, opts ...fakeControlOption) *fakeControl {
	t.Helper()
	f, err := newFakeControl("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeControl) addr() string { return f.ln.Addr().String() }

func (f *fakeControl) current() *wsfleetv1.PolicyRevision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head
}

func (f *fakeControl) GetPolicy(_ context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	if req.GetPool() != policy.DefaultPool {
		return nil, status.Errorf(codes.NotFound, "pool %q", req.GetPool())
	}
	return &wsfleetv1.GetPolicyResponse{Revision: f.current()}, nil
}

func (f *fakeControl) ApplyPolicy(_ context.Context, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	if err := policy.Check(req.GetPolicy()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.head.GetRevision()
	if req.ExpectedRevision != nil && req.GetExpectedRevision() != prev {
		return nil, status.Errorf(codes.FailedPrecondition, "head is %d", prev)
	}
	f.head = &wsfleetv1.PolicyRevision{Pool: policy.DefaultPool, Revision: prev + 1, Policy: req.GetPolicy(), Message: req.GetMessage()}
	for w := range f.watchers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	reported := proto.Clone(f.head).(*wsfleetv1.PolicyRevision)
	reported.Revision += f.applyOffset
	return &wsfleetv1.ApplyPolicyResponse{Revision: reported, PreviousRevision: prev}, nil
}

func (f *fakeControl) Watch(stream wsfleetv1.NodeService_WatchServer) error {
	f.watches.Add(1)
	if f.refuseWatch {
		return status.Error(codes.Unavailable, "fake control plane refuses watches")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "hello first")
	}
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	notify := make(chan struct{}, 1)
	f.mu.Lock()
	f.watchers[notify] = struct{}{}
	if p, ok := peer.FromContext(stream.Context()); ok && p.LocalAddr != nil {
		f.watchesOn[p.LocalAddr.String()]++
	}
	f.mu.Unlock()
	// The revision each nonce carried, for the ACKs.
	var sentMu sync.Mutex
	sentRev := map[string]int64{}
	defer func() {
		f.mu.Lock()
		delete(f.watchers, notify)
		f.mu.Unlock()
	}()

	// The receive goroutine ends when Watch returns: gRPC then ends the
	// stream and Recv fails.
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if ack := m.GetAck(); ack != nil {
				f.acks.Add(1)
				sentMu.Lock()
				rev, ok := sentRev[ack.GetNonce()]
				sentMu.Unlock()
				if ok {
					f.acked(hello.GetNodeId(), rev)
				}
			}
		}
	}()

	var sent int64
	if hello.GetAppliedPool() == policy.DefaultPool {
		sent = hello.GetAppliedRevision()
	}
	for nonce := 0; ; {
		if head := f.current(); head.GetRevision() != sent && (nonce == 0 || hello.GetNodeId() != f.withhold) {
			nonce++
			sentMu.Lock()
			sentRev[fmt.Sprint(nonce)] = head.GetRevision()
			sentMu.Unlock()
			if err := stream.Send(&wsfleetv1.WatchResponse{Revision: head, Nonce: fmt.Sprint(nonce)}); err != nil {
				return err
			}
			sent = head.GetRevision()
		}
		select {
		case <-notify:
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// fakeControlMain is wsfleet-control's command-line contract around
// fakeControl: its flags, the JSON ready line with grpc_addr, exit 0 on
// SIGTERM.
func fakeControlMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fake-control", flag.ContinueOnError)
	fs.Bool("dev", false, "")
	grpcAddr := fs.String("grpc-addr", "", "")
	httpAddr := fs.String("http-addr", "", "")
	dataDir := fs.String("data-dir", "", "")
	fs.String("log-format", "", "")
	store := fs.String("store", "bolt", "")
	etcd := fs.String("etcd-endpoints", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "no --data-dir")
		return 2
	}
	if *store == "etcd" {
		// A replica: the store, and so everything, is etcd's (the fake
		// etcd is a fake control plane).
		return serveProxy(ctx, *etcd, controlReadyMsg, controlAddrField)
	}
	f, err := newFakeControl(*grpcAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if pf := os.Getenv(pidFileEnv); pf != "" {
		if err := os.WriteFile(pf, fmt.Appendf(nil, "%d", os.Getpid()), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	// The real one logs before its ready line too.
	fmt.Fprintln(os.Stderr, `{"level":"info","msg":"default pool bootstrapped","revision":1}`)
	fmt.Fprintf(os.Stderr, `{"level":"info","msg":"control plane listening","grpc_addr":%q,"http_addr":%q}`+"\n", f.addr(), *httpAddr)
	<-ctx.Done()
	f.srv.Stop()
	return 0
}
