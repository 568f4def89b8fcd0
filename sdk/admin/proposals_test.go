package admin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

func (c *cutter) ProposePolicy(ctx context.Context, _ *wsfleetv1.ProposePolicyRequest) (*wsfleetv1.ProposePolicyResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) ApproveProposal(ctx context.Context, _ *wsfleetv1.ApproveProposalRequest) (*wsfleetv1.ApproveProposalResponse, error) {
	return nil, c.hangUp(ctx)
}

func (c *cutter) ListProposals(ctx context.Context, _ *wsfleetv1.ListProposalsRequest) (*wsfleetv1.ListProposalsResponse, error) {
	return nil, c.hangUp(ctx)
}

func TestProposalCallsCutMidCallSayWhatIsKnown(t *testing.T) {
	tests := []struct {
		name     string
		call     func(context.Context, *admin.Client) error
		want     error
		wantPool string
	}{
		{"a proposal cut mid-call has an unknown outcome", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Propose(ctx, admin.Proposal{Pool: "edge", Message: "m"})
			return err
		}, admin.ErrOutcomeUnknown, "edge"},
		{"an approval cut mid-call has an unknown outcome and names no pool", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Approve(ctx, 7, "")
			return err
		}, admin.ErrOutcomeUnknown, ""},
		{"a listing cut mid-call only lost its connection", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Policy().ListProposals(ctx, &wsfleetv1.ListProposalsRequest{})
			return err
		}, admin.ErrConnectionLost, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialT(t, cutAddr(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tt.call(ctx, c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var ce *admin.CallError
			if !errors.As(err, &ce) || ce.Pool != tt.wantPool {
				t.Errorf("got %#v, want a CallError for pool %q", err, tt.wantPool)
			}
		})
	}
}

func TestApprovalRequired(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "pool \"edge\" requires approval").WithDetails(&errdetails.ErrorInfo{
		Reason: policy.ReasonApprovalRequired, Domain: policy.ErrorDomain, Metadata: map[string]string{policy.ConflictPoolKey: "edge"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pool, ok := admin.ApprovalRequired(st.Err()); !ok || pool != "edge" {
		t.Fatalf("ApprovalRequired = %q, %v; want edge, true", pool, ok)
	}
	if _, ok := admin.ApprovalRequired(status.Error(codes.FailedPrecondition, "pool \"edge\" is at revision 2, not 1")); ok {
		t.Fatal("a conflict reads as approval required")
	}
}
