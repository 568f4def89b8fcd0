package admin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// recoverRecorder answers RecoverPolicy with the request it saw, or err.
type recoverRecorder struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	mu  sync.Mutex
	got *wsfleetv1.RecoverPolicyRequest
	err error
}

func (r *recoverRecorder) RecoverPolicy(_ context.Context, req *wsfleetv1.RecoverPolicyRequest) (*wsfleetv1.RecoverPolicyResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = req
	if r.err != nil {
		return nil, r.err
	}
	return &wsfleetv1.RecoverPolicyResponse{SourceNode: req.GetFromNode(), Revision: &wsfleetv1.PolicyRevision{Pool: req.GetPool(), Revision: 82}}, nil
}

func TestRecoverSendsTheRecovery(t *testing.T) {
	rec := &recoverRecorder{}
	c, err := admin.Dial(admin.Config{Addr: serve(t, rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name string
		in   admin.Recovery
		want *wsfleetv1.RecoverPolicyRequest
	}{
		{"an empty recovery asks for the fleet's newest default policy", admin.Recovery{}, &wsfleetv1.RecoverPolicyRequest{}},
		{"every field travels", admin.Recovery{Pool: "eu", FromNode: "n1", Message: "store lost", ExpectRevision: proto.Int64(1), DryRun: true},
			&wsfleetv1.RecoverPolicyRequest{Pool: "eu", FromNode: "n1", Message: "store lost", ExpectedRevision: proto.Int64(1), DryRun: true}},
		{"an expected revision of 0 is an expectation", admin.Recovery{ExpectRevision: proto.Int64(0)},
			&wsfleetv1.RecoverPolicyRequest{ExpectedRevision: proto.Int64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Recover(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			got := rec.got
			rec.mu.Unlock()
			if !proto.Equal(got, tt.want) {
				t.Fatalf("request %v, want %v", got, tt.want)
			}
			if resp.GetRevision().GetRevision() != 82 || resp.GetSourceNode() != tt.in.FromNode {
				t.Fatalf("response %v", resp)
			}
		})
	}

	t.Run("the control plane's refusal comes back with its code", func(t *testing.T) {
		rec.mu.Lock()
		rec.err = status.Error(codes.FailedPrecondition, `no node reports running a policy of pool "eu"`)
		rec.mu.Unlock()
		if _, err := c.Recover(ctx, admin.Recovery{Pool: "eu"}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("err = %v", err)
		}
	})
}
