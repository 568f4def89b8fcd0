package admin

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Proposal asks for a policy change that another admin approves
// (PolicyService.ProposePolicy).
type Proposal struct {
	// Pool; empty means default.
	Pool string
	// Policy is the complete proposed policy.
	Policy *wsfleetv1.Policy
	// Message says why; required. It becomes the revision's message.
	Message string
	// ExpectRevision, if set, refuses the proposal unless the pool is at
	// this revision (0: the pool has none yet).
	ExpectRevision *int64
	// Canary, Bake, CanaryMinSamples and CanaryMaxRatio ask for a canary
	// rollout when the proposal is approved (as ApplyPolicy's).
	Canary           string
	Bake             time.Duration
	CanaryMinSamples int32
	CanaryMaxRatio   float64
}

// Propose stores a Proposal. Errors are the control plane's:
// InvalidArgument naming every bad field (FieldViolations),
// FailedPrecondition for a stale ExpectRevision (Conflict) or a policy
// equal to the head, ResourceExhausted when the pool has too many open
// proposals.
func (c *Client) Propose(ctx context.Context, p Proposal) (*wsfleetv1.Proposal, error) {
	req := &wsfleetv1.ProposePolicyRequest{
		Pool: p.Pool, Policy: p.Policy, Message: p.Message,
		Canary: p.Canary, CanaryMinSamples: p.CanaryMinSamples, CanaryMaxRatio: p.CanaryMaxRatio,
	}
	if p.Bake != 0 {
		req.Bake = durationpb.New(p.Bake)
	}
	if p.ExpectRevision != nil {
		req.ExpectedRevision = proto.Int64(*p.ExpectRevision)
	}
	resp, err := c.policy.ProposePolicy(ctx, req)
	return resp.GetProposal(), err
}

// Approve applies an open proposal as the proposer's revision, with the
// caller recorded as approver. PermissionDenied when the caller proposed
// it; FailedPrecondition when it is not open, or was made against an older
// head (re-propose it).
func (c *Client) Approve(ctx context.Context, id int64, message string) (*wsfleetv1.ApproveProposalResponse, error) {
	return c.policy.ApproveProposal(ctx, &wsfleetv1.ApproveProposalRequest{Id: id, Message: message})
}

// Reject closes an open proposal without applying it; message is
// required.
func (c *Client) Reject(ctx context.Context, id int64, message string) (*wsfleetv1.Proposal, error) {
	resp, err := c.policy.RejectProposal(ctx, &wsfleetv1.RejectProposalRequest{Id: id, Message: message})
	return resp.GetProposal(), err
}

// ApprovalRequired reports whether err is a direct write (apply, rollback,
// recover) refused because the pool requires approval, and which pool.
func ApprovalRequired(err error) (pool string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return "", false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetDomain() == policy.ErrorDomain && info.GetReason() == policy.ReasonApprovalRequired {
			return info.GetMetadata()[policy.ConflictPoolKey], true
		}
	}
	return "", false
}

// proposalWrite reports whether req stores or decides a proposal (so a
// broken connection leaves its outcome unknown), and whether it names a
// pool (a decision names only the proposal).
func proposalWrite(req any) (pool string, write, named bool) {
	switch r := req.(type) {
	case *wsfleetv1.ProposePolicyRequest:
		return r.GetPool(), true, true
	case *wsfleetv1.ApproveProposalRequest, *wsfleetv1.RejectProposalRequest:
		return "", true, false
	}
	return "", false, false
}
