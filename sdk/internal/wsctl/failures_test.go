package wsctl

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// faultyPolicy is the fake control plane with one fault injected into its
// writes (apply, rollback) or reads (get).
type faultyPolicy struct {
	*fakePolicy
	lis *cuttingListener
	// fault is what a faulty call does: storeFails answers the control
	// plane's store-failure status, cut cuts the TCP connection before
	// answering, hang waits for the caller to give up.
	fault  string
	reads  bool // the fault hits GetPolicy too
	writes atomic.Int32
}

const (
	storeFails = "store fails"
	cut        = "cut"
	hang       = "hang"
)

func storeFailure() error {
	st, err := status.New(codes.Unavailable, "the control plane's policy store failed (append); nothing was stored, retry later").
		WithDetails(&errdetails.ErrorInfo{
			Reason:   policy.ReasonStoreUnavailable,
			Domain:   policy.ErrorDomain,
			Metadata: map[string]string{policy.StoreOperationKey: "append"},
		})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (f *faultyPolicy) fail(ctx context.Context) error {
	switch f.fault {
	case storeFails:
		return storeFailure()
	case cut:
		f.lis.cut()
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *faultyPolicy) ApplyPolicy(ctx context.Context, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	f.writes.Add(1)
	if req.GetDryRun() {
		return f.fakePolicy.ApplyPolicy(ctx, req)
	}
	return nil, f.fail(ctx)
}

func (f *faultyPolicy) RollbackPolicy(ctx context.Context, _ *wsfleetv1.RollbackPolicyRequest) (*wsfleetv1.RollbackPolicyResponse, error) {
	f.writes.Add(1)
	return nil, f.fail(ctx)
}

func (f *faultyPolicy) GetPolicy(ctx context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	if f.reads {
		return nil, f.fail(ctx)
	}
	return f.fakePolicy.GetPolicy(ctx, req)
}

// cuttingListener remembers the raw connections it accepted so that a
// handler can cut them mid-call.
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

// faultyHarness runs wsctl against a faultyPolicy on loopback.
func faultyHarness(t *testing.T, fault string, reads bool) (*harness, *faultyPolicy) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultyPolicy{fakePolicy: newFakePolicy(), lis: &cuttingListener{Listener: inner}, fault: fault, reads: reads}
	fp.seed("default", "system", "initial policy", policy.Default(), 0)
	fp.seed("default", "alice", "open staging", staging(), 0)
	s := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(s, fp)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(fp.lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	addr := inner.Addr().String()
	return &harness{t: t, fake: fp.fakePolicy, addr: addr, env: map[string]string{envAddr: addr, envUser: "tester"}}, fp
}

func TestFailuresSayWhetherAnythingWasStored(t *testing.T) {
	tests := []struct {
		name  string
		fault string
		reads bool
		args  []string
		code  int
		want  string // the one line on stderr, %s standing for the address
	}{
		{
			"an apply the store fails says nothing was stored", storeFails, false,
			[]string{"policy", "apply", "-f", "STAGING"}, exitStoreFailed,
			"error: the control plane at %s could not use its policy store (append failed); nothing was stored: retry later (its log says why)",
		},
		{
			"a rollback the store fails says nothing was stored", storeFails, false,
			[]string{"policy", "rollback", "--to", "1"}, exitStoreFailed,
			"error: the control plane at %s could not use its policy store (append failed); nothing was stored: retry later (its log says why)",
		},
		{
			"an apply cut mid-call has an unknown outcome", cut, false,
			[]string{"policy", "apply", "-f", "STAGING", "--pool", "edge"}, exitOutcomeUnknown,
			"error: the connection to the control plane at %s broke before it answered (error reading from server: EOF); the outcome is unknown: check 'wsctl policy history --pool edge' before retrying",
		},
		{
			"a rollback cut mid-call has an unknown outcome", cut, false,
			[]string{"policy", "rollback", "--to", "1"}, exitOutcomeUnknown,
			"error: the connection to the control plane at %s broke before it answered (error reading from server: EOF); the outcome is unknown: check 'wsctl policy history --pool default' before retrying",
		},
		{
			"an apply past the deadline has an unknown outcome", hang, false,
			[]string{"--timeout", "300ms", "policy", "apply", "-f", "STAGING"}, exitOutcomeUnknown,
			"error: no answer from the control plane at %s within 300ms; the outcome is unknown: check 'wsctl policy history --pool default' before retrying",
		},
		{
			"a read cut mid-call changed nothing", cut, true,
			[]string{"policy", "get"}, exitError,
			"error: the connection to the control plane at %s broke before it answered (error reading from server: EOF); nothing was changed: retry",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, fp := faultyHarness(t, tt.fault, tt.reads)
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				if a == "STAGING" {
					a = writeFile(t, strings.Replace(stagingYAML, "interval: 30s", "interval: 40s", 1))
				}
				args[i] = a
			}
			r := h.run(args...)
			r.want(t, tt.code)
			want := strings.Replace(tt.want, "%s", h.addr, 1) + "\n"
			if tt.fault == cut {
				// The transport's words for a cut connection vary with
				// timing; the rest of the line may not.
				r.stderr = normaliseCut(r.stderr)
			}
			assertEqual(t, "stderr", r.stderr, want)
			if !tt.reads && fp.writes.Load() == 0 {
				t.Error("the write never reached the control plane")
			}
		})
	}
}

// normaliseCut rewrites gRPC's several descriptions of a connection closed
// under a call to one.
func normaliseCut(s string) string {
	i := strings.Index(s, "broke before it answered (")
	if i < 0 {
		return s
	}
	start := i + len("broke before it answered (")
	end := strings.Index(s[start:], ");")
	if end < 0 {
		return s
	}
	return s[:start] + "error reading from server: EOF" + s[start+end:]
}

func TestAnUnreachableControlPlaneSaysNothingWasSent(t *testing.T) {
	for _, args := range [][]string{
		{"policy", "apply", "-f", "STAGING"},
		{"policy", "rollback", "--to", "1"},
		{"policy", "get"},
		{"errors", "tail", "--follow"},
	} {
		t.Run(strings.Join(args[:2], " ")+" exits 3", func(t *testing.T) {
			addr := closedAddr(t)
			h := &harness{t: t, env: map[string]string{envAddr: addr}}
			for i, a := range args {
				if a == "STAGING" {
					args[i] = writeFile(t, stagingYAML)
				}
			}
			r := h.run(args...)
			r.want(t, exitUnreachable)
			assertEqual(t, "stderr", r.stderr, "error: the control plane at "+addr+" is unreachable: dial tcp "+addr+
				": connect: connection refused; nothing was sent (check --addr or WSFLEET_ADDR)\n")
		})
	}
}

func TestAFailedTLSHandshakeSaysNothingWasSent(t *testing.T) {
	h := newHarness(t) // a plaintext control plane
	r := h.run("--tls", "policy", "apply", "-f", writeFile(t, stagingYAML))
	r.want(t, exitUnreachable)
	assertContains(t, "stderr", r.stderr, "error: the control plane at "+h.addr+" is unreachable: ", "tls", "; nothing was sent (check --addr or WSFLEET_ADDR)\n")
	if md, applies := h.fake.recorded(); len(md) != 0 || len(applies) != 0 {
		t.Errorf("%d calls reached the control plane", len(md)+len(applies))
	}
}
