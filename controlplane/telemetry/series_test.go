package telemetry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// seriesText renders a response's series as "class=c0,c1,..." by class.
func seriesText(resp *wsfleetv1.ErrorSeriesResponse) []string {
	var out []string
	for _, s := range resp.GetSeries() {
		out = append(out, fmt.Sprintf("%s=%v", errclass.Name(s.GetClass()), s.GetCounts()))
	}
	return out
}

func TestErrorSeries(t *testing.T) {
	clock := newClock(t0.Add(10 * time.Minute))
	s := newStore(t, Config{Now: clock.Now})
	srv := NewServer(s, nil)
	repeated := ev{at: 30 * time.Second, class: originRejected, origin: "https://a.example"}.proto()
	repeated.Repeat = 40 // a node folded 40 rejections into one event
	req := batch("node-a", "blue", "ra", 1,
		ev{at: 10 * time.Second, class: originRejected, origin: "https://b.example"},
		ev{at: 70 * time.Second, class: capacity, origin: "https://a.example"},
		ev{at: 130 * time.Second, class: normal, origin: "https://a.example"},
	)
	req.Events = append(req.Events, repeated)
	s.Ingest(req)
	s.Ingest(batch("node-b", "green", "rb", 1,
		ev{at: 200 * time.Second, class: heartbeat, origin: "https://a.example"},
	))

	first := timestamppb.New(t0)
	cases := []struct {
		name string
		f    *wsfleetv1.EventFilter
		step time.Duration
		want []string
	}{
		{"every class per minute, repeats counted exactly", nil, time.Minute, []string{
			"origin_rejected=[41 0 0 0]", "capacity=[0 1 0 0]", "heartbeat_timeout=[0 0 0 1]", "normal=[0 0 1 0]",
		}},
		{"two-minute steps add up their minutes", nil, 2 * time.Minute, []string{
			"origin_rejected=[41 0]", "capacity=[1 0]", "heartbeat_timeout=[0 1]", "normal=[0 1]",
		}},
		{"errors only leaves out normal closes", &wsfleetv1.EventFilter{ErrorsOnly: true}, time.Minute, []string{
			"origin_rejected=[41 0 0 0]", "capacity=[0 1 0 0]", "heartbeat_timeout=[0 0 0 1]",
		}},
		{"a pool filter keeps that pool's nodes", &wsfleetv1.EventFilter{Pool: "green"}, time.Minute, []string{
			"heartbeat_timeout=[0 0 0 1]",
		}},
		{"a node filter keeps that node", &wsfleetv1.EventFilter{NodeId: "node-a", Classes: []wsfleetv1.ErrorClass{capacity}}, time.Minute, []string{
			"capacity=[0 1 0 0]",
		}},
		{"an origin filter keeps that origin", &wsfleetv1.EventFilter{Origin: "https://b.example"}, time.Minute, []string{
			"origin_rejected=[1 0 0 0]",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &wsfleetv1.EventFilter{}
			if tc.f != nil {
				f = tc.f
			}
			f.StartTime, f.EndTime = first, timestamppb.New(t0.Add(4*time.Minute))
			resp, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{Filter: f, Step: durationpb.New(tc.step)})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(seriesText(resp)); got != fmt.Sprint(tc.want) {
				t.Fatalf("series %v, want %v", got, tc.want)
			}
			if !resp.GetStartTime().AsTime().Equal(t0) || resp.GetStep().AsDuration() != tc.step || resp.GetFolded() != 0 {
				t.Fatalf("start %v step %v folded %d", resp.GetStartTime().AsTime(), resp.GetStep().AsDuration(), resp.GetFolded())
			}
		})
	}

	t.Run("without a range it is the last hour, minute-aligned", func(t *testing.T) {
		clock.Set(t0.Add(30*time.Minute + 20*time.Second))
		resp, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(-30 * time.Minute); !resp.GetStartTime().AsTime().Equal(want) || resp.GetBuckets() != 61 {
			t.Fatalf("start %v, %d buckets; want %v, 61", resp.GetStartTime().AsTime(), resp.GetBuckets(), want)
		}
		var sum int64
		for _, s := range resp.GetSeries() {
			for _, n := range s.GetCounts() {
				sum += n
			}
		}
		if sum != 44 {
			t.Fatalf("%d events in the last hour, want 44", sum)
		}
	})
}

func TestErrorSeriesRefusesBadRanges(t *testing.T) {
	srv := NewServer(newStore(t, Config{Now: newClock(t0).Now}), nil)
	cases := []struct {
		name  string
		req   *wsfleetv1.ErrorSeriesRequest
		field string
	}{
		{"a step that is not whole minutes", &wsfleetv1.ErrorSeriesRequest{Step: durationpb.New(90 * time.Second)}, "step"},
		{"a negative step", &wsfleetv1.ErrorSeriesRequest{Step: durationpb.New(-time.Minute)}, "step"},
		{"a range over 24 hours", &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{
			StartTime: timestamppb.New(t0.Add(-25 * time.Hour)), EndTime: timestamppb.New(t0),
		}}, "filter.start_time"},
		{"an unknown class", &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{999}}}, "filter.classes[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.ErrorSeries(context.Background(), tc.req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() == tc.field {
					return
				}
			}
			t.Fatalf("no violation of %s in %v", tc.field, st.Details())
		})
	}
}

func TestErrorSeriesCountsWhatTheBoundsFolded(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(5 * time.Minute)).Now, MaxOriginsPerMinute: 2, MaxKeysPerMinute: 3})
	var evs []ev
	for i := range 5 {
		evs = append(evs, ev{at: time.Second, class: originRejected, origin: fmt.Sprintf("https://%d.example", i)})
	}
	// Minute 2: origins fit, but more (node, class) keys than three.
	for i, c := range []wsfleetv1.ErrorClass{originRejected, capacity, heartbeat, normal, goingAway} {
		evs = append(evs, ev{at: 2*time.Minute + time.Second, class: c, origin: "https://a.example", node: fmt.Sprint("n", i)})
	}
	s.Ingest(batch("node-a", "blue", "ra", 1, evs...))

	f := &wsfleetv1.EventFilter{StartTime: timestamppb.New(t0), EndTime: timestamppb.New(t0.Add(3 * time.Minute))}
	resp := s.Series(f, t0, t0.Add(3*time.Minute), time.Minute)
	// Three origins over the bound in minute 0, two keys over it in
	// minute 2; the totals stay exact.
	if resp.GetFolded() != 5 {
		t.Fatalf("folded %d, want 5", resp.GetFolded())
	}
	want := []string{"origin_rejected=[5 0 1]", "capacity=[0 0 1]", "heartbeat_timeout=[0 0 1]", "client_going_away=[0 0 1]", "normal=[0 0 1]"}
	if got := fmt.Sprint(seriesText(resp)); got != fmt.Sprint(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	// Filtered by an origin, the folded events are missing; folded says so.
	f.Origin = "https://4.example"
	if resp := s.Series(f, t0, t0.Add(3*time.Minute), time.Minute); len(resp.GetSeries()) != 0 || resp.GetFolded() != 5 {
		t.Fatalf("origin filter: %v, folded %d", seriesText(resp), resp.GetFolded())
	}
}
