package fanout

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// QueryEvents implements FleetService.QueryEvents for every replica: the
// newest events of all of them, newest first.
func (f *Fleet) QueryEvents(ctx context.Context, req *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	// This replica's answer first: it validates the request, so that an
	// invalid one is refused without asking anyone else.
	local, err := f.cfg.Local.QueryEvents(ctx, req)
	peers := f.peers(ctx)
	if err != nil || len(peers) == 0 {
		return local, err
	}
	answers, missing := askAll(ctx, f, "QueryEvents", peers,
		func(ctx context.Context, c wsfleetv1.FleetServiceClient) (*wsfleetv1.QueryEventsResponse, error) {
			return c.QueryEvents(ctx, req)
		})
	events := slices.Clone(local.GetEvents())
	truncated := local.GetTruncated()
	for _, a := range answers {
		events = append(events, a.GetEvents()...)
		truncated = truncated || a.GetTruncated()
	}
	// Newest first by time; stable, so each replica's own order stays for
	// events of the same time.
	slices.SortStableFunc(events, func(a, b *wsfleetv1.ErrorEvent) int {
		return compareTime(b.GetTime(), a.GetTime())
	})
	if n := limit(req.GetLimit(), telemetry.DefaultQueryLimit, telemetry.MaxQueryLimit); len(events) > n {
		events = events[:n]
	}
	size := 0
	for i, ev := range events {
		if size += proto.Size(ev) + 8; size > telemetry.MaxQueryBytes {
			events, truncated = events[:i], true
			break
		}
	}
	return &wsfleetv1.QueryEventsResponse{Events: events, Truncated: truncated, MissingReplicas: missing}, nil
}

// TopErrors implements FleetService.TopErrors for every replica: each
// one's groups added up.
func (f *Fleet) TopErrors(ctx context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	peers := f.peers(ctx)
	if len(peers) == 0 || req.GetLimit() < 0 {
		// Alone, or refused (the limit below would hide a negative one).
		return f.cfg.Local.TopErrors(ctx, req)
	}
	// Every replica is asked for the same range (its start fixed here, as
	// the local server would fix it) and for all its groups, so that the
	// sums are exact whatever the limit.
	all := proto.Clone(req).(*wsfleetv1.TopErrorsRequest)
	all.Limit = telemetry.MaxTopLimit
	if all.GetFilter().GetStartTime() == nil {
		if all.Filter == nil {
			all.Filter = &wsfleetv1.EventFilter{}
		}
		end := timestamppb.Now().AsTime()
		if e := all.GetFilter().GetEndTime(); e != nil && e.CheckValid() == nil {
			end = e.AsTime()
		}
		all.Filter.StartTime = timestamppb.New(end.Add(-telemetry.DefaultTopWindow))
	}
	local, err := f.cfg.Local.TopErrors(ctx, all)
	if err != nil {
		return nil, err
	}
	answers, missing := askAll(ctx, f, "TopErrors", peers,
		func(ctx context.Context, c wsfleetv1.FleetServiceClient) (*wsfleetv1.TopErrorsResponse, error) {
			return c.TopErrors(ctx, all)
		})
	resp := sumTop(append(answers, local), limit(req.GetLimit(), telemetry.DefaultTopLimit, telemetry.MaxTopLimit))
	resp.MissingReplicas = missing
	return resp, nil
}

// sumTop adds up TopErrors answers: counts, per-class counts and totals;
// the groups largest first (ties by key), at most n.
func sumTop(answers []*wsfleetv1.TopErrorsResponse, n int) *wsfleetv1.TopErrorsResponse {
	type group struct {
		count   int64
		classes map[wsfleetv1.ErrorClass]int64
	}
	groups := map[string]*group{}
	out := &wsfleetv1.TopErrorsResponse{}
	for _, a := range answers {
		out.Total = addCount(out.Total, a.GetTotal())
		for _, g := range a.GetGroups() {
			sum := groups[g.GetKey()]
			if sum == nil {
				sum = &group{classes: map[wsfleetv1.ErrorClass]int64{}}
				groups[g.GetKey()] = sum
			}
			sum.count = addCount(sum.count, g.GetCount())
			if len(g.GetClasses()) == 0 {
				// A replica of a build without per-class counts: its
				// top class stands for the group.
				sum.classes[g.GetTopClass()] = addCount(sum.classes[g.GetTopClass()], g.GetCount())
			}
			for _, c := range g.GetClasses() {
				sum.classes[c.GetClass()] = addCount(sum.classes[c.GetClass()], c.GetCount())
			}
		}
	}
	for key, g := range groups {
		classes := make([]*wsfleetv1.TopErrorsResponse_ClassCount, 0, len(g.classes))
		for c, n := range g.classes {
			classes = append(classes, &wsfleetv1.TopErrorsResponse_ClassCount{Class: c, Count: n})
		}
		slices.SortFunc(classes, func(a, b *wsfleetv1.TopErrorsResponse_ClassCount) int {
			return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), cmp.Compare(a.GetClass(), b.GetClass()))
		})
		top := wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED
		if len(classes) > 0 {
			top = classes[0].GetClass()
		}
		out.Groups = append(out.Groups, &wsfleetv1.TopErrorsResponse_Group{Key: key, Count: g.count, TopClass: top, Classes: classes})
	}
	slices.SortFunc(out.Groups, func(a, b *wsfleetv1.TopErrorsResponse_Group) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), strings.Compare(a.GetKey(), b.GetKey()))
	})
	if len(out.Groups) > n {
		out.Groups = out.Groups[:n]
	}
	return out
}

// limit applies a request's count as the local server does: 0 means def,
// more than maxN is maxN (negative ones were refused already).
func limit(n int32, def, maxN int) int {
	switch {
	case n <= 0:
		return def
	case int(n) > maxN:
		return maxN
	}
	return int(n)
}

func compareTime(a, b *timestamppb.Timestamp) int {
	return cmp.Or(cmp.Compare(a.GetSeconds(), b.GetSeconds()), cmp.Compare(a.GetNanos(), b.GetNanos()))
}

// ErrorSeries implements FleetService.ErrorSeries for every replica: each
// one's counts added up per class and bucket. Every replica is asked for
// the same range, fixed here, so that the buckets line up whatever their
// clocks say.
func (f *Fleet) ErrorSeries(ctx context.Context, req *wsfleetv1.ErrorSeriesRequest) (*wsfleetv1.ErrorSeriesResponse, error) {
	peers := f.peers(ctx)
	if len(peers) == 0 {
		return f.cfg.Local.ErrorSeries(ctx, req)
	}
	start, end, step, err := telemetry.SeriesRange(req, time.Now())
	if err != nil {
		return nil, err
	}
	all := proto.Clone(req).(*wsfleetv1.ErrorSeriesRequest)
	if all.Filter == nil {
		all.Filter = &wsfleetv1.EventFilter{}
	}
	all.Filter.StartTime, all.Filter.EndTime = timestamppb.New(start), timestamppb.New(end)
	all.Step = durationpb.New(step)
	local, err := f.cfg.Local.ErrorSeries(ctx, all)
	if err != nil {
		return nil, err
	}
	answers, missing := askAll(ctx, f, "ErrorSeries", peers,
		func(ctx context.Context, c wsfleetv1.FleetServiceClient) (*wsfleetv1.ErrorSeriesResponse, error) {
			return c.ErrorSeries(ctx, all)
		})
	resp := sumSeries(local, answers)
	resp.MissingReplicas = missing
	return resp, nil
}

// addCount adds a count from another replica: a negative one adds
// nothing, and the sum saturates instead of wrapping, so that a garbled
// or hostile answer cannot subtract from the others' counts or turn a
// spike into a negative number.
func addCount(a, b int64) int64 {
	switch {
	case b <= 0:
		return a
	case a > math.MaxInt64-b:
		return math.MaxInt64
	}
	return a + b
}

// sumSeries adds the answers' counts to local's, per class and bucket, and
// their folded counts. An answer whose buckets do not line up with local's
// (another build's range rules) adds what falls in local's buckets by
// time.
func sumSeries(local *wsfleetv1.ErrorSeriesResponse, answers []*wsfleetv1.ErrorSeriesResponse) *wsfleetv1.ErrorSeriesResponse {
	out := proto.Clone(local).(*wsfleetv1.ErrorSeriesResponse)
	byClass := map[wsfleetv1.ErrorClass][]int64{}
	for _, s := range out.Series {
		byClass[s.GetClass()] = s.Counts
	}
	n := int64(out.GetBuckets())
	start := out.GetStartTime().AsTime()
	step := out.GetStep().AsDuration()
	for _, a := range answers {
		out.Folded = addCount(out.Folded, a.GetFolded())
		aStart, aStep := a.GetStartTime().AsTime(), a.GetStep().AsDuration()
		if aStep <= 0 || step <= 0 {
			continue
		}
		for _, s := range a.GetSeries() {
			counts := byClass[s.GetClass()]
			if counts == nil {
				counts = make([]int64, n)
				byClass[s.GetClass()] = counts
				out.Series = append(out.Series, &wsfleetv1.ErrorSeriesResponse_Series{Class: s.GetClass(), Counts: counts})
			}
			for i, c := range s.GetCounts() {
				if i > 0 && aStep > math.MaxInt64/time.Duration(i) {
					break // the rest lies centuries ahead
				}
				at := aStart.Add(time.Duration(i) * aStep)
				b := int64(at.Sub(start) / step)
				if at.Before(start) || b >= n {
					continue
				}
				counts[b] = addCount(counts[b], c)
			}
		}
	}
	telemetry.SortSeries(out.Series)
	return out
}
