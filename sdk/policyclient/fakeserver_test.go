package policyclient

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// waitTimeout bounds every wait in these tests; reaching it is a failure.
const waitTimeout = 5 * time.Second

// fakeNodeService is a NodeService the tests script: every accepted Watch
// stream is handed to the test (after its hello) as a fakeStream, on which
// the test pushes revisions, reads ACKs and NACKs, and fails the stream.
type fakeNodeService struct {
	wsfleetv1.UnimplementedNodeServiceServer

	// noHeader: do not send response headers after the hello, as a server
	// that answers only with pushes would.
	noHeader bool
	streams  chan *fakeStream
	nonces   atomic.Uint64
	// replyTap, when set, gets the arrival time of every ACK and NACK
	// instead of the stream's replies channel (benchmarks).
	replyTap chan time.Time
}

type fakeStream struct {
	hello   *wsfleetv1.NodeHello
	replies chan *wsfleetv1.WatchRequest
	cmds    chan fakeCmd
	done    chan struct{} // closed when the handler returned
	svc     *fakeNodeService
}

type fakeCmd struct {
	resp *wsfleetv1.WatchResponse
	fail error
}

func (f *fakeNodeService) Watch(s grpc.BidiStreamingServer[wsfleetv1.WatchRequest, wsfleetv1.WatchResponse]) error {
	first, err := s.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return fmt.Errorf("first message is not a hello: %v", first)
	}
	if !f.noHeader {
		if err := s.SendHeader(metadata.MD{}); err != nil {
			return err
		}
	}
	fs := &fakeStream{
		hello:   first.GetHello(),
		replies: make(chan *wsfleetv1.WatchRequest, 64),
		cmds:    make(chan fakeCmd),
		done:    make(chan struct{}),
		svc:     f,
	}
	defer close(fs.done)
	select {
	case f.streams <- fs:
	case <-s.Context().Done():
		return s.Context().Err()
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := s.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if f.replyTap != nil {
				select {
				case f.replyTap <- time.Now():
				case <-s.Context().Done():
					return
				}
				continue
			}
			select {
			case fs.replies <- r:
			case <-s.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case cmd := <-fs.cmds:
			if cmd.fail != nil {
				return cmd.fail
			}
			if err := s.Send(cmd.resp); err != nil {
				return err
			}
		case <-recvErr:
			return nil
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
}

// harness is a fake control plane on loopback and a ClientConn to it.
type harness struct {
	svc  *fakeNodeService
	srv  *grpc.Server
	conn *grpc.ClientConn
	addr string
}

func newHarness(t testing.TB, noHeader bool) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{svc: &fakeNodeService{noHeader: noHeader, streams: make(chan *fakeStream, 16)}, addr: lis.Addr().String()}
	h.srv = grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(h.srv, h.svc)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.srv.Serve(lis)
	}()
	h.conn = dialConn(t, h.addr)
	t.Cleanup(func() {
		h.srv.Stop()
		wg.Wait()
	})
	return h
}

// dialConn makes a ClientConn to addr, closed when the test ends.
func dialConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// nextStream waits for the next accepted Watch stream.
func (h *harness) nextStream(t testing.TB) *fakeStream {
	t.Helper()
	select {
	case fs := <-h.svc.streams:
		return fs
	case <-time.After(waitTimeout):
		t.Fatal("no Watch stream arrived")
		return nil
	}
}

// push sends rev on the stream and returns the nonce it carries.
func (fs *fakeStream) push(t testing.TB, rev *wsfleetv1.PolicyRevision) string {
	t.Helper()
	nonce := "n" + strconv.FormatUint(fs.svc.nonces.Add(1), 10)
	fs.send(t, fakeCmd{resp: &wsfleetv1.WatchResponse{Revision: rev, Nonce: nonce}})
	return nonce
}

// fail ends the stream with err.
func (fs *fakeStream) fail(t testing.TB, err error) {
	t.Helper()
	fs.send(t, fakeCmd{fail: err})
	select {
	case <-fs.done:
	case <-time.After(waitTimeout):
		t.Fatal("stream handler did not return")
	}
}

func (fs *fakeStream) send(t testing.TB, cmd fakeCmd) {
	t.Helper()
	select {
	case fs.cmds <- cmd:
	case <-fs.done:
		t.Fatal("stream already ended")
	case <-time.After(waitTimeout):
		t.Fatal("stream handler did not take the command")
	}
}

// reply waits for the next ACK or NACK.
func (fs *fakeStream) reply(t testing.TB) *wsfleetv1.WatchRequest {
	t.Helper()
	select {
	case r := <-fs.replies:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("no ACK or NACK arrived")
		return nil
	}
}

// expectAck waits for the next reply and checks it ACKs nonce.
func (fs *fakeStream) expectAck(t testing.TB, nonce string) {
	t.Helper()
	r := fs.reply(t)
	if r.GetAck() == nil || r.GetAck().GetNonce() != nonce {
		t.Fatalf("got %v, want ACK of %s", r, nonce)
	}
}

// expectNack waits for the next reply, checks it NACKs nonce and returns
// its error text.
func (fs *fakeStream) expectNack(t testing.TB, nonce string) string {
	t.Helper()
	r := fs.reply(t)
	if r.GetNack() == nil || r.GetNack().GetNonce() != nonce {
		t.Fatalf("got %v, want NACK of %s", r, nonce)
	}
	return r.GetNack().GetError()
}

// revision returns a valid revision; n also goes into the policy so that
// revisions differ in content.
func revision(pool string, n int64) *wsfleetv1.PolicyRevision {
	p := policy.Default()
	p.Limits.MaxConnections = int32(1000 + n)
	return &wsfleetv1.PolicyRevision{
		Pool:       pool,
		Revision:   n,
		Author:     "test",
		CreateTime: timestamppb.New(time.Unix(1_700_000_000+n, 0)),
		Message:    fmt.Sprintf("revision %d", n),
		Policy:     p,
	}
}

// recorder is an Apply that records what it was given and can be made to
// fail or to block.
type recorder struct {
	mu      sync.Mutex
	applied []int64
	fail    error
	// gate, when set, is received from before Apply returns; entered gets
	// the revision each time Apply starts.
	gate    chan struct{}
	entered chan int64
}

func (r *recorder) apply(rev *wsfleetv1.PolicyRevision) error {
	if r.entered != nil {
		r.entered <- rev.GetRevision()
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.applied = append(r.applied, rev.GetRevision())
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.applied...)
}

// runClient runs c until the test ends, then cancels it and checks that
// Run returned context.Canceled.
func runClient(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
