package impact

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// Window is how far back a dry run looks.
const Window = time.Hour

// Source is where a dry run reads the fleet's telemetry: the control
// plane's FleetService queries (package fanout for every replica's).
type Source interface {
	TrafficSummary(context.Context, *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error)
	TopErrors(context.Context, *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error)
}

// Func returns the policyserver Config.Impact hook on src: the last Window
// before now of pool's traffic and origin rejections, through Compute.
func Func(src Source, now func() time.Time) func(ctx context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
	return func(ctx context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
		if pool == "" {
			pool = policy.DefaultPool
		}
		end := now()
		start := end.Add(-Window)
		traffic, err := src.TrafficSummary(ctx, &wsfleetv1.TrafficSummaryRequest{
			Pool: pool, StartTime: timestamppb.New(start), EndTime: timestamppb.New(end),
		})
		if err != nil {
			return nil, err
		}
		rejected, err := src.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{
			Filter: &wsfleetv1.EventFilter{
				StartTime: timestamppb.New(start), EndTime: timestamppb.New(end), Pool: pool,
				Classes: []wsfleetv1.ErrorClass{wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED},
			},
			GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN,
			Limit:   telemetry.MaxTopLimit, // every origin group it keeps
		})
		if err != nil {
			return nil, err
		}
		return Compute(head, next, traffic, rejected)
	}
}

// Compute is next's impact on traffic and rejected (origin_rejected
// counts grouped by origin), compared with head (nil for a pool without
// a policy of its own: then every origin next refuses counts as newly
// rejected, every one it admits as newly admitted).
func Compute(head, next *wsfleetv1.Policy, traffic *wsfleetv1.TrafficSummaryResponse, rejected *wsfleetv1.TopErrorsResponse) (*wsfleetv1.PolicyImpact, error) {
	nextM, err := matcher(next)
	if err != nil {
		return nil, err
	}
	var headM *policy.OriginMatcher
	if head != nil {
		if headM, err = matcher(head); err != nil {
			return nil, err
		}
	}
	out := &wsfleetv1.PolicyImpact{
		WindowStart:          traffic.GetStartTime(),
		WindowEnd:            traffic.GetEndTime(),
		NodesReporting:       traffic.GetNodesReporting(),
		UnattributedAccepted: traffic.GetAcceptedOther(),
	}
	for _, o := range traffic.GetAccepted() {
		if (headM == nil || headM.Allow(o.GetOrigin())) && !nextM.Allow(o.GetOrigin()) {
			out.NewlyRejected = append(out.NewlyRejected, &wsfleetv1.OriginImpact{Origin: o.GetOrigin(), Handshakes: int64(min(o.GetCount(), 1<<62))})
		}
	}
	for _, g := range rejected.GetGroups() {
		// Rejections of many origins, whose fate under an allowlist is
		// unknown.
		if g.GetKey() == telemetry.OtherOrigin {
			continue
		}
		if (headM == nil || !headM.Allow(g.GetKey())) && nextM.Allow(g.GetKey()) {
			out.NewlyAdmitted = append(out.NewlyAdmitted, &wsfleetv1.OriginImpact{Origin: g.GetKey(), Handshakes: g.GetCount()})
		}
	}
	sortImpacts(out.NewlyRejected)
	sortImpacts(out.NewlyAdmitted)
	out.Limits = limits(head, next, traffic.GetPeaks())
	seen := map[string]bool{}
	for _, m := range slices.Concat(traffic.GetMissingReplicas(), rejected.GetMissingReplicas()) {
		add := m.GetReplica() + ": " + m.GetError()
		if !seen[add] {
			seen[add] = true
			out.MissingReplicas = append(out.MissingReplicas, add)
		}
	}
	return out, nil
}

func matcher(p *wsfleetv1.Policy) (*policy.OriginMatcher, error) {
	m, err := policy.NewOriginMatcher(p.GetOrigins().GetAllow(), p.GetOrigins().GetAllowMissing())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return m, nil
}

func sortImpacts(s []*wsfleetv1.OriginImpact) {
	slices.SortFunc(s, func(a, b *wsfleetv1.OriginImpact) int {
		return cmp.Or(cmp.Compare(b.GetHandshakes(), a.GetHandshakes()), strings.Compare(a.GetOrigin(), b.GetOrigin()))
	})
}

// limitField pairs a policy limit with the traffic measure it bounds.
type limitField struct {
	field, measure string
	get            func(*wsfleetv1.LimitsPolicy) int32
}

// limitFields are the limits a dry run checks, in policy order. Bursts
// are not compared on their own: a peak over the rate but within rate +
// burst in one second would have been admitted once, refused if it lasted.
var limitFields = []limitField{
	{"limits.max_connections", "connections", (*wsfleetv1.LimitsPolicy).GetMaxConnections},
	{"limits.max_connections_per_ip", "connections_per_ip", (*wsfleetv1.LimitsPolicy).GetMaxConnectionsPerIp},
	{"limits.handshakes_per_second", "handshakes_per_second", (*wsfleetv1.LimitsPolicy).GetHandshakesPerSecond},
	{"limits.messages_per_second", "messages_per_second", (*wsfleetv1.LimitsPolicy).GetMessagesPerSecond},
	{"limits.max_message_bytes", "message_bytes", (*wsfleetv1.LimitsPolicy).GetMaxMessageBytes},
}

// limits compares each limit of next with its measure's peak; exceeded
// ones first, each group in policy order.
func limits(head, next *wsfleetv1.Policy, peaks []*wsfleetv1.TrafficPeak) []*wsfleetv1.LimitImpact {
	byMeasure := map[string]*wsfleetv1.TrafficPeak{}
	for _, p := range peaks {
		byMeasure[p.GetMeasure()] = p
	}
	out := make([]*wsfleetv1.LimitImpact, 0, len(limitFields))
	for _, f := range limitFields {
		li := &wsfleetv1.LimitImpact{Field: f.field, Limit: int64(f.get(next.GetLimits()))}
		if head != nil {
			li.OldLimit = int64(f.get(head.GetLimits()))
		}
		if p := byMeasure[f.measure]; p != nil {
			li.Peak, li.NodeId, li.PeakMinute = p.GetValue(), p.GetNodeId(), p.GetMinute()
		}
		li.Exceeded = li.Limit > 0 && li.Peak > li.Limit
		out = append(out, li)
	}
	slices.SortStableFunc(out, func(a, b *wsfleetv1.LimitImpact) int {
		switch {
		case a.GetExceeded() == b.GetExceeded():
			return 0
		case a.GetExceeded():
			return -1
		}
		return 1
	})
	return out
}
