package telemetry

import (
	"context"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// farFuture is past the year 2262, where a time's Unix nanoseconds no
// longer fit an int64: a user who means "until whenever" types it.
var farFuture = timestamppb.New(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))

func TestAFilterEndingFarInTheFutureStillFindsTheEvents(t *testing.T) {
	clock := newClock(t0.Add(10 * time.Minute))
	srv := NewServer(newStore(t, Config{Now: clock.Now}), nil)
	srv.store.Ingest(batch("node-a", "default", "ra", 1,
		ev{id: "c1", at: time.Minute, class: originRejected, origin: "https://a.example"},
	))
	f := &wsfleetv1.EventFilter{StartTime: ts(0), EndTime: farFuture}
	t.Run("QueryEvents", func(t *testing.T) {
		resp, err := srv.QueryEvents(context.Background(), &wsfleetv1.QueryEventsRequest{Filter: f})
		if err != nil || len(resp.GetEvents()) != 1 {
			t.Fatalf("%v, %v: want the one event", resp.GetEvents(), err)
		}
	})
	t.Run("TopErrors", func(t *testing.T) {
		resp, err := srv.TopErrors(context.Background(), &wsfleetv1.TopErrorsRequest{Filter: f, GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN})
		if err != nil || len(resp.GetGroups()) != 1 || resp.GetGroups()[0].GetCount() != 1 {
			t.Fatalf("%v, %v: want one group of one", resp.GetGroups(), err)
		}
	})
	t.Run("a start far in the past", func(t *testing.T) {
		past := &wsfleetv1.EventFilter{StartTime: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: farFuture}
		resp, err := srv.QueryEvents(context.Background(), &wsfleetv1.QueryEventsRequest{Filter: past})
		if err != nil || len(resp.GetEvents()) != 1 {
			t.Fatalf("%v, %v: want the one event", resp.GetEvents(), err)
		}
	})
}

func TestAnErrorSeriesFarFromNowIsEmptyAndWellFormed(t *testing.T) {
	clock := newClock(t0.Add(10 * time.Minute))
	srv := NewServer(newStore(t, Config{Now: clock.Now}), nil)
	srv.store.Ingest(batch("node-a", "default", "ra", 1,
		ev{id: "c1", at: time.Minute, class: originRejected, origin: "https://a.example"},
	))
	end := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	resp, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{
		Filter: &wsfleetv1.EventFilter{StartTime: timestamppb.New(end.Add(-time.Hour)), EndTime: timestamppb.New(end)},
		Step:   durationpb.New(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSeries()) != 0 || resp.GetBuckets() != 60 || !resp.GetStartTime().AsTime().Equal(end.Add(-time.Hour)) {
		t.Fatalf("series %v, %d buckets from %v: want none, 60 from %v", resp.GetSeries(), resp.GetBuckets(), resp.GetStartTime().AsTime(), end.Add(-time.Hour))
	}
}

func TestTrafficCountsSaturateInsteadOfWrapping(t *testing.T) {
	clock := newClock(t0.Add(10 * time.Minute))
	s := newStore(t, Config{Now: clock.Now})
	huge := func(seq uint64, node string) *wsfleetv1.ReportTelemetryRequest {
		smp := sampleAt(time.Minute, "default", [5]uint32{math.MaxUint32, math.MaxUint32, 1, 1, 1})
		smp.Accepted = []*wsfleetv1.OriginCount{{Origin: "https://a.example", Count: math.MaxUint64}}
		smp.AcceptedOther = math.MaxUint64
		return trafficBatch(node, "default", seq, smp)
	}
	// Two nodes (or one hostile one) whose counts add up past 2^64: a
	// wrapped sum would tell a dry run the origin saw almost nothing.
	s.Ingest(huge(1, "n1"))
	s.Ingest(huge(1, "n2"))
	s.Ingest(trafficBatch("n3", "default", 1, sampleAt(2*time.Minute, "default", [5]uint32{1}, "https://a.example", 5)))
	r := s.TrafficSummary("default", t0, t0.Add(10*time.Minute))
	if got := acceptedMap(r)["https://a.example"]; got != math.MaxUint64 {
		t.Fatalf("accepted %d, want the saturated %d", got, uint64(math.MaxUint64))
	}
	if r.GetAcceptedOther() <= 0 {
		t.Fatalf("accepted_other %d, want a large positive count", r.GetAcceptedOther())
	}
	if p := peakOf(r, MeasureConnections); p.GetValue() != math.MaxUint32 {
		t.Fatalf("peak %v", p)
	}
}

func TestATrafficSummaryCoversOnlyWhatTheControlPlaneSaw(t *testing.T) {
	// The control plane (re)started 30 minutes after t0: traffic is kept
	// in memory, so the hour before is unknown, not empty.
	clock := newClock(t0.Add(30 * time.Minute))
	s := newStore(t, Config{Now: clock.Now})
	clock.Set(t0.Add(40 * time.Minute))
	t.Run("without samples it starts when the table began", func(t *testing.T) {
		r := s.TrafficSummary("default", t0.Add(-20*time.Minute), t0.Add(40*time.Minute))
		if !r.GetStartTime().AsTime().Equal(t0.Add(30*time.Minute)) || r.GetNodesReporting() != 0 {
			t.Fatalf("covered from %v with %d nodes: want from +30m with none", r.GetStartTime().AsTime(), r.GetNodesReporting())
		}
	})
	t.Run("a sample a node kept from before the start extends it", func(t *testing.T) {
		s.Ingest(trafficBatch("n1", "default", 1, sampleAt(5*time.Minute, "default", [5]uint32{1}, "https://a.example", 1)))
		r := s.TrafficSummary("default", t0.Add(-20*time.Minute), t0.Add(40*time.Minute))
		if !r.GetStartTime().AsTime().Equal(t0.Add(5 * time.Minute)) {
			t.Fatalf("covered from %v, want +5m", r.GetStartTime().AsTime())
		}
	})
	t.Run("a range wholly before the start covers nothing", func(t *testing.T) {
		r := s.TrafficSummary("default", t0.Add(-20*time.Minute), t0)
		if !r.GetStartTime().AsTime().Equal(t0) {
			t.Fatalf("covered from %v, want the end %v", r.GetStartTime().AsTime(), t0)
		}
	})
	t.Run("a range the table covers whole starts at its first whole minute", func(t *testing.T) {
		r := s.TrafficSummary("default", t0.Add(30*time.Minute+time.Second), t0.Add(40*time.Minute))
		if !r.GetStartTime().AsTime().Equal(t0.Add(31 * time.Minute)) {
			t.Fatalf("covered from %v, want +31m", r.GetStartTime().AsTime())
		}
	})
}

// A node restarted mid-minute reports that minute twice, from two
// processes (two reporter ids, each starting at sequence 1): both count,
// neither is taken for the other's duplicate.
func TestANodeRestartedMidMinuteCountsBothProcesses(t *testing.T) {
	clock := newClock(t0.Add(5 * time.Minute))
	s := newStore(t, Config{Now: clock.Now})
	before := trafficBatch("n1", "default", 1, sampleAt(time.Minute, "default", [5]uint32{4}, "https://a.example", 3))
	before.ReporterId = "process-1"
	after := trafficBatch("n1", "default", 1, sampleAt(time.Minute+30*time.Second, "default", [5]uint32{2}, "https://a.example", 2))
	after.ReporterId = "process-2"
	if !s.Ingest(before) || !s.Ingest(after) {
		t.Fatal("the restarted process's first batch was taken for a duplicate")
	}
	s.Ingest(after) // its resend is one
	r := s.TrafficSummary("default", t0, t0.Add(5*time.Minute))
	if got := acceptedMap(r)["https://a.example"]; got != 5 || r.GetNodesReporting() != 1 || peakOf(r, MeasureConnections).GetValue() != 4 {
		t.Fatalf("accepted %d, %d nodes, peak %v: want 5, 1 node, 4", got, r.GetNodesReporting(), peakOf(r, MeasureConnections))
	}
}

func TestTrafficIsTheCredentialsNodesOwn(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(5 * time.Minute)).Now})
	f := serve(t, s)
	ctx := metadata.AppendToOutgoingContext(testContext(t), nodesKey, "na", poolsKey, "default")
	stream, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Traffic only, no events: the batch's node is still checked.
	if err := stream.Send(trafficBatch("nb", "default", 1, sampleAt(time.Minute, "default", [5]uint32{1}, "https://a.example", 1000))); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
	if st := s.Stats(); st.TrafficSamples != 0 {
		t.Fatalf("a refused batch's samples were counted: %+v", st)
	}
}

func TestErrorSeriesRefusesAStartAfterItsEnd(t *testing.T) {
	srv := NewServer(newStore(t, Config{Now: newClock(t0).Now}), nil)
	for _, tc := range []struct {
		name string
		f    *wsfleetv1.EventFilter
	}{
		{"a start in the future without an end (now)", &wsfleetv1.EventFilter{StartTime: timestamppb.New(t0.Add(time.Hour))}},
		{"a start after the end", &wsfleetv1.EventFilter{StartTime: timestamppb.New(t0), EndTime: timestamppb.New(t0.Add(-time.Minute))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{Filter: tc.f})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
	t.Run("a step longer than the range is one bucket", func(t *testing.T) {
		resp, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{Step: durationpb.New(24 * time.Hour)})
		if err != nil || resp.GetBuckets() != 1 {
			t.Fatalf("%v, %v", resp, err)
		}
	})
	t.Run("a whole day of minutes is 1440 buckets", func(t *testing.T) {
		resp, err := srv.ErrorSeries(context.Background(), &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{
			StartTime: timestamppb.New(t0.Add(-24 * time.Hour)), EndTime: timestamppb.New(t0),
		}})
		if err != nil || resp.GetBuckets() != 1440 {
			t.Fatalf("%d buckets, %v", resp.GetBuckets(), err)
		}
	})
}
