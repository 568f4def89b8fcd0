package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// cuttingListener remembers the raw connections it accepted so that a
// handler can cut them mid-call, as a crash or a network failure would.
type cuttingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *cuttingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *cuttingListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

// cutter receives every call, then cuts the TCP connection before
// answering.
type cutter struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	lis   *cuttingListener
	calls atomic.Int32
}

func (c *cutter) hangUp(ctx context.Context) error {
	c.calls.Add(1)
	c.lis.cut()
	<-ctx.Done()
	return ctx.Err()
}

func (c *cutter) GetPolicy(ctx context.Context, _ *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) ApplyPolicy(ctx context.Context, _ *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) RollbackPolicy(ctx context.Context, _ *wsfleetv1.RollbackPolicyRequest) (*wsfleetv1.RollbackPolicyResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) PromoteRollout(ctx context.Context, _ *wsfleetv1.PromoteRolloutRequest) (*wsfleetv1.PromoteRolloutResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) AbortRollout(ctx context.Context, _ *wsfleetv1.AbortRolloutRequest) (*wsfleetv1.AbortRolloutResponse, error) {
	return nil, c.hangUp(ctx)
}

func serveCutter(t *testing.T) (*cutter, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &cuttingListener{Listener: inner}
	c := &cutter{lis: lis}
	s := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(s, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return c, inner.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// silentAddr accepts TCP connections and never says a word, so no gRPC
// connection is ever established.
func silentAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return lis.Addr().String()
}

func dialT(t *testing.T, addr string) *admin.Client {
	t.Helper()
	c, err := admin.Dial(admin.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type callFunc func(context.Context, wsfleetv1.PolicyServiceClient) error

var (
	apply callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Pool: "edge"})
		return err
	}
	applyDefault callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{})
		return err
	}
	dryRun callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{DryRun: true})
		return err
	}
	rollback callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.RollbackPolicy(ctx, &wsfleetv1.RollbackPolicyRequest{Pool: "edge", ToRevision: 1})
		return err
	}
	promote callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.PromoteRollout(ctx, &wsfleetv1.PromoteRolloutRequest{Pool: "edge", CanaryRevision: 2})
		return err
	}
	abort callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.AbortRollout(ctx, &wsfleetv1.AbortRolloutRequest{CanaryRevision: 2})
		return err
	}
	get callFunc = func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
		_, err := c.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{})
		return err
	}
)

func TestCallErrorsSayWhatIsKnownOfTheOutcome(t *testing.T) {
	tests := []struct {
		name     string
		addr     func(t *testing.T) string
		timeout  time.Duration
		call     callFunc
		want     error // the CallError kind
		wantCode codes.Code
		wantPool string
		notKind  error
	}{
		{"a write to a port nobody serves is unreachable", closedAddr, 10 * time.Second, apply, admin.ErrUnreachable, codes.Unavailable, "edge", admin.ErrOutcomeUnknown},
		{"a read from a port nobody serves is unreachable", closedAddr, 10 * time.Second, get, admin.ErrUnreachable, codes.Unavailable, "", admin.ErrConnectionLost},
		{"a write to a server that never finishes the handshake is unreachable at the deadline", silentAddr, 300 * time.Millisecond, apply, admin.ErrUnreachable, codes.DeadlineExceeded, "edge", admin.ErrOutcomeUnknown},
		{"an apply cut mid-call has an unknown outcome", cutAddr, 10 * time.Second, apply, admin.ErrOutcomeUnknown, codes.Unavailable, "edge", admin.ErrUnreachable},
		{"an apply to the default pool cut mid-call names the default pool", cutAddr, 10 * time.Second, applyDefault, admin.ErrOutcomeUnknown, codes.Unavailable, "default", admin.ErrUnreachable},
		{"a rollback cut mid-call has an unknown outcome", cutAddr, 10 * time.Second, rollback, admin.ErrOutcomeUnknown, codes.Unavailable, "edge", admin.ErrUnreachable},
		{"a rollout promotion cut mid-call has an unknown outcome", cutAddr, 10 * time.Second, promote, admin.ErrOutcomeUnknown, codes.Unavailable, "edge", admin.ErrUnreachable},
		{"a rollout abort cut mid-call has an unknown outcome", cutAddr, 10 * time.Second, abort, admin.ErrOutcomeUnknown, codes.Unavailable, "default", admin.ErrUnreachable},
		{"a dry run cut mid-call only lost its connection", cutAddr, 10 * time.Second, dryRun, admin.ErrConnectionLost, codes.Unavailable, "", admin.ErrOutcomeUnknown},
		{"a read cut mid-call only lost its connection", cutAddr, 10 * time.Second, get, admin.ErrConnectionLost, codes.Unavailable, "", admin.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialT(t, tt.addr(t))
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			err := tt.call(ctx, c.Policy())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if errors.Is(err, tt.notKind) {
				t.Errorf("%v is also %v", err, tt.notKind)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("status code %v, want %v (the classification must keep the status)", got, tt.wantCode)
			}
			var ce *admin.CallError
			if !errors.As(err, &ce) || ce.Pool != tt.wantPool {
				t.Errorf("got %#v, want a CallError for pool %q", err, tt.wantPool)
			}
		})
	}
}

// cutAddr serves a cutter and checks, when the test ends, that the call did
// reach it: "unknown outcome" must mean "sent".
func cutAddr(t *testing.T) string {
	c, addr := serveCutter(t)
	t.Cleanup(func() {
		if c.calls.Load() == 0 {
			t.Error("the call never reached the server")
		}
	})
	return addr
}

func TestAWriteCutAtTheDeadlineHasAnUnknownOutcome(t *testing.T) {
	rec := &slowApply{}
	c := dialT(t, serve(t, rec))
	// Connect first, so that the deadline is spent in the handler.
	if err := get(context.Background(), c.Policy()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := apply(ctx, c.Policy())
	if !errors.Is(err, admin.ErrOutcomeUnknown) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded classified as of unknown outcome", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = dryRun(ctx, c.Policy())
	var ce *admin.CallError
	if errors.As(err, &ce) || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a dry run at the deadline: got %#v, want the plain DeadlineExceeded", err)
	}
}

// slowApply answers reads and holds every apply until the caller gives up.
type slowApply struct{ recorder }

func (s *slowApply) ApplyPolicy(ctx context.Context, _ *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func storeStatus(t *testing.T) error {
	t.Helper()
	st, err := status.New(codes.Unavailable, "the control plane's policy store failed (append); nothing was stored, retry later").
		WithDetails(&errdetails.ErrorInfo{
			Reason:   admin.ReasonStoreUnavailable,
			Domain:   admin.ErrorDomain,
			Metadata: map[string]string{admin.StoreOperationKey: "append"},
		})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestAStoreFailureIsNotATransportFailure(t *testing.T) {
	rec := &recorder{applyErr: storeStatus(t)}
	c := dialT(t, serve(t, rec))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := apply(ctx, c.Policy())
	if !errors.Is(err, admin.ErrStoreUnavailable) {
		t.Fatalf("got %v, want ErrStoreUnavailable", err)
	}
	if errors.Is(err, admin.ErrOutcomeUnknown) || errors.Is(err, admin.ErrUnreachable) {
		t.Errorf("a store failure the server reported is classified as %v", err)
	}
	if op, ok := admin.StoreUnavailable(err); !ok || op != "append" {
		t.Errorf("StoreUnavailable = %q, %v; want append, true", op, ok)
	}
}

func TestStoreUnavailable(t *testing.T) {
	otherReason, _ := status.New(codes.Unavailable, "x").WithDetails(&errdetails.ErrorInfo{Reason: "SOMETHING_ELSE", Domain: admin.ErrorDomain})
	wrongCode, _ := status.New(codes.Internal, "x").WithDetails(&errdetails.ErrorInfo{Reason: admin.ReasonStoreUnavailable, Domain: admin.ErrorDomain})
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Unavailable with the store ErrorInfo is a store failure", storeStatus(t), true},
		{"a bare Unavailable is not", status.Error(codes.Unavailable, "connection refused"), false},
		{"another reason is not", otherReason.Err(), false},
		{"another code is not", wrongCode.Err(), false},
		{"a plain error is not", errors.New("x"), false},
		{"nil is not", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := admin.StoreUnavailable(tt.err); got != tt.want {
				t.Errorf("StoreUnavailable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassificationKeepsStructuredErrors(t *testing.T) {
	rec := &recorder{applyErr: conflictStatus(t, "3").Err()}
	c := dialT(t, serve(t, rec))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := apply(ctx, c.Policy())
	var ce *admin.CallError
	if errors.As(err, &ce) {
		t.Errorf("a refusal was classified: %v", err)
	}
	if cur, ok := admin.Conflict(err); !ok || cur != 3 {
		t.Errorf("Conflict = %d, %v; want 3, true", cur, ok)
	}
}

// tailCutter is a FleetService whose TailEvents sends one event, then cuts
// the connection (cut) or ends the stream cleanly.
type tailCutter struct {
	wsfleetv1.UnimplementedFleetServiceServer
	lis *cuttingListener
	cut bool
}

func (c *tailCutter) TailEvents(_ *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: &wsfleetv1.ErrorEvent{TraceId: "t1"}}); err != nil {
		return err
	}
	if !c.cut {
		return nil
	}
	c.lis.cut()
	<-stream.Context().Done()
	return stream.Context().Err()
}

func serveTail(t *testing.T, cut bool) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &cuttingListener{Listener: inner}
	s := grpc.NewServer()
	wsfleetv1.RegisterFleetServiceServer(s, &tailCutter{lis: lis, cut: cut})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return inner.Addr().String()
}

func TestAdminStreamsAreClassified(t *testing.T) {
	// recvAll reads the stream to its end and returns how it ended.
	recvAll := func(t *testing.T, addr string) error {
		t.Helper()
		c := dialT(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := c.Fleet().TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
	}
	t.Run("a stream to a port nobody serves is unreachable", func(t *testing.T) {
		err := recvAll(t, closedAddr(t))
		if !errors.Is(err, admin.ErrUnreachable) || status.Code(err) != codes.Unavailable {
			t.Errorf("got %v, want Unavailable classified as unreachable", err)
		}
	})
	t.Run("a stream cut after its first event lost its connection", func(t *testing.T) {
		err := recvAll(t, serveTail(t, true))
		if !errors.Is(err, admin.ErrConnectionLost) || errors.Is(err, admin.ErrUnreachable) {
			t.Errorf("got %v, want ErrConnectionLost", err)
		}
	})
	t.Run("a stream the server ends cleanly ends with io.EOF", func(t *testing.T) {
		if err := recvAll(t, serveTail(t, false)); err != io.EOF {
			t.Errorf("got %#v, want io.EOF itself", err)
		}
	})
	t.Run("a node's stream on the same connection is left alone", func(t *testing.T) {
		c := dialT(t, closedAddr(t))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		stream, err := wsfleetv1.NewNodeServiceClient(c.Conn()).Watch(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		var ce *admin.CallError
		if errors.As(err, &ce) || status.Code(err) != codes.Unavailable {
			t.Errorf("got %#v, want the plain Unavailable status", err)
		}
	})
}

func TestAStoreThatLostTheAnswerIsAnUnknownOutcome(t *testing.T) {
	st, err := status.New(codes.Unavailable, "the control plane's policy store lost the answer").WithDetails(&errdetails.ErrorInfo{
		Reason: admin.ReasonStoreOutcomeUnknown, Domain: admin.ErrorDomain, Metadata: map[string]string{admin.StoreOperationKey: "append"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{applyErr: st.Err()}
	c := dialT(t, serve(t, rec))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := apply(ctx, c.Policy())
	if !errors.Is(got, admin.ErrOutcomeUnknown) || errors.Is(got, admin.ErrStoreUnavailable) {
		t.Fatalf("got %v, want ErrOutcomeUnknown (not ErrStoreUnavailable: something may have been stored)", got)
	}
}
