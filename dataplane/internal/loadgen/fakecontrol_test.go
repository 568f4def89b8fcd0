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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeControl is the part of the control plane Propagation talks to, and
// nothing else (dataplane never imports controlplane): GetPolicy and
// ApplyPolicy on the default pool, and a Watch that pushes the head to
// every watching stream as soon as it changes and counts the ACKs.
type fakeControl struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	wsfleetv1.UnimplementedNodeServiceServer

	// withhold, when set, is a node id that gets the first push of its
	// stream and never another: a control plane that loses a node.
	withhold string
	// applyOffset is added to the revision ApplyPolicy reports: a control
	// plane that another writer has moved on.
	applyOffset int64
	// refuseWatch ends every watch stream at once with Unavailable.
	refuseWatch bool

	srv *grpc.Server
	ln  net.Listener

	mu       sync.Mutex
	head     *wsfleetv1.PolicyRevision
	watchers map[chan struct{}]struct{}

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
		ln:       ln,
		srv:      grpc.NewServer(),
		head:     &wsfleetv1.PolicyRevision{Pool: policy.DefaultPool, Revision: 1, Policy: policy.Default()},
		watchers: map[chan struct{}]struct{}{},
	}
	for _, o := range opts {
		o(f)
	}
	wsfleetv1.RegisterPolicyServiceServer(f.srv, f)
	wsfleetv1.RegisterNodeServiceServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
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
	f.mu.Unlock()
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
			if m.GetAck() != nil {
				f.acks.Add(1)
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "no --data-dir")
		return 2
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
