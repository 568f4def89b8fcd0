package fanout

import (
	"cmp"
	"context"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// TrafficSummary implements FleetService.TrafficSummary for every
// replica: each one's samples added up (sumTraffic).
func (f *Fleet) TrafficSummary(ctx context.Context, req *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error) {
	// The range is fixed here, so that every replica answers for the same
	// minutes; this also refuses an invalid request before asking anyone.
	start, end, err := telemetry.TrafficRange(req, timestamppb.Now().AsTime())
	if err != nil {
		return nil, err
	}
	all := proto.Clone(req).(*wsfleetv1.TrafficSummaryRequest)
	all.StartTime, all.EndTime = timestamppb.New(start), timestamppb.New(end)
	local, err := f.cfg.Local.TrafficSummary(ctx, all)
	peers := f.peers(ctx)
	if err != nil || len(peers) == 0 {
		return local, err
	}
	answers, missing := askAll(ctx, f, "TrafficSummary", peers,
		func(ctx context.Context, c wsfleetv1.FleetServiceClient) (*wsfleetv1.TrafficSummaryResponse, error) {
			return c.TrafficSummary(ctx, all)
		})
	resp := sumTraffic(append([]*wsfleetv1.TrafficSummaryResponse{local}, answers...))
	resp.MissingReplicas = missing
	return resp, nil
}

// sumTraffic adds up TrafficSummary answers: origins and accepted_other
// summed, each measure's highest peak (ties: the earliest minute, then the
// smallest node id), nodes_reporting summed — a node reports to one
// replica at a time, so it counts twice only if it moved between replicas
// within the range — and the earliest start. The first answer's end is
// kept (every replica was asked for the same range).
func sumTraffic(answers []*wsfleetv1.TrafficSummaryResponse) *wsfleetv1.TrafficSummaryResponse {
	out := &wsfleetv1.TrafficSummaryResponse{}
	origins := map[string]uint64{}
	peaks := map[string]*wsfleetv1.TrafficPeak{}
	var order []string
	// A replica's answer is added up saturating, negatives as nothing: a
	// garbled or hostile one must not wrap the sums or subtract from the
	// others'.
	var other, nodes uint64
	for i, a := range answers {
		if i == 0 {
			out.StartTime, out.EndTime = a.GetStartTime(), a.GetEndTime()
		} else if a.GetStartTime() != nil && compareTime(a.GetStartTime(), out.GetStartTime()) < 0 {
			out.StartTime = a.GetStartTime()
		}
		for _, o := range a.GetAccepted() {
			origins[o.GetOrigin()] = telemetry.AddCounts(origins[o.GetOrigin()], o.GetCount())
		}
		other = telemetry.AddCounts(other, uint64(max(a.GetAcceptedOther(), 0)))
		nodes = telemetry.AddCounts(nodes, uint64(max(a.GetNodesReporting(), 0)))
		for _, p := range a.GetPeaks() {
			b, ok := peaks[p.GetMeasure()]
			if !ok {
				order = append(order, p.GetMeasure())
			}
			if !ok || p.GetValue() > b.GetValue() ||
				(p.GetValue() == b.GetValue() && cmp.Or(compareTime(p.GetMinute(), b.GetMinute()), cmp.Compare(p.GetNodeId(), b.GetNodeId())) < 0) {
				peaks[p.GetMeasure()] = p
			}
		}
	}
	for o, n := range origins {
		out.Accepted = append(out.Accepted, &wsfleetv1.OriginCount{Origin: o, Count: n})
	}
	telemetry.SortOrigins(out.Accepted)
	if len(out.Accepted) > telemetry.MaxSummaryOrigins {
		for _, o := range out.Accepted[telemetry.MaxSummaryOrigins:] {
			other = telemetry.AddCounts(other, o.GetCount())
		}
		out.Accepted = out.Accepted[:telemetry.MaxSummaryOrigins]
	}
	out.AcceptedOther = int64(min(other, math.MaxInt64))
	out.NodesReporting = int32(min(nodes, math.MaxInt32))
	for _, m := range order {
		out.Peaks = append(out.Peaks, peaks[m])
	}
	return out
}
