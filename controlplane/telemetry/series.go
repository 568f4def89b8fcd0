package telemetry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// ErrorSeries limits.
const (
	// DefaultSeriesWindow is ErrorSeries' range when the filter has no
	// start.
	DefaultSeriesWindow = time.Hour
	// MaxSeriesRange bounds an ErrorSeries range: the aggregates keep a
	// day by default, and a day of minutes is 1440 buckets per class.
	MaxSeriesRange = 24 * time.Hour
)

// SeriesRange resolves an ErrorSeries request's range and step the way the
// Server does, so that replicas asked by a fan-out (package fanout) all
// answer for the same buckets: start is the filter's start (default
// DefaultSeriesWindow before the end) rounded down to a whole minute, end
// the filter's end (default now), step a whole number of minutes (default
// one). Every invalid field is named (InvalidArgument with BadRequest).
func SeriesRange(req *wsfleetv1.ErrorSeriesRequest, now time.Time) (start, end time.Time, step time.Duration, err error) {
	f := req.GetFilter()
	vs := validateFilter(f, true)
	end = now
	if e := f.GetEndTime(); e != nil && e.CheckValid() == nil {
		end = e.AsTime()
	}
	start = end.Add(-DefaultSeriesWindow)
	if s := f.GetStartTime(); s != nil && s.CheckValid() == nil {
		start = s.AsTime()
	}
	switch {
	case start.After(end) && f.GetEndTime() == nil:
		// validateFilter compares the two when both are given; a start
		// after the default end (now) would answer one bucket in the
		// future.
		vs = append(vs, violation("filter.start_time", "is after the end (now)"))
	case end.Sub(start) > MaxSeriesRange:
		vs = append(vs, violation("filter.start_time", fmt.Sprintf("range %v is over %v", end.Sub(start).Round(time.Second), MaxSeriesRange)))
	}
	step = time.Minute
	if d := req.GetStep(); d != nil {
		switch err := d.CheckValid(); {
		case err != nil:
			vs = append(vs, violation("step", "invalid duration"))
		case d.AsDuration() == 0:
		case d.AsDuration() < 0 || d.AsDuration()%time.Minute != 0:
			vs = append(vs, violation("step", fmt.Sprintf("%v is not a whole number of minutes", d.AsDuration())))
		case d.AsDuration() > MaxSeriesRange:
			vs = append(vs, violation("step", fmt.Sprintf("%v is over %v", d.AsDuration(), MaxSeriesRange)))
		default:
			step = d.AsDuration()
		}
	}
	if err := badRequest(vs); err != nil {
		return time.Time{}, time.Time{}, 0, err
	}
	return start.Truncate(time.Minute), end, step, nil
}

// Series counts the events matching f per class in buckets of step from
// start (a minute boundary) up to end, from the per-minute aggregates
// (every field of f but the time range and trace id applies). Each count
// is exact: an event counts max(1, repeat) times. folded is the events of
// the range whose origin or key the aggregates' bounds folded into
// "(other)", whatever f says: with a pool, node or origin filter they may
// be missing from the counts. Like Top, it holds the lock for one minute
// at a time.
func (s *Store) Series(f *wsfleetv1.EventFilter, start, end time.Time, step time.Duration) *wsfleetv1.ErrorSeriesResponse {
	stepMinutes := int64(step / time.Minute)
	first := unixMinute(timeNanos(start))
	buckets := int64(1)
	if end.After(start) {
		buckets = (int64(end.Sub(start)) + int64(step) - 1) / int64(step)
	}
	resp := &wsfleetv1.ErrorSeriesResponse{
		// From start itself: first is clamped to the years an int64 of
		// nanoseconds spans (1678-2262), a range asked for may lie beyond.
		StartTime: timestamppb.New(start.Truncate(time.Minute)),
		Step:      durationpb.New(step),
		Buckets:   int32(buckets),
	}

	g := &wsfleetv1.EventFilter{}
	if f != nil {
		g = proto.Clone(f).(*wsfleetv1.EventFilter)
	}
	g.StartTime, g.EndTime = timestamppb.New(start), timestamppb.New(end)
	m := compile(g, true)
	nowMinute := unixMinute(s.cfg.Now().UnixNano())
	s.mu.Lock()
	s.agg.prune(nowMinute)
	minutes := s.agg.inRange(m, nowMinute)
	s.mu.Unlock()

	counts := map[wsfleetv1.ErrorClass][]int64{}
	for _, ma := range minutes {
		b := (ma.minute - first) / stepMinutes
		if b < 0 || b >= buckets {
			continue
		}
		s.mu.Lock()
		resp.Folded += ma.folded
		for k, n := range ma.counts {
			if !m.key(k) {
				continue
			}
			c := counts[k.class]
			if c == nil {
				c = make([]int64, buckets)
				counts[k.class] = c
			}
			c[b] += n
		}
		s.mu.Unlock()
	}
	resp.Series = seriesOf(counts)
	return resp
}

// seriesOf lists the per-class counts by class number.
func seriesOf(counts map[wsfleetv1.ErrorClass][]int64) []*wsfleetv1.ErrorSeriesResponse_Series {
	out := make([]*wsfleetv1.ErrorSeriesResponse_Series, 0, len(counts))
	for c, n := range counts {
		out = append(out, &wsfleetv1.ErrorSeriesResponse_Series{Class: c, Counts: n})
	}
	SortSeries(out)
	return out
}

// SortSeries orders series by class number, as ErrorSeriesResponse lists
// them.
func SortSeries(series []*wsfleetv1.ErrorSeriesResponse_Series) {
	slices.SortFunc(series, func(a, b *wsfleetv1.ErrorSeriesResponse_Series) int {
		return cmp.Compare(a.GetClass(), b.GetClass())
	})
}

// ErrorSeries implements FleetService.ErrorSeries from this replica's
// aggregates; see SeriesRange for the range and Store.Series for the
// counts.
func (srv *Server) ErrorSeries(_ context.Context, req *wsfleetv1.ErrorSeriesRequest) (*wsfleetv1.ErrorSeriesResponse, error) {
	start, end, step, err := SeriesRange(req, srv.now())
	if err != nil {
		return nil, err
	}
	return srv.store.Series(req.GetFilter(), start, end, step), nil
}
