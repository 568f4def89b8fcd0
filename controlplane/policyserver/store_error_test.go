package policyserver

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// failingStore is a real bolt store whose reads or appends fail on demand,
// as they do when the disk is full or the file went bad under the process.
type failingStore struct {
	store.Store
	failReads   atomic.Bool
	failAppends atomic.Bool
	// unknownAppends: appends fail as a distributed store's do when it
	// lost the answer and cannot tell whether the write was committed.
	unknownAppends atomic.Bool
}

var _ store.Store = (*failingStore)(nil)

// errDiskFull is what bbolt returns when a commit cannot be written.
var errDiskFull = fmt.Errorf("write policy.db: %w", syscall.ENOSPC)

func (s *failingStore) Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error) {
	if s.failReads.Load() {
		return nil, errDiskFull
	}
	return s.Store.Head(ctx, pool)
}

func (s *failingStore) History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error) {
	if s.failReads.Load() {
		return nil, errDiskFull
	}
	return s.Store.History(ctx, pool, before, limit)
}

func (s *failingStore) Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	if s.failAppends.Load() {
		return nil, errDiskFull
	}
	if s.unknownAppends.Load() {
		return nil, fmt.Errorf("etcd: append to pool %q: %w: context deadline exceeded", rev.GetPool(), store.ErrOutcomeUnknown)
	}
	return s.Store.Append(ctx, rev, expected)
}

// serveFailing runs a Server over a failingStore on a loopback gRPC server
// and returns a client to it.
func serveFailing(t *testing.T) (*failingStore, wsfleetv1.PolicyServiceClient) {
	t.Helper()
	bolt, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bolt.Close() })
	st := &failingStore{Store: bolt}
	logger, _ := logtest.NewNullLogger()
	srv, err := New(Config{Store: st, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(gs, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		<-done
	})
	return st, wsfleetv1.NewPolicyServiceClient(conn)
}

func TestStoreFailureSaysNothingWasStored(t *testing.T) {
	tests := []struct {
		name      string
		failReads bool
		call      func(context.Context, wsfleetv1.PolicyServiceClient) error
		operation string
	}{
		{"an apply whose append fails", false, func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
			_, err := c.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: policy.Default(), Message: "back"})
			return err
		}, "append"},
		{"a rollback whose append fails", false, func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
			_, err := c.RollbackPolicy(ctx, &wsfleetv1.RollbackPolicyRequest{ToRevision: 1})
			return err
		}, "append"},
		{"an apply whose head read fails", true, func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
			_, err := c.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: policy.Default()})
			return err
		}, "read head"},
		{"a history read that fails", true, func(ctx context.Context, c wsfleetv1.PolicyServiceClient) error {
			_, err := c.ListPolicyRevisions(ctx, &wsfleetv1.ListPolicyRevisionsRequest{})
			return err
		}, `history of pool "default"`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is Unavailable with the STORE_UNAVAILABLE reason", func(t *testing.T) {
			st, client := serveFailing(t)
			// Revision 2, so that a rollback to 1 has something to write.
			if _, err := client.ApplyPolicy(context.Background(), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy()}); err != nil {
				t.Fatal(err)
			}
			st.failAppends.Store(true)
			st.failReads.Store(tt.failReads)
			err := tt.call(context.Background(), client)
			s, ok := status.FromError(err)
			if !ok || s.Code() != codes.Unavailable {
				t.Fatalf("got %v, want Unavailable", err)
			}
			if !strings.Contains(s.Message(), "nothing was stored") || !strings.Contains(s.Message(), "retry later") {
				t.Errorf("message %q does not say nothing was stored and to retry later", s.Message())
			}
			if strings.Contains(s.Message(), "no space") {
				t.Errorf("message %q leaks the internal error", s.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range s.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil || info.GetReason() != policy.ReasonStoreUnavailable || info.GetDomain() != policy.ErrorDomain {
				t.Fatalf("details %v, want an ErrorInfo %s in %s", s.Details(), policy.ReasonStoreUnavailable, policy.ErrorDomain)
			}
			if got := info.GetMetadata()[policy.StoreOperationKey]; got != tt.operation {
				t.Errorf("operation %q, want %q", got, tt.operation)
			}

			st.failAppends.Store(false)
			st.failReads.Store(false)
			head, err := client.GetPolicy(context.Background(), &wsfleetv1.GetPolicyRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := head.GetRevision().GetRevision(); got != 2 {
				t.Errorf("head is revision %d after a failed write, want 2", got)
			}
		})
	}
}

func TestAStoreThatCannotTellWhetherItStoredSaysSo(t *testing.T) {
	st, client := serveFailing(t)
	st.unknownAppends.Store(true)
	_, err := client.ApplyPolicy(context.Background(), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), Message: "maybe"})
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if strings.Contains(s.Message(), "nothing was stored") || !strings.Contains(s.Message(), "check the history") {
		t.Errorf("message %q claims nothing was stored or does not say to check the history", s.Message())
	}
	var info *errdetails.ErrorInfo
	for _, d := range s.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.GetReason() != policy.ReasonStoreOutcomeUnknown || info.GetDomain() != policy.ErrorDomain {
		t.Fatalf("details %v, want ErrorInfo %s", s.Details(), policy.ReasonStoreOutcomeUnknown)
	}
}
