package policyserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// Paging limits of ListPolicyRevisions.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// MaxListBytes bounds one answer of ListPolicyRevisions and ListProposals
// in bytes, below gRPC's default 4 MiB a client accepts: a revision or a
// proposal of a policy at its limits is some 250 KiB (500 KiB with its
// changes), so a page of them by count alone would be refused by every
// default client ("received message larger than max"), breaking history
// and proposal listings for everyone. An answer holds at least one item
// whatever its size; history pages on (next_page_token), proposals hold
// the newest that fit.
const MaxListBytes = 3 << 20

// fitBytes is how many of items, from the first, fit in MaxListBytes
// (at least one when there is one).
func fitBytes[T proto.Message](items []T) int {
	total := 0
	for i, it := range items {
		// The tag and length prefix of each repeated entry.
		total += proto.Size(it) + 8
		if i > 0 && total > MaxListBytes {
			return i
		}
	}
	return len(items)
}

// maxApplyRetries bounds how often an apply without expected_revision is
// retried when another writer commits between its read and its append.
const maxApplyRetries = 16

// SystemAuthor is the author of revisions the control plane makes itself.
const SystemAuthor = "wsfleet"

// Config configures a Server.
type Config struct {
	// Store keeps the revisions. Required.
	Store store.Store
	// Log receives audit lines (one per stored revision) and store errors.
	// Defaults to logrus's standard logger.
	Log logrus.FieldLogger
	// Now stamps revisions; defaults to time.Now.
	Now func() time.Time
	// Registerer receives the server's metrics (the revisions it stored,
	// per pool); optional.
	Registerer prometheus.Registerer
	// Fleet reports what every known node runs (the fleet registry's view),
	// for RecoverPolicy; without it RecoverPolicy is Unimplemented. It is
	// called once per RecoverPolicy and must not block.
	Fleet func() []NodeRevision
	// Impact, if set, computes a dry run's impact on the pool's recent
	// traffic (ApplyPolicyResponse.impact; proposals keep it too). Its
	// error fails the dry run; it should be a gRPC status.
	Impact ImpactFunc
	// ProposalLimits bound the proposals kept in the store: open ones per
	// pool (default store.DefaultMaxOpenProposals) and decided ones kept
	// (default store.DefaultKeepClosedProposals).
	ProposalLimits store.ProposalLimits
	// Nodes lists the known nodes of a pool (the fleet registry's merged
	// view): a canary apply needs at least one node its selector matches
	// and one it does not, and GetRollout shows each node's part. Without
	// it canary applies are refused (Unimplemented).
	Nodes func(ctx context.Context, pool string) ([]*wsfleetv1.NodeStatus, error)
	// Compare fills a baking rollout's per-class comparison (classes,
	// degraded) for GetRollout: the rollout evaluator's view. Optional.
	Compare func(ctx context.Context, st *wsfleetv1.RolloutStatus)
}

// NodeRevision is the revision one node reports running.
type NodeRevision struct {
	NodeID string
	// Pool is the node's own pool; Running.Pool is the pool whose policy
	// it runs (its own, or default's).
	Pool      string
	Connected bool
	LastSeen  time.Time
	// Running is nil when the node runs no revision from a control plane.
	Running *wsfleetv1.PolicyRevision
}

// Server implements wsfleetv1.PolicyServiceServer.
type Server struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	cfg       Config
	commits   *prometheus.CounterVec
	proposals *prometheus.CounterVec
	rollouts  *prometheus.CounterVec

	rolloutCache rolloutCache // GetRollout's scans, by pool and head
}

var _ wsfleetv1.PolicyServiceServer = (*Server)(nil)

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Store is required", ErrConfig)
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.ProposalLimits = cfg.ProposalLimits.WithDefaults()
	s := &Server{cfg: cfg, commits: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "wsfleet",
		Subsystem: "control",
		Name:      "policy_commits_total",
		Help:      "Policy revisions stored by this process, per pool.",
	}, []string{"pool"}), proposals: newProposalMetrics(), rollouts: newRolloutsCounter()}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.commits, s.proposals, s.rollouts} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrConfig, err)
			}
		}
	}
	return s, nil
}

// Bootstrap makes sure the default pool exists, creating its revision 1
// from policy.Default. Safe to call from several replicas at once: only one
// create wins the compare-and-set, the others find it present.
func (s *Server) Bootstrap(ctx context.Context) (*wsfleetv1.PolicyRevision, error) {
	head, err := s.cfg.Store.Head(ctx, policy.DefaultPool)
	if err == nil {
		return head, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	rev, err := s.cfg.Store.Append(ctx, &wsfleetv1.PolicyRevision{
		Pool:       policy.DefaultPool,
		Author:     SystemAuthor,
		CreateTime: timestamppb.New(s.cfg.Now()),
		Message:    "initial default policy",
		Policy:     policy.Default(),
	}, 0)
	if errors.Is(err, store.ErrConflict) {
		return s.cfg.Store.Head(ctx, policy.DefaultPool)
	}
	if err != nil {
		return nil, err
	}
	s.committed(rev, 0, -1)
	return rev, nil
}

// GetPolicy implements PolicyService.
func (s *Server) GetPolicy(ctx context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	if req.GetRevision() < 0 {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "revision", Description: "must not be negative"})
	}
	rev, err := s.get(ctx, pool, req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.GetPolicyResponse{Revision: rev}, nil
}

// ValidatePolicy implements PolicyService.
func (s *Server) ValidatePolicy(_ context.Context, req *wsfleetv1.ValidatePolicyRequest) (*wsfleetv1.ValidatePolicyResponse, error) {
	return &wsfleetv1.ValidatePolicyResponse{Violations: policy.Validate(req.GetPolicy())}, nil
}

// ApplyPolicy implements PolicyService.
func (s *Server) ApplyPolicy(ctx context.Context, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	if err := checkMessage(req.GetMessage()); err != nil {
		return nil, err
	}
	if v := policy.Validate(req.GetPolicy()); len(v) > 0 {
		return nil, invalidPolicy(policyViolationsMessage(len(v)), v)
	}
	var expected *int64
	if req.ExpectedRevision != nil {
		e := req.GetExpectedRevision()
		if e < 0 {
			return nil, badRequest(&wsfleetv1.FieldViolation{Field: "expected_revision", Description: "must not be negative"})
		}
		expected = &e
	}
	var spec *wsfleetv1.RolloutSpec
	if req.GetCanary() != "" || req.GetBake() != nil || req.GetCanaryMinSamples() != 0 || req.GetCanaryMaxRatio() != 0 {
		if spec, err = s.canarySpec(ctx, pool, req); err != nil {
			return nil, err
		}
	}
	res, err := s.write(ctx, change{pool: pool, policy: req.GetPolicy(), expected: expected, message: req.GetMessage(), dryRun: req.GetDryRun(), direct: true, rollout: spec})
	if err != nil {
		return nil, err
	}
	resp := &wsfleetv1.ApplyPolicyResponse{
		Revision:         res.rev,
		PreviousRevision: res.previous,
		Unchanged:        res.unchanged,
		Changes:          res.changes,
	}
	if req.GetDryRun() {
		if resp.Impact, err = s.impact(ctx, pool, req.GetPolicy()); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// RollbackPolicy implements PolicyService.
func (s *Server) RollbackPolicy(ctx context.Context, req *wsfleetv1.RollbackPolicyRequest) (*wsfleetv1.RollbackPolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	if req.GetToRevision() <= 0 {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "to_revision", Description: "must be positive"})
	}
	if err := checkMessage(req.GetMessage()); err != nil {
		return nil, err
	}
	var expected *int64
	if req.ExpectedRevision != nil {
		e := req.GetExpectedRevision()
		expected = &e
	}
	target, err := s.get(ctx, pool, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	// An old revision was valid under the rules of its day; refuse to
	// restore one the current rules reject rather than store it unchecked.
	if v := policy.Validate(target.GetPolicy()); len(v) > 0 {
		return nil, invalidPolicy(fmt.Sprintf("revision %d no longer passes validation: %s", target.GetRevision(), policyViolationsMessage(len(v))), v)
	}
	msg := req.GetMessage()
	if msg == "" {
		msg = fmt.Sprintf("rollback to revision %d", target.GetRevision())
	}
	res, err := s.write(ctx, change{pool: pool, policy: target.GetPolicy(), expected: expected, message: msg, rollbackOf: target.GetRevision(), direct: true})
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.RollbackPolicyResponse{
		Revision:         res.rev,
		PreviousRevision: res.previous,
		Unchanged:        res.unchanged,
		Changes:          res.changes,
	}, nil
}

type writeResult struct {
	rev       *wsfleetv1.PolicyRevision
	previous  int64
	unchanged bool
	changes   []*wsfleetv1.FieldChange
	proposal  *wsfleetv1.Proposal // the approved proposal, for an approval
}

// change is one write: the policy and what is kept with it.
type change struct {
	pool     string
	policy   *wsfleetv1.Policy
	expected *int64
	message  string
	// rollbackOf and recoveredFrom are kept with the revision.
	rollbackOf    int64
	recoveredFrom string
	// above: the new revision is numbered above this one as well as above
	// the head (recovery: above every revision the fleet reports), and is
	// stored even when its content equals the head's, because the number
	// is what makes every node accept it.
	above  int64
	dryRun bool
	// direct: an admin's own apply, rollback or recovery, refused while
	// the head requires approval (approvalGate).
	direct bool
	// An approval (proposals.go): the proposal is approved in the same
	// store transaction as the append; author overrides the caller (the
	// revision is the proposer's), approvedBy and approvalMessage are the
	// approver's.
	proposalID      int64
	author          string
	approvedBy      string
	approvalMessage string
	// rollout makes the revision a canary (its base_revision is set to the
	// head it replaces); outcome makes it the end of the baking canary
	// (expected must then be the canary's number), stored even when its
	// content equals the head's.
	rollout *wsfleetv1.RolloutSpec
	outcome *wsfleetv1.RolloutOutcome
}

// write appends c.policy as the pool's next revision. With expected set the
// store's compare-and-set decides; without, a lost race is retried against
// the new head so the changes reported are relative to what was really
// replaced.
func (s *Server) write(ctx context.Context, c change) (*writeResult, error) {
	pool, p, expected := c.pool, c.policy, c.expected
	author := authorOf(ctx)
	if c.author != "" {
		author = c.author
	}
	for attempt := 0; ; attempt++ {
		head, err := s.cfg.Store.Head(ctx, pool)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, s.storeError(ctx, err, "read head")
		}
		var headRev int64
		var headPolicy *wsfleetv1.Policy
		if head != nil {
			headRev, headPolicy = head.GetRevision(), head.GetPolicy()
		}
		if expected != nil && *expected != headRev {
			if c.outcome != nil {
				return nil, notBaking(pool, c.outcome.GetCanaryRevision(), headRev)
			}
			return nil, conflictFor(c, headRev, *expected)
		}
		if err := checkBaking(head, c); err != nil {
			return nil, err
		}
		if err := approvalGate(head, c); err != nil {
			return nil, err
		}
		if head != nil && c.above == 0 && c.proposalID == 0 && c.outcome == nil && proto.Equal(headPolicy, p) {
			return &writeResult{rev: head, previous: headRev, unchanged: true}, nil
		}
		var changes []*wsfleetv1.FieldChange
		if head != nil {
			changes = policy.Diff(headPolicy, p)
		} else {
			changes = policy.Diff(&wsfleetv1.Policy{}, p)
		}
		rev := &wsfleetv1.PolicyRevision{
			Pool:              pool,
			Revision:          max(headRev, c.above) + 1,
			Author:            author,
			CreateTime:        timestamppb.New(s.cfg.Now()),
			Message:           c.message,
			Policy:            p,
			RollbackOf:        c.rollbackOf,
			RecoveredFromNode: c.recoveredFrom,
			ProposalId:        c.proposalID,
			ApprovedBy:        c.approvedBy,
			RolloutOutcome:    c.outcome,
		}
		if c.rollout != nil {
			rev.Rollout = proto.Clone(c.rollout).(*wsfleetv1.RolloutSpec)
			rev.Rollout.BaseRevision = headRev
		}
		if c.dryRun {
			rev.StoreId = s.cfg.Store.ID()
			return &writeResult{rev: rev, previous: headRev, changes: changes}, nil
		}
		stored, prop, err := s.appendOrApprove(ctx, c, rev, headRev)
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			if c.outcome != nil {
				// Another replica (or admin) ended the rollout first.
				return nil, notBaking(pool, c.outcome.GetCanaryRevision(), ce.Current)
			}
			if expected != nil {
				return nil, conflictFor(c, ce.Current, *expected)
			}
			if attempt < maxApplyRetries {
				continue
			}
			return nil, status.Errorf(codes.Aborted, "pool %q changed %d times while applying; retry", pool, attempt+1)
		}
		if err != nil {
			return nil, s.appendError(ctx, c, err)
		}
		s.committed(stored, headRev, len(changes))
		return &writeResult{rev: stored, previous: headRev, changes: changes, proposal: prop}, nil
	}
}

// committed writes the audit line and counts the revision. changes is the
// number of changed fields, -1 for the bootstrap revision. Nothing here
// pushes: the registry learns of the revision from the store's watch, as
// it learns of every other control plane's.
func (s *Server) committed(rev *wsfleetv1.PolicyRevision, previous int64, changes int) {
	s.cfg.Log.WithFields(rolloutFields(rev)).WithFields(logrus.Fields{
		"audit":               true,
		"author":              rev.GetAuthor(),
		"pool":                rev.GetPool(),
		"old_revision":        previous,
		"new_revision":        rev.GetRevision(),
		"message":             rev.GetMessage(),
		"rollback_of":         rev.GetRollbackOf(),
		"recovered_from_node": rev.GetRecoveredFromNode(),
		"proposal_id":         rev.GetProposalId(),
		"approved_by":         rev.GetApprovedBy(),
		"store_id":            rev.GetStoreId(),
		"changes":             changes,
	}).Info("policy changed")
	s.commits.WithLabelValues(rev.GetPool()).Inc()
}

// ListPolicyRevisions implements PolicyService.
func (s *Server) ListPolicyRevisions(ctx context.Context, req *wsfleetv1.ListPolicyRevisionsRequest) (*wsfleetv1.ListPolicyRevisionsResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "page_size", Description: "must not be negative"})
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	before, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "page_token", Description: "malformed; pass next_page_token unchanged"})
	}
	revs, err := s.cfg.Store.History(ctx, pool, before, size+1)
	if err != nil {
		return nil, s.storeError(ctx, err, "history of pool "+strconv.Quote(pool))
	}
	resp := &wsfleetv1.ListPolicyRevisionsResponse{Revisions: revs}
	if n := fitBytes(revs[:min(len(revs), size)]); n < len(revs) {
		resp.Revisions = revs[:n]
		resp.NextPageToken = encodePageToken(revs[n-1].GetRevision())
	}
	return resp, nil
}

// DiffPolicy implements PolicyService.
func (s *Server) DiffPolicy(ctx context.Context, req *wsfleetv1.DiffPolicyRequest) (*wsfleetv1.DiffPolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	var bad []*wsfleetv1.FieldViolation
	if req.GetFromRevision() <= 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "from_revision", Description: "must be positive"})
	}
	if req.GetToRevision() <= 0 {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "to_revision", Description: "must be positive"})
	}
	if len(bad) > 0 {
		return nil, badRequest(bad...)
	}
	from, err := s.get(ctx, pool, req.GetFromRevision())
	if err != nil {
		return nil, err
	}
	to, err := s.get(ctx, pool, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.DiffPolicyResponse{Changes: policy.Diff(from.GetPolicy(), to.GetPolicy())}, nil
}

// ListPools implements PolicyService.
func (s *Server) ListPools(ctx context.Context, _ *wsfleetv1.ListPoolsRequest) (*wsfleetv1.ListPoolsResponse, error) {
	pools, err := s.cfg.Store.Pools(ctx)
	if err != nil {
		return nil, s.storeError(ctx, err, "list pools")
	}
	return &wsfleetv1.ListPoolsResponse{Pools: pools}, nil
}

// get reads the head (revision 0) or one revision, mapping absence to
// NotFound.
func (s *Server) get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	var rev *wsfleetv1.PolicyRevision
	var err error
	if revision == 0 {
		rev, err = s.cfg.Store.Head(ctx, pool)
	} else {
		rev, err = s.cfg.Store.Get(ctx, pool, revision)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) && revision == 0:
		return nil, status.Errorf(codes.NotFound, "pool %q has no policy", pool)
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "pool %q has no revision %d", pool, revision)
	case err != nil:
		return nil, s.storeError(ctx, err, "read pool "+strconv.Quote(pool))
	}
	return rev, nil
}

// storeError turns a store failure into a status: context errors keep their
// meaning, anything else is logged and reported as Unavailable without the
// internal detail. The STORE_UNAVAILABLE ErrorInfo is what lets a client
// tell "the server answered: its store failed, nothing was stored" from a
// transport Unavailable (the server was never reached, or the connection
// broke mid-call and the outcome is unknown), which share the code.
func (s *Server) storeError(ctx context.Context, err error, what string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.cfg.Log.WithError(err).WithField("op", what).Error("policy store failed")
	msg := fmt.Sprintf("the control plane's policy store failed (%s); nothing was stored, retry later", what)
	reason := policy.ReasonStoreUnavailable
	if errors.Is(err, store.ErrOutcomeUnknown) {
		msg = fmt.Sprintf("the control plane's policy store lost the answer (%s) and cannot tell whether it was stored; check the history before retrying", what)
		reason = policy.ReasonStoreOutcomeUnknown
	}
	st, detailErr := status.New(codes.Unavailable, msg).WithDetails(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   policy.ErrorDomain,
		Metadata: map[string]string{policy.StoreOperationKey: what},
	})
	if detailErr != nil {
		return status.Error(codes.Unavailable, msg)
	}
	return st.Err()
}

// checkMessage refuses a commit message over policy.MaxCommitMessageBytes:
// it is kept with the revision and printed in every history listing, so it
// is bounded like every other string a client supplies, and refused rather
// than cut so the author sees what was kept.
func checkMessage(msg string) error {
	if v := messageViolation(msg); v != nil {
		return badRequest(v)
	}
	return nil
}

// messageViolation is checkMessage's violation, or nil, for requests that
// gather every bad field at once.
func messageViolation(msg string) *wsfleetv1.FieldViolation {
	if len(msg) <= policy.MaxCommitMessageBytes {
		return nil
	}
	return &wsfleetv1.FieldViolation{
		Field:       "message",
		Description: fmt.Sprintf("%d bytes; at most %d", len(msg), policy.MaxCommitMessageBytes),
	}
}

func authorOf(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok && id.Name != "" {
		return id.Name
	}
	return "unknown"
}

func poolName(p string) (string, error) {
	if p == "" {
		return policy.DefaultPool, nil
	}
	if err := policy.ValidatePoolName(p); err != nil {
		// Quoted cut short: the refusal of a megabyte of name must not
		// carry it back (in the message and again in the details).
		return "", badRequest(&wsfleetv1.FieldViolation{Field: "pool", Description: fmt.Sprintf("%q (%d bytes): must be a DNS label (lowercase letters, digits, '-', at most 63)", clip.Marked(p, 80), len(p))})
	}
	return p, nil
}

// invalidPolicy refuses a policy, naming every offending field. Paths are
// relative to the Policy message ("origins.allow[1]"), as the operator wrote
// them in the policy file, not to the request.
func invalidPolicy(msg string, vs []*wsfleetv1.FieldViolation) error {
	return invalidArgument(msg, vs)
}

func policyViolationsMessage(n int) string {
	if n == 1 {
		return "policy has 1 invalid field"
	}
	return fmt.Sprintf("policy has %d invalid fields", n)
}

// badRequest refuses a request for fields other than the policy.
func badRequest(vs ...*wsfleetv1.FieldViolation) error {
	msg := "invalid request"
	if len(vs) == 1 {
		msg = vs[0].GetField() + ": " + vs[0].GetDescription()
	}
	return invalidArgument(msg, vs)
}

// invalidArgument carries a google.rpc.BadRequest with every violation, so
// clients can show them all at once.
func invalidArgument(msg string, vs []*wsfleetv1.FieldViolation) error {
	br := &errdetails.BadRequest{}
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       v.GetField(),
			Description: v.GetDescription(),
		})
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

func conflict(pool string, current, expected int64) error {
	msg := fmt.Sprintf("pool %q is at revision %d, not %d", pool, current, expected)
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: policy.ReasonRevisionConflict,
		Domain: policy.ErrorDomain,
		Metadata: map[string]string{
			policy.ConflictPoolKey:     pool,
			policy.ConflictCurrentKey:  strconv.FormatInt(current, 10),
			policy.ConflictExpectedKey: strconv.FormatInt(expected, 10),
		},
	})
	if err != nil {
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

// Page tokens are opaque to clients: base64 of "r<revision>", the exclusive
// upper bound of the next page.
func encodePageToken(before int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("r" + strconv.FormatInt(before, 10)))
}

func decodePageToken(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != 'r' {
		return 0, errors.New("malformed page token")
	}
	n, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("malformed page token")
	}
	return n, nil
}
