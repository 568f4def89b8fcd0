package policyserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// Paging limits of ListProposals.
const (
	DefaultProposalsPageSize = store.DefaultListProposals
	MaxProposalsPageSize     = 500
)

func newProposalMetrics() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "wsfleet",
		Subsystem: "control",
		Name:      "policy_proposals_total",
		Help:      "Policy proposals handled by this process, per pool and event (proposed, approved, rejected).",
	}, []string{"pool", "event"})
}

// approvalGate refuses an admin's direct write (apply, rollback, recovery)
// to a pool whose head requires approval: such a pool changes only through
// an approved proposal. The head decides, not the new policy: a pool's
// first revision, and turning approval on, need no approval; turning it
// off does. Dry runs are not writes.
func approvalGate(head *wsfleetv1.PolicyRevision, c change) error {
	if !c.direct || c.dryRun || head == nil || !head.GetPolicy().GetApproval().GetRequired() {
		return nil
	}
	msg := fmt.Sprintf("pool %q requires approval (revision %d has approval.required): use wsctl policy propose, and another admin approves", c.pool, head.GetRevision())
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason:   policy.ReasonApprovalRequired,
		Domain:   policy.ErrorDomain,
		Metadata: map[string]string{policy.ConflictPoolKey: c.pool},
	})
	if err != nil {
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

// conflictFor is the refusal of a write whose expected head is not the
// head: for an approval, the proposal is stale and must be re-proposed.
func conflictFor(c change, current, expected int64) error {
	if c.proposalID == 0 {
		return conflict(c.pool, current, expected)
	}
	return staleProposal(c.proposalID, expected, current)
}

func staleProposal(id, base, head int64) error {
	return status.Errorf(codes.FailedPrecondition,
		"proposal %d was made against revision %d; the head is now %d: re-propose", id, base, head)
}

// appendOrApprove stores rev: a plain append, or for an approval the
// append and the proposal's approval in one store transaction.
func (s *Server) appendOrApprove(ctx context.Context, c change, rev *wsfleetv1.PolicyRevision, headRev int64) (*wsfleetv1.PolicyRevision, *wsfleetv1.Proposal, error) {
	if c.proposalID == 0 {
		stored, err := s.cfg.Store.Append(ctx, rev, headRev)
		return stored, nil, err
	}
	d := store.Decision{By: c.approvedBy, Message: c.approvalMessage, Time: s.cfg.Now()}
	prop, stored, err := s.cfg.Store.ApproveProposal(ctx, c.proposalID, rev, d, s.cfg.ProposalLimits)
	return stored, prop, err
}

// appendError maps a failed append; an approval can also find its proposal
// decided (by another admin, meanwhile) or gone.
func (s *Server) appendError(ctx context.Context, c change, err error) error {
	if c.proposalID != 0 {
		if perr := proposalError(c.proposalID, err); perr != nil {
			return perr
		}
	}
	return s.storeError(ctx, err, "append")
}

// decided refuses a decision on a proposal that is no longer open, saying
// who decided it.
func decided(p *wsfleetv1.Proposal) error {
	msg := fmt.Sprintf("proposal %d is already %s by %s", p.GetId(), store.StateName(p.GetState()), p.GetDecidedBy())
	if p.GetRevision() != 0 {
		msg += fmt.Sprintf(" (revision %d)", p.GetRevision())
	}
	return status.Error(codes.FailedPrecondition, msg)
}

// proposalError is the status of a proposal the store refuses to decide,
// or nil for other errors.
func proposalError(id int64, err error) error {
	var se *store.ProposalStateError
	switch {
	case errors.As(err, &se):
		return status.Errorf(codes.FailedPrecondition, "proposal %d is already %s", id, store.StateName(se.State))
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "no proposal %d", id)
	}
	return nil
}

// ProposePolicy implements PolicyService: it stores a change for another
// admin to approve, validated and diffed against the head like an apply,
// with its dry-run impact when Config.Impact is set. Any pool takes
// proposals, whether or not it requires approval.
func (s *Server) ProposePolicy(ctx context.Context, req *wsfleetv1.ProposePolicyRequest) (*wsfleetv1.ProposePolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	// Every bad field at once: the request's and the policy's (whose paths
	// are relative to the Policy message, as in ApplyPolicy).
	var bad []*wsfleetv1.FieldViolation
	if req.GetMessage() == "" {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "message", Description: "required: say why, for the approver"})
	} else if v := messageViolation(req.GetMessage()); v != nil {
		bad = append(bad, v)
	}
	if req.ExpectedRevision != nil && req.GetExpectedRevision() < 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "expected_revision", Description: "must not be negative"})
	}
	bad = append(bad, canaryViolations(req)...)
	bad = append(bad, policy.Validate(req.GetPolicy())...)
	if len(bad) > 0 {
		return nil, invalidArgument(fmt.Sprintf("proposal has %d invalid field(s)", len(bad)), bad)
	}

	head, err := s.cfg.Store.Head(ctx, pool)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.storeError(ctx, err, "read head")
	}
	var (
		headRev    int64
		headPolicy *wsfleetv1.Policy
	)
	if head != nil {
		headRev, headPolicy = head.GetRevision(), head.GetPolicy()
	}
	if req.ExpectedRevision != nil && req.GetExpectedRevision() != headRev {
		return nil, conflict(pool, headRev, req.GetExpectedRevision())
	}
	if head != nil && proto.Equal(headPolicy, req.GetPolicy()) {
		return nil, status.Errorf(codes.FailedPrecondition, "the policy equals pool %q's revision %d: nothing to propose", pool, headRev)
	}
	from := headPolicy
	if from == nil {
		from = &wsfleetv1.Policy{}
	}
	p := &wsfleetv1.Proposal{
		Pool:             pool,
		Policy:           req.GetPolicy(),
		BaseRevision:     headRev,
		Proposer:         authorOf(ctx),
		Message:          req.GetMessage(),
		CreateTime:       timestamppb.New(s.cfg.Now()),
		Changes:          policy.Diff(from, req.GetPolicy()),
		Canary:           req.GetCanary(),
		Bake:             req.GetBake(),
		CanaryMinSamples: req.GetCanaryMinSamples(),
		CanaryMaxRatio:   req.GetCanaryMaxRatio(),
	}
	if s.cfg.Impact != nil {
		// The impact helps the approver; without it the proposal still
		// stands (the telemetry may be down while policy is not).
		impact, err := s.cfg.Impact(ctx, pool, headPolicy, req.GetPolicy())
		if err != nil {
			s.cfg.Log.WithError(err).WithField("pool", pool).Warn("proposal: dry-run impact failed; stored without it")
		} else {
			p.Impact = impact
		}
	}
	stored, err := s.cfg.Store.CreateProposal(ctx, p, s.cfg.ProposalLimits)
	switch {
	case errors.Is(err, store.ErrTooManyProposals):
		return nil, status.Errorf(codes.ResourceExhausted, "pool %q has %d open proposals, the most allowed: approve or reject some first", pool, s.cfg.ProposalLimits.MaxOpen)
	case err != nil:
		return nil, s.storeError(ctx, err, "create proposal")
	}
	s.audit(stored, "proposed", stored.GetProposer()).Info("policy proposed")
	return &wsfleetv1.ProposePolicyResponse{Proposal: stored}, nil
}

// canaryViolations checks the canary fields a proposal carries for its
// approval (the rollout itself starts only then) as an apply's are
// checked, so that no proposal is stored whose approval could only fail
// on them; only the fleet (which nodes the selector matches) is left to
// the approval.
func canaryViolations(req *wsfleetv1.ProposePolicyRequest) []*wsfleetv1.FieldViolation {
	if req.GetCanary() != "" {
		_, bad := rolloutSpec(req.GetCanary(), req.GetBake(), req.GetCanaryMinSamples(), req.GetCanaryMaxRatio())
		return bad
	}
	var bad []*wsfleetv1.FieldViolation
	if req.GetBake() != nil {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "bake", Description: "only with canary"})
	}
	if req.GetCanaryMinSamples() != 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "canary_min_samples", Description: "only with canary"})
	}
	if req.GetCanaryMaxRatio() != 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "canary_max_ratio", Description: "only with canary"})
	}
	return bad
}

// ApproveProposal implements PolicyService: an open proposal becomes the
// pool's next revision, authored by the proposer with the approver
// recorded, if the head is still the revision it was proposed against.
func (s *Server) ApproveProposal(ctx context.Context, req *wsfleetv1.ApproveProposalRequest) (*wsfleetv1.ApproveProposalResponse, error) {
	if req.GetId() <= 0 {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "id", Description: "must be positive"})
	}
	if err := checkMessage(req.GetMessage()); err != nil {
		return nil, err
	}
	p, err := s.proposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
		return nil, decided(p)
	}
	// The identity name is what authorOf records as the author: the same
	// credential under two names (dev:alice, dev:bob) counts as two admins,
	// as it does in the history.
	approver := authorOf(ctx)
	if approver == p.GetProposer() {
		return nil, status.Error(codes.PermissionDenied, "you proposed it; another admin must approve")
	}
	// Valid when proposed, but the rules may have changed since.
	if v := policy.Validate(p.GetPolicy()); len(v) > 0 {
		return nil, invalidPolicy(fmt.Sprintf("proposal %d no longer passes validation: %s; re-propose", p.GetId(), policyViolationsMessage(len(v))), v)
	}
	// A proposal with a canary is applied as one: its spec is checked now
	// (the selector against the nodes connected now), as an apply's is.
	var spec *wsfleetv1.RolloutSpec
	if p.GetCanary() != "" {
		if spec, err = s.canarySpec(ctx, p.GetPool(), &wsfleetv1.ApplyPolicyRequest{
			Canary: p.GetCanary(), Bake: p.GetBake(),
			CanaryMinSamples: p.GetCanaryMinSamples(), CanaryMaxRatio: p.GetCanaryMaxRatio(),
		}); err != nil {
			return nil, err
		}
	}
	base := p.GetBaseRevision()
	res, err := s.write(ctx, change{
		rollout:         spec,
		pool:            p.GetPool(),
		policy:          p.GetPolicy(),
		expected:        &base,
		message:         p.GetMessage(),
		proposalID:      p.GetId(),
		author:          p.GetProposer(),
		approvedBy:      approver,
		approvalMessage: req.GetMessage(),
	})
	if err != nil {
		// Another admin may have approved it meanwhile: the head then
		// moved too, but "re-propose" would be the wrong advice.
		if status.Code(err) == codes.FailedPrecondition {
			if now, gerr := s.cfg.Store.GetProposal(ctx, p.GetId()); gerr == nil && now.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
				return nil, decided(now)
			}
		}
		return nil, err
	}
	s.audit(res.proposal, "approved", approver).WithField("new_revision", res.rev.GetRevision()).Info("policy proposal approved")
	return &wsfleetv1.ApproveProposalResponse{Proposal: res.proposal, Revision: res.rev}, nil
}

// RejectProposal implements PolicyService. Anyone with the admin role may
// reject, the proposer too (withdrawing it).
func (s *Server) RejectProposal(ctx context.Context, req *wsfleetv1.RejectProposalRequest) (*wsfleetv1.RejectProposalResponse, error) {
	var bad []*wsfleetv1.FieldViolation
	if req.GetId() <= 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "id", Description: "must be positive"})
	}
	if req.GetMessage() == "" {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "message", Description: "required: say why, for the proposer"})
	} else if v := messageViolation(req.GetMessage()); v != nil {
		bad = append(bad, v)
	}
	if len(bad) > 0 {
		return nil, badRequest(bad...)
	}
	who := authorOf(ctx)
	p, err := s.cfg.Store.RejectProposal(ctx, req.GetId(), store.Decision{By: who, Message: req.GetMessage(), Time: s.cfg.Now()}, s.cfg.ProposalLimits)
	if err != nil {
		if perr := proposalError(req.GetId(), err); perr != nil {
			return nil, perr
		}
		return nil, s.storeError(ctx, err, "reject proposal")
	}
	s.audit(p, "rejected", who).Info("policy proposal rejected")
	return &wsfleetv1.RejectProposalResponse{Proposal: p}, nil
}

// GetProposal implements PolicyService.
func (s *Server) GetProposal(ctx context.Context, req *wsfleetv1.GetProposalRequest) (*wsfleetv1.GetProposalResponse, error) {
	if req.GetId() <= 0 {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "id", Description: "must be positive"})
	}
	p, err := s.proposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.markStale(ctx, []*wsfleetv1.Proposal{p}); err != nil {
		return nil, err
	}
	return &wsfleetv1.GetProposalResponse{Proposal: p}, nil
}

// ListProposals implements PolicyService.
func (s *Server) ListProposals(ctx context.Context, req *wsfleetv1.ListProposalsRequest) (*wsfleetv1.ListProposalsResponse, error) {
	f := store.ProposalFilter{OpenOnly: req.GetOpenOnly()}
	if req.GetPool() != "" {
		pool, err := poolName(req.GetPool())
		if err != nil {
			return nil, err
		}
		f.Pool = pool
	}
	switch n := int(req.GetLimit()); {
	case n < 0:
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "limit", Description: "must not be negative"})
	case n == 0:
		f.Limit = DefaultProposalsPageSize
	default:
		f.Limit = min(n, MaxProposalsPageSize)
	}
	ps, err := s.cfg.Store.ListProposals(ctx, f)
	if err != nil {
		return nil, s.storeError(ctx, err, "list proposals")
	}
	// The newest that fit in one answer (MaxListBytes).
	ps = ps[:fitBytes(ps)]
	if err := s.markStale(ctx, ps); err != nil {
		return nil, err
	}
	return &wsfleetv1.ListProposalsResponse{Proposals: ps}, nil
}

// proposal reads one proposal, mapping absence to NotFound.
func (s *Server) proposal(ctx context.Context, id int64) (*wsfleetv1.Proposal, error) {
	p, err := s.cfg.Store.GetProposal(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "no proposal %d", id)
	case err != nil:
		return nil, s.storeError(ctx, err, "read proposal "+strconv.FormatInt(id, 10))
	}
	return p, nil
}

// markStale sets stale on every open proposal whose pool's head moved
// past its base revision (one head read per pool).
func (s *Server) markStale(ctx context.Context, ps []*wsfleetv1.Proposal) error {
	heads := map[string]int64{}
	for _, p := range ps {
		if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			continue
		}
		head, ok := heads[p.GetPool()]
		if !ok {
			h, err := s.cfg.Store.Head(ctx, p.GetPool())
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return s.storeError(ctx, err, "read head")
			}
			head = h.GetRevision()
			heads[p.GetPool()] = head
		}
		p.Stale = head != p.GetBaseRevision()
	}
	return nil
}

// audit is the audit line of a proposal event, counted in the metrics.
func (s *Server) audit(p *wsfleetv1.Proposal, event, by string) logrus.FieldLogger {
	s.proposals.WithLabelValues(p.GetPool(), event).Inc()
	return s.cfg.Log.WithFields(logrus.Fields{
		"audit":         true,
		"event":         "proposal_" + event,
		"by":            by,
		"proposal_id":   p.GetId(),
		"pool":          p.GetPool(),
		"proposer":      p.GetProposer(),
		"base_revision": p.GetBaseRevision(),
		"message":       p.GetMessage(),
		"decision":      p.GetDecisionMessage(),
		"changes":       len(p.GetChanges()),
		"store_id":      s.cfg.Store.ID(),
	})
}
