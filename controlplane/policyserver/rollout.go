package policyserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// Bounds and defaults of a canary rollout (ApplyPolicyRequest.canary).
const (
	DefaultBake       = 5 * time.Minute
	MinBake           = 10 * time.Second
	MaxBake           = 24 * time.Hour
	DefaultMinSamples = 10
	MaxMinSamples     = 1_000_000
	DefaultMaxRatio   = 2.0
	MinMaxRatio       = 1.0
	MaxMaxRatio       = 1000.0
	// MaxRolloutScan bounds how far back GetRollout looks through a pool's
	// history for its latest rollout. The scan is redone only when the
	// pool's head changes (see rolloutCache).
	MaxRolloutScan = 200
)

func newRolloutsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "wsfleet",
		Name:      "rollouts_total",
		Help:      "Canary rollouts this process ended, by result (promoted, rolled_back) and whether the control plane decided (automatic) or an admin.",
	}, []string{"result", "automatic"})
}

// canarySpec validates the canary fields of an apply, naming every bad one
// at once, fills the defaults, and checks the pool's nodes: the selector
// must match at least one connected node of the pool and leave at least
// one out, or there is nothing to compare the canary with.
func (s *Server) canarySpec(ctx context.Context, pool string, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.RolloutSpec, error) {
	spec, bad := rolloutSpec(req.GetCanary(), req.GetBake(), req.GetCanaryMinSamples(), req.GetCanaryMaxRatio())
	if len(bad) > 0 {
		return nil, badRequest(bad...)
	}
	sel, _ := policy.ParseSelector(spec.GetSelector())
	if s.cfg.Nodes == nil {
		return nil, status.Error(codes.Unimplemented, "canary rollouts need the fleet's node list, which this server was not given")
	}
	nodes, err := s.cfg.Nodes(ctx, pool)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list the nodes of pool %q: %v", pool, err)
	}
	var matched, rest int
	for _, n := range nodes {
		if !n.GetConnected() {
			continue
		}
		if sel.Matches(n.GetLabels()) {
			matched++
		} else {
			rest++
		}
	}
	switch {
	case matched == 0:
		return nil, status.Errorf(codes.FailedPrecondition, "canary %q matches no connected node of pool %q (%d connected): nothing would run the canary", spec.GetSelector(), pool, rest)
	case rest == 0:
		return nil, status.Errorf(codes.FailedPrecondition, "canary %q matches every connected node of pool %q (%d): nothing would be left to compare it with; apply without --canary", spec.GetSelector(), pool, matched)
	}
	return spec, nil
}

// rolloutSpec checks the canary fields of an apply or a proposal without
// looking at the fleet, naming every bad field, and fills the defaults.
// A proposal is checked with it when proposed, so that what is stored
// for approval is a rollout its approval can start.
func rolloutSpec(canary string, b *durationpb.Duration, minSamples int32, maxRatio float64) (*wsfleetv1.RolloutSpec, []*wsfleetv1.FieldViolation) {
	var bad []*wsfleetv1.FieldViolation
	sel, err := policy.ParseSelector(canary)
	if err != nil {
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "canary", Description: strings.TrimPrefix(err.Error(), policy.ErrInvalidSelector.Error()+": ")})
	}
	spec := &wsfleetv1.RolloutSpec{Selector: sel.String(), MinSamples: minSamples, MaxRatio: maxRatio}
	bake := DefaultBake
	if b != nil {
		switch {
		case b.CheckValid() != nil:
			bad = append(bad, &wsfleetv1.FieldViolation{Field: "bake", Description: "not a valid duration"})
		case b.AsDuration() == 0:
		case b.AsDuration() < MinBake || b.AsDuration() > MaxBake:
			bad = append(bad, &wsfleetv1.FieldViolation{Field: "bake", Description: fmt.Sprintf("%s; want %s..%s (0 means %s)", b.AsDuration(), MinBake, MaxBake, DefaultBake)})
		default:
			bake = b.AsDuration()
		}
	}
	spec.Bake = durationpb.New(bake)
	switch n := spec.GetMinSamples(); {
	case n == 0:
		spec.MinSamples = DefaultMinSamples
	case n < 1 || n > MaxMinSamples:
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "canary_min_samples", Description: fmt.Sprintf("%d; want 1..%d (0 means %d)", n, MaxMinSamples, DefaultMinSamples)})
	}
	switch r := spec.GetMaxRatio(); {
	case r == 0:
		spec.MaxRatio = DefaultMaxRatio
	case math.IsNaN(r) || r < MinMaxRatio || r > MaxMaxRatio:
		bad = append(bad, &wsfleetv1.FieldViolation{Field: "canary_max_ratio", Description: fmt.Sprintf("%v; want %g..%g (0 means %g)", r, MinMaxRatio, MaxMaxRatio, DefaultMaxRatio)})
	}
	return spec, bad
}

// checkBaking refuses a write while the pool's head is a baking canary,
// unless the write is the one that ends it, and a canary on a pool without
// a head (nothing to fall back to).
func checkBaking(head *wsfleetv1.PolicyRevision, c change) error {
	if c.rollout != nil && head == nil {
		return status.Errorf(codes.FailedPrecondition, "pool %q has no revision yet: a canary needs one for the other nodes to keep running; apply without --canary first", c.pool)
	}
	if head.GetRollout() == nil || c.outcome != nil {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition,
		"pool %q is baking canary revision %d (selector %q); end it first with `wsctl rollout promote --pool %s` or `wsctl rollout abort --pool %s`",
		c.pool, head.GetRevision(), head.GetRollout().GetSelector(), c.pool, c.pool)
}

// notBaking refuses ending a rollout whose canary is no longer the head.
func notBaking(pool string, canary, head int64) error {
	return status.Errorf(codes.FailedPrecondition, "revision %d of pool %q is not a baking canary (the pool is at revision %d); see `wsctl rollout status --pool %s`", canary, pool, head, pool)
}

// rolloutFields are the audit fields of a canary revision or of the one
// that ended a rollout; none for other revisions.
func rolloutFields(rev *wsfleetv1.PolicyRevision) logrus.Fields {
	f := logrus.Fields{}
	if r := rev.GetRollout(); r != nil {
		f["canary"], f["base_revision"], f["bake"] = r.GetSelector(), r.GetBaseRevision(), r.GetBake().AsDuration().String()
	}
	if o := rev.GetRolloutOutcome(); o != nil {
		f["rollout_result"], f["canary_revision"], f["automatic"] = rolloutResultName(o), o.GetCanaryRevision(), o.GetAutomatic()
	}
	return f
}

func rolloutResultName(o *wsfleetv1.RolloutOutcome) string {
	switch o.GetResult() {
	case wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED:
		return "promoted"
	case wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK:
		return "rolled_back"
	}
	return ""
}

// EndRollout ends the baking canary revision canary of pool: a promotion
// stores the canary's content again (pushed to every node), a rollback
// the base revision's. The append is a compare-and-set on the canary
// revision, so when several replicas (or an admin and the evaluator)
// decide at once exactly one revision ends it; the others get
// FailedPrecondition. The rollout evaluator calls it with automatic set,
// the Promote/Abort RPCs without.
func (s *Server) EndRollout(ctx context.Context, pool string, canary int64, result wsfleetv1.RolloutResult, automatic bool, reason string) (*wsfleetv1.PolicyRevision, error) {
	rev, err := s.cfg.Store.Get(ctx, pool, canary)
	if errors.Is(err, store.ErrNotFound) || err == nil && rev.GetRollout() == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "revision %d of pool %q is not a canary", canary, pool)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, "read pool "+strconv.Quote(pool))
	}
	reason = clip.Marked(reason, policy.MaxCommitMessageBytes/2)
	c := change{
		pool:     pool,
		expected: &canary,
		outcome:  &wsfleetv1.RolloutOutcome{CanaryRevision: canary, Result: result, Automatic: automatic, Reason: reason},
	}
	switch result {
	case wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED:
		c.policy = rev.GetPolicy()
		c.message = fmt.Sprintf("promote canary revision %d: %s", canary, reason)
	case wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK:
		base, err := s.get(ctx, pool, rev.GetRollout().GetBaseRevision())
		if err != nil {
			return nil, baseLost(err, pool, canary, rev.GetRollout().GetBaseRevision())
		}
		c.policy, c.rollbackOf = base.GetPolicy(), base.GetRevision()
		c.message = fmt.Sprintf("roll back canary revision %d to revision %d: %s", canary, base.GetRevision(), reason)
	default:
		return nil, fmt.Errorf("%w: rollout result %v", ErrConfig, result)
	}
	c.message = clip.Marked(c.message, policy.MaxCommitMessageBytes)
	res, err := s.write(ctx, c)
	if err != nil {
		return nil, err
	}
	s.rollouts.WithLabelValues(rolloutResultName(c.outcome), strconv.FormatBool(automatic)).Inc()
	s.cfg.Log.WithFields(logrus.Fields{
		"audit":           true,
		"author":          res.rev.GetAuthor(),
		"pool":            pool,
		"canary_revision": canary,
		"new_revision":    res.rev.GetRevision(),
		"result":          rolloutResultName(c.outcome),
		"automatic":       automatic,
		"reason":          reason,
	}).Info("rollout ended")
	return res.rev, nil
}

// baseLost says why a canary cannot be rolled back when its base revision
// cannot be read (deleted or damaged in the store): every other write to
// the pool is refused while it bakes, so the way out is named. The code
// and details of err are kept.
func baseLost(err error, pool string, canary, base int64) error {
	p := status.Convert(err).Proto()
	p.Message = fmt.Sprintf("canary revision %d of pool %q cannot be rolled back: its base revision %d cannot be read (%s); promote it (`wsctl rollout promote --pool %s`) or repair the store",
		canary, pool, base, p.GetMessage(), pool)
	return status.FromProto(p).Err()
}

// GetRollout implements PolicyService.
func (s *Server) GetRollout(ctx context.Context, req *wsfleetv1.GetRolloutRequest) (*wsfleetv1.GetRolloutResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	st, err := s.RolloutStatus(ctx, pool)
	if err != nil {
		return nil, err
	}
	if st.GetState() == wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING {
		s.fillNodes(ctx, st)
		if s.cfg.Compare != nil {
			s.cfg.Compare(ctx, st)
		}
	}
	return &wsfleetv1.GetRolloutResponse{Rollout: st}, nil
}

// RolloutStatus finds pool's latest rollout in its history (at most
// MaxRolloutScan revisions back from the head): its spec, state and, once
// ended, the ending revision and outcome. NotFound when there is none.
// While the head is the one it last scanned from (same store identity and
// revision), the answer is remembered and only the head is read.
func (s *Server) RolloutStatus(ctx context.Context, pool string) (*wsfleetv1.RolloutStatus, error) {
	head, err := s.cfg.Store.Head(ctx, pool)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "pool %q has no policy", pool)
	}
	if err != nil {
		return nil, s.storeError(ctx, err, "head of pool "+strconv.Quote(pool))
	}
	st, ok := s.rolloutCache.get(pool, head)
	if !ok {
		if st, head, err = s.scanRollout(ctx, pool); err != nil {
			return nil, err
		}
		s.rolloutCache.put(pool, head, st)
	}
	if st == nil {
		return nil, status.Errorf(codes.NotFound, "pool %q has no rollout in its last %d revisions", pool, MaxRolloutScan)
	}
	return st, nil
}

// scanRollout reads pool's history back from the head for its latest
// rollout; nil when there is none within MaxRolloutScan. It returns the
// head it scanned from, which the answer holds for.
func (s *Server) scanRollout(ctx context.Context, pool string) (*wsfleetv1.RolloutStatus, *wsfleetv1.PolicyRevision, error) {
	revs, err := s.cfg.Store.History(ctx, pool, 0, MaxRolloutScan)
	if errors.Is(err, store.ErrNotFound) || err == nil && len(revs) == 0 {
		return nil, nil, status.Errorf(codes.NotFound, "pool %q has no policy", pool)
	}
	if err != nil {
		return nil, nil, s.storeError(ctx, err, "history of pool "+strconv.Quote(pool))
	}
	// Newest first: the revision after a canary is the one before it here.
	for i, rev := range revs {
		if rev.GetRollout() == nil {
			continue
		}
		st := &wsfleetv1.RolloutStatus{
			Pool:           pool,
			CanaryRevision: rev.GetRevision(),
			Spec:           rev.GetRollout(),
			StartTime:      rev.GetCreateTime(),
			State:          wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING,
		}
		if rev.GetCreateTime() != nil {
			st.BakeEndTime = timestamppb.New(rev.GetCreateTime().AsTime().Add(rev.GetRollout().GetBake().AsDuration()))
		}
		if i > 0 {
			end := revs[i-1]
			st.EndingRevision, st.Outcome = end.GetRevision(), end.GetRolloutOutcome()
			st.State = wsfleetv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK
			if end.GetRolloutOutcome().GetResult() == wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED {
				st.State = wsfleetv1.RolloutState_ROLLOUT_STATE_PROMOTED
			}
		}
		return st, revs[0], nil
	}
	return nil, revs[0], nil
}

// fillNodes lists the pool's nodes and their part in a baking rollout.
func (s *Server) fillNodes(ctx context.Context, st *wsfleetv1.RolloutStatus) {
	if s.cfg.Nodes == nil {
		return
	}
	nodes, err := s.cfg.Nodes(ctx, st.GetPool())
	if err != nil {
		st.Degraded = "node list: " + err.Error()
		return
	}
	sel, err := policy.ParseSelector(st.GetSpec().GetSelector())
	if err != nil {
		return
	}
	for _, n := range nodes {
		rn := &wsfleetv1.RolloutNode{
			NodeId: n.GetNodeId(),
			// A node running the canary is one whatever its labels say
			// now (the evaluator counts it so too).
			Canary:          sel.Matches(n.GetLabels()) || n.GetAppliedPool() == st.GetPool() && n.GetAppliedRevision() == st.GetCanaryRevision(),
			AppliedRevision: n.GetAppliedRevision(),
			Connected:       n.GetConnected(),
		}
		if n.GetLastNackRevision() == st.GetCanaryRevision() {
			rn.NackError = n.GetLastNackError()
		}
		st.Nodes = append(st.Nodes, rn)
	}
}

// PromoteRollout implements PolicyService.
func (s *Server) PromoteRollout(ctx context.Context, req *wsfleetv1.PromoteRolloutRequest) (*wsfleetv1.PromoteRolloutResponse, error) {
	rev, err := s.endByAdmin(ctx, req.GetPool(), req.GetCanaryRevision(), req.GetMessage(), wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED)
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.PromoteRolloutResponse{Revision: rev}, nil
}

// AbortRollout implements PolicyService.
func (s *Server) AbortRollout(ctx context.Context, req *wsfleetv1.AbortRolloutRequest) (*wsfleetv1.AbortRolloutResponse, error) {
	rev, err := s.endByAdmin(ctx, req.GetPool(), req.GetCanaryRevision(), req.GetMessage(), wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK)
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.AbortRolloutResponse{Revision: rev}, nil
}

func (s *Server) endByAdmin(ctx context.Context, pool string, canary int64, msg string, result wsfleetv1.RolloutResult) (*wsfleetv1.PolicyRevision, error) {
	pool, err := poolName(pool)
	if err != nil {
		return nil, err
	}
	if canary <= 0 {
		return nil, badRequest(&wsfleetv1.FieldViolation{Field: "canary_revision", Description: "must be positive (the baking canary's revision, see GetRollout)"})
	}
	if err := checkMessage(msg); err != nil {
		return nil, err
	}
	if msg == "" {
		msg = "promoted by " + authorOf(ctx)
		if result == wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK {
			msg = "aborted by " + authorOf(ctx)
		}
	}
	return s.EndRollout(ctx, pool, canary, result, false, msg)
}

// SystemContext is the context the control plane's own decisions are
// written with: their author is SystemAuthor.
func SystemContext(ctx context.Context) context.Context {
	return auth.WithIdentity(ctx, auth.Identity{Name: SystemAuthor, Role: auth.RoleAdmin, Credential: "system"})
}
