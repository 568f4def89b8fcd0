package rollout

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/errclass"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Defaults of Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 10 * time.Second
	// maxGroups is how many nodes one TopErrors answer may list (the
	// telemetry's MaxTopLimit).
	maxGroups = 10_000
)

// Ender ends a baking rollout with a compare-and-set on its canary
// revision (policyserver.Server.EndRollout).
type Ender interface {
	EndRollout(ctx context.Context, pool string, canary int64, result wsfleetv1.RolloutResult, automatic bool, reason string) (*wsfleetv1.PolicyRevision, error)
}

// Events answers TopErrors: this replica's telemetry, or every replica's
// (fanout).
type Events interface {
	TopErrors(ctx context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error)
}

// Config configures an Evaluator.
type Config struct {
	// Heads lists the pools' head revisions (store.Store.Pools). Required.
	Heads func(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error)
	// Nodes lists a pool's known nodes with their labels, applied revision
	// and NACKs (the registry's merged ListNodes). Required.
	Nodes func(ctx context.Context, pool string) ([]*wsfleetv1.NodeStatus, error)
	// Events counts the fleet's events. Required.
	Events Events
	// Ender writes the decisions. Required.
	Ender Ender
	// Context wraps the context decisions are written with (their author:
	// policyserver.SystemContext); optional.
	Context func(context.Context) context.Context
	// Interval between two looks at the baking rollouts. Default 5s.
	Interval time.Duration
	// Timeout bounds one look at all pools. Default 10s.
	Timeout time.Duration
	Log     logrus.FieldLogger
	Now     func() time.Time
}

// Evaluator decides baking rollouts.
type Evaluator struct {
	cfg Config
}

// New returns an Evaluator.
func New(cfg Config) (*Evaluator, error) {
	switch {
	case cfg.Heads == nil:
		return nil, fmt.Errorf("%w: Heads is required", ErrConfig)
	case cfg.Nodes == nil:
		return nil, fmt.Errorf("%w: Nodes is required", ErrConfig)
	case cfg.Events == nil:
		return nil, fmt.Errorf("%w: Events is required", ErrConfig)
	case cfg.Ender == nil:
		return nil, fmt.Errorf("%w: Ender is required", ErrConfig)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Context == nil {
		cfg.Context = func(ctx context.Context) context.Context { return ctx }
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Evaluator{cfg: cfg}, nil
}

// Run looks at the baking rollouts every Interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Tick(ctx)
		}
	}
}

// Tick looks once at every pool whose head is a baking canary, and ends
// the rollouts that are decided.
func (e *Evaluator) Tick(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	heads, err := e.cfg.Heads(ctx)
	if err != nil {
		e.cfg.Log.WithError(err).Warn("rollout: read the pools' heads")
		return
	}
	for _, h := range heads {
		if h.GetRollout() == nil {
			continue
		}
		e.decide(ctx, h)
	}
}

// decide evaluates one baking canary and writes its end when decided.
func (e *Evaluator) decide(ctx context.Context, canary *wsfleetv1.PolicyRevision) {
	log := e.cfg.Log.WithFields(logrus.Fields{"pool": canary.GetPool(), "canary_revision": canary.GetRevision()})
	v, err := e.evaluate(ctx, canary)
	if err != nil {
		log.WithError(err).Warn("rollout: cannot evaluate the canary; trying again")
		return
	}
	if v.result == wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED {
		if v.waiting != "" {
			log.WithField("degraded", v.degraded).Info("rollout: " + v.waiting)
		}
		return
	}
	rev, err := e.cfg.Ender.EndRollout(e.cfg.Context(ctx), canary.GetPool(), canary.GetRevision(), v.result, true, v.reason)
	if status.Code(err) == codes.FailedPrecondition {
		// Another replica, or an admin, ended it first: the compare-and-set
		// did its job.
		log.WithError(err).Info("rollout: already ended elsewhere")
		return
	}
	if err != nil {
		log.WithError(err).Warn("rollout: write the decision; trying again")
		return
	}
	log.WithFields(logrus.Fields{"new_revision": rev.GetRevision(), "result": v.result.String(), "reason": v.reason}).Info("rollout decided")
}

// verdict is one evaluation: the comparison, and the decision if any.
type verdict struct {
	classes  []*wsfleetv1.ClassComparison
	degraded string
	result   wsfleetv1.RolloutResult // UNSPECIFIED: keep baking
	reason   string
	waiting  string // why a due promotion waits
}

// Compare fills a baking rollout's status with the comparison as the
// evaluator sees it now (GetRollout, policyserver.Config.Compare).
func (e *Evaluator) Compare(ctx context.Context, st *wsfleetv1.RolloutStatus) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	canary := &wsfleetv1.PolicyRevision{Pool: st.GetPool(), Revision: st.GetCanaryRevision(), Rollout: st.GetSpec(), CreateTime: st.GetStartTime()}
	v, err := e.evaluate(ctx, canary)
	if err != nil {
		st.Degraded = joinDegraded(st.GetDegraded(), "comparison: "+err.Error())
		return
	}
	st.Classes = v.classes
	st.Degraded = joinDegraded(st.GetDegraded(), v.degraded)
}

func joinDegraded(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// expected are the closes that never count against a canary.
var expected = map[wsfleetv1.ErrorClass]bool{
	wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL:            true,
	wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY: true,
	wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN:   true,
	wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING:     true,
}

// evaluate compares the canary nodes with the rest and decides.
func (e *Evaluator) evaluate(ctx context.Context, canary *wsfleetv1.PolicyRevision) (*verdict, error) {
	spec := canary.GetRollout()
	sel, err := policy.ParseSelector(spec.GetSelector())
	if err != nil {
		return nil, err
	}
	pool, n := canary.GetPool(), canary.GetRevision()
	nodes, err := e.cfg.Nodes(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("list the nodes: %w", err)
	}
	v := &verdict{}
	inCanary := map[string]bool{}
	var canaryNodes, restNodes, running int
	var nack string
	for _, nd := range nodes {
		if nd.GetPool() != pool {
			continue
		}
		// A node that runs the canary revision is a canary node whatever
		// its labels say now (restarted from its cache with others): it
		// cannot go back to the base, and its events are the canary's.
		runsCanary := nd.GetAppliedPool() == pool && nd.GetAppliedRevision() == n
		if sel.Matches(nd.GetLabels()) || runsCanary {
			inCanary[nd.GetNodeId()] = true
			if nd.GetConnected() {
				canaryNodes++
			}
			if runsCanary {
				running++
			}
			if nack == "" && nd.GetLastNackRevision() == n && nd.GetLastNackError() != "" {
				nack = fmt.Sprintf("node %s refused canary revision %d: %s", nd.GetNodeId(), n, nd.GetLastNackError())
			}
		} else {
			inCanary[nd.GetNodeId()] = false
			if nd.GetConnected() {
				restNodes++
			}
		}
	}
	start := canary.GetCreateTime()
	if start == nil {
		return nil, fmt.Errorf("canary revision %d has no create time", n)
	}
	filter := &wsfleetv1.EventFilter{StartTime: start, Pool: pool, ErrorsOnly: true}
	rest, err := e.cfg.Events.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{Filter: filter, GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, Limit: maxGroups})
	if err != nil {
		return nil, fmt.Errorf("count the pool's events: %w", err)
	}
	canaryFilter := &wsfleetv1.EventFilter{StartTime: start, Pool: pool, ErrorsOnly: true, PolicyRevision: n}
	onCanary, err := e.cfg.Events.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{Filter: canaryFilter, GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, Limit: maxGroups})
	if err != nil {
		return nil, fmt.Errorf("count the canary's events: %w", err)
	}
	var missing []string
	for _, m := range slices.Concat(rest.GetMissingReplicas(), onCanary.GetMissingReplicas()) {
		missing = append(missing, m.GetReplica()+": "+m.GetError())
	}
	if len(missing) > 0 {
		v.degraded = "replicas whose telemetry is missing: " + strings.Join(dedup(missing), "; ")
	}

	canaryCounts := countClasses(onCanary, func(node string) bool { return inCanary[node] })
	restCounts := countClasses(rest, func(node string) bool { canary, known := inCanary[node]; return known && !canary })
	now := e.cfg.Now()
	minutes := max(now.Sub(start.AsTime()).Minutes(), 1.0/60)
	rate := func(events int64, nodes int) float64 {
		return float64(events) / float64(max(nodes, 1)) / minutes
	}
	classes := map[wsfleetv1.ErrorClass]bool{}
	for c := range canaryCounts {
		classes[c] = true
	}
	for c := range restCounts {
		classes[c] = true
	}
	var worst *wsfleetv1.ClassComparison
	for c := range classes {
		if expected[c] {
			continue
		}
		cc := &wsfleetv1.ClassComparison{
			Class:        c,
			CanaryEvents: canaryCounts[c],
			CanaryRate:   rate(canaryCounts[c], canaryNodes),
			RestEvents:   restCounts[c],
			RestRate:     rate(restCounts[c], restNodes),
		}
		cc.Worse = cc.CanaryEvents >= int64(spec.GetMinSamples()) && cc.CanaryRate > spec.GetMaxRatio()*cc.RestRate
		v.classes = append(v.classes, cc)
		if cc.Worse && (worst == nil || cc.CanaryEvents > worst.CanaryEvents) {
			worst = cc
		}
	}
	sort.Slice(v.classes, func(i, j int) bool {
		a, b := v.classes[i], v.classes[j]
		if a.GetCanaryEvents() != b.GetCanaryEvents() {
			return a.GetCanaryEvents() > b.GetCanaryEvents()
		}
		return a.GetClass() < b.GetClass()
	})

	bake := spec.GetBake().AsDuration()
	switch {
	case nack != "":
		v.result, v.reason = wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, nack
	case worst != nil:
		v.result = wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK
		v.reason = fmt.Sprintf("%s %.1f/min per canary node vs %.1f/min elsewhere (%d events)",
			errclass.Name(worst.GetClass()), worst.GetCanaryRate(), worst.GetRestRate(), worst.GetCanaryEvents())
	case now.Before(start.AsTime().Add(bake)):
	case v.degraded != "":
		v.waiting = fmt.Sprintf("bake of %s passed but the comparison may miss part of the fleet's telemetry; not promoting until every replica answers", bake)
	case running == 0:
		// No evidence at all: every canary node is gone or never took it.
		v.waiting = fmt.Sprintf("bake of %s passed but no canary node runs revision %d; not promoting until one does", bake, n)
	default:
		v.result = wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED
		v.reason = fmt.Sprintf("bake of %s passed; no class worse on canary", bake)
	}
	return v, nil
}

// countClasses adds up the per-class counts of the node groups keep
// accepts.
func countClasses(resp *wsfleetv1.TopErrorsResponse, keep func(node string) bool) map[wsfleetv1.ErrorClass]int64 {
	out := map[wsfleetv1.ErrorClass]int64{}
	for _, g := range resp.GetGroups() {
		if !keep(g.GetKey()) {
			continue
		}
		if len(g.GetClasses()) == 0 {
			out[g.GetTopClass()] += g.GetCount()
			continue
		}
		for _, c := range g.GetClasses() {
			out[c.GetClass()] += c.GetCount()
		}
	}
	return out
}

func dedup(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
