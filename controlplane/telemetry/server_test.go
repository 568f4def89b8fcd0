package telemetry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// nodeService and fleetService register the Server's methods the way the
// control plane does.
type nodeService struct {
	wsfleetv1.UnimplementedNodeServiceServer
	srv *Server
}

func (n nodeService) ReportTelemetry(stream wsfleetv1.NodeService_ReportTelemetryServer) error {
	return n.srv.ReportTelemetry(stream)
}

type fleetService struct {
	wsfleetv1.UnimplementedFleetServiceServer
	srv *Server
}

func (f fleetService) QueryEvents(ctx context.Context, req *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	return f.srv.QueryEvents(ctx, req)
}

func (f fleetService) TopErrors(ctx context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	return f.srv.TopErrors(ctx, req)
}

func (f fleetService) TailEvents(req *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	return f.srv.TailEvents(req, stream)
}

type grpcFixture struct {
	store *Store
	srv   *Server
	addr  string
	node  wsfleetv1.NodeServiceClient
	fleet wsfleetv1.FleetServiceClient
}

// serve runs a Server on s over a real gRPC server on loopback.
func serve(t testing.TB, s *Store) *grpcFixture {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := logtest.NewNullLogger()
	srv := NewServer(s, logger)
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.StreamInterceptor(withTestIdentity))
	wsfleetv1.RegisterNodeServiceServer(gs, nodeService{srv: srv})
	wsfleetv1.RegisterFleetServiceServer(gs, fleetService{srv: srv})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Shutdown()
		gs.GracefulStop()
		<-served
	})
	return &grpcFixture{store: s, srv: srv, addr: lis.Addr().String(), node: wsfleetv1.NewNodeServiceClient(conn), fleet: wsfleetv1.NewFleetServiceClient(conn)}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// badRequestFields asserts err is InvalidArgument with a BadRequest and
// returns the fields it names.
func badRequestFields(t *testing.T, err error) []string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if len(fields) == 0 {
		t.Fatalf("no BadRequest field violations in %v", err)
	}
	return fields
}

func TestReportTelemetryAcksEveryBatch(t *testing.T) {
	var mu sync.Mutex
	perNode := map[string]int{}
	var dropped uint64
	s := newStore(t, Config{Now: newClock(t0).Now, OnBatch: func(node string, events int, d uint64) {
		mu.Lock()
		perNode[node] += events
		dropped += d
		mu.Unlock()
	}})
	f := serve(t, s)
	ctx := testContext(t)

	stream, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		b := batch("node-a", "blue", "rep-1", seq, ev{id: "a", class: capacity}, ev{id: "b", class: heartbeat})
		b.Dropped = 1
		if err := stream.Send(b); err != nil {
			t.Fatal(err)
		}
		ack, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ack.GetAckedSequence() != seq {
			t.Fatalf("ack %d for batch %d", ack.GetAckedSequence(), seq)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v, want EOF", err)
	}

	// A reconnected node resends batch 3 it did not see acked, then goes on.
	again, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{3, 4} {
		if err := again.Send(batch("node-a", "blue", "rep-1", seq, ev{id: "c", class: capacity})); err != nil {
			t.Fatal(err)
		}
		ack, err := again.Recv()
		if err != nil || ack.GetAckedSequence() != seq {
			t.Fatalf("ack %v, %v for resent batch %d", ack, err, seq)
		}
	}
	st := s.Stats()
	if st.Events != 7 || st.Batches != 4 || st.DuplicateBatches != 1 || st.DroppedByNodes != 3 {
		t.Fatalf("stats = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if perNode["node-a"] != 7 || dropped != 3 {
		t.Fatalf("OnBatch saw %v events, %d dropped", perNode, dropped)
	}
}

func TestReportTelemetryRefusesInvalidBatches(t *testing.T) {
	tooMany := batch("node-a", "p", "r", 1)
	for range MaxBatchEvents + 1 {
		tooMany.Events = append(tooMany.Events, ev{class: capacity}.proto())
	}
	cases := []struct {
		name    string
		batches []*wsfleetv1.ReportTelemetryRequest
		field   string
	}{
		{"a batch without node id", []*wsfleetv1.ReportTelemetryRequest{batch("", "p", "r", 1)}, "node_id"},
		{"a batch without reporter id", []*wsfleetv1.ReportTelemetryRequest{batch("node-a", "p", "", 1)}, "reporter_id"},
		{"a batch with sequence 0", []*wsfleetv1.ReportTelemetryRequest{batch("node-a", "p", "r", 0)}, "sequence"},
		{"a batch over the event limit", []*wsfleetv1.ReportTelemetryRequest{tooMany}, "events"},
		{"a node id over its cap", []*wsfleetv1.ReportTelemetryRequest{batch(strings.Repeat("n", MaxNodeIDBytes+1), "p", "r", 1)}, "node_id"},
		{"a pool over its cap", []*wsfleetv1.ReportTelemetryRequest{batch("node-a", strings.Repeat("p", MaxPoolBytes+1), "r", 1)}, "pool"},
		{"a reporter id over its cap", []*wsfleetv1.ReportTelemetryRequest{batch("node-a", "p", strings.Repeat("r", MaxReporterIDBytes+1), 1)}, "reporter_id"},
		{"another node id on the same stream", []*wsfleetv1.ReportTelemetryRequest{
			batch("node-a", "p", "r", 1, ev{class: capacity}), batch("node-b", "p", "r", 2, ev{class: capacity}),
		}, "node_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{Now: newClock(t0).Now})
			f := serve(t, s)
			stream, err := f.node.ReportTelemetry(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, b := range tc.batches {
				if err := stream.Send(b); err != nil {
					break
				}
				if _, last = stream.Recv(); last != nil {
					break
				}
			}
			fields := badRequestFields(t, last)
			if len(fields) != 1 || fields[0] != tc.field {
				t.Fatalf("violations %v, want %s", fields, tc.field)
			}
			if st := s.Stats(); st.Events != uint64(len(tc.batches)-1) {
				t.Fatalf("%d events ingested", st.Events)
			}
		})
	}
}

func TestQueryEventsOverGRPC(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	sixEvents(t, s)
	f := serve(t, s)
	ctx := testContext(t)

	resp, err := f.fleet.QueryEvents(ctx, &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{TraceId: "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(resp.GetEvents()); !equal(got, []string{"e3", "e1"}) || resp.GetTruncated() {
		t.Fatalf("trace abc: %v truncated %v", got, resp.GetTruncated())
	}
	if e := resp.GetEvents()[0]; e.GetNodeId() != "node-b" || e.GetClass() != heartbeat {
		t.Fatalf("event = %v", e)
	}
	resp, err = f.fleet.QueryEvents(ctx, &wsfleetv1.QueryEventsRequest{Limit: 1})
	if err != nil || !equal(ids(resp.GetEvents()), []string{"e6"}) {
		t.Fatalf("limit 1: %v %v", resp, err)
	}

	invalid := []struct {
		name   string
		req    *wsfleetv1.QueryEventsRequest
		fields []string
	}{
		{"an end before the start", &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{StartTime: ts(time.Hour), EndTime: ts(0)}}, []string{"filter.end_time"}},
		{"an unknown class", &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{capacity, 99}}}, []string{"filter.classes[1]"}},
		{"the unspecified class", &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{0}}}, []string{"filter.classes[0]"}},
		{"a negative limit", &wsfleetv1.QueryEventsRequest{Limit: -1}, []string{"limit"}},
		{"invalid timestamps", &wsfleetv1.QueryEventsRequest{Filter: &wsfleetv1.EventFilter{StartTime: &timestamppb.Timestamp{Nanos: -1}, EndTime: &timestamppb.Timestamp{Seconds: 1 << 60}}},
			[]string{"filter.start_time", "filter.end_time"}},
		{"every problem at once", &wsfleetv1.QueryEventsRequest{Limit: -1, Filter: &wsfleetv1.EventFilter{StartTime: ts(time.Hour), EndTime: ts(0), Classes: []wsfleetv1.ErrorClass{99}}},
			[]string{"filter.end_time", "filter.classes[0]", "limit"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name+" is InvalidArgument", func(t *testing.T) {
			_, err := f.fleet.QueryEvents(ctx, tc.req)
			if got := badRequestFields(t, err); !equal(got, tc.fields) {
				t.Fatalf("violations %v, want %v", got, tc.fields)
			}
		})
	}
}

func TestQueryEventsCapsTheLimit(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0).Now})
	req := batch("n", "p", "r", 1)
	for range MaxQueryLimit + 5 {
		req.Events = append(req.Events, ev{class: capacity}.proto())
	}
	s.Ingest(req)
	f := serve(t, s)
	ctx := testContext(t)
	for _, tc := range []struct {
		limit int32
		want  int
	}{{0, DefaultQueryLimit}, {7, 7}, {MaxQueryLimit * 2, MaxQueryLimit}} {
		resp, err := f.fleet.QueryEvents(ctx, &wsfleetv1.QueryEventsRequest{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetEvents()) != tc.want {
			t.Fatalf("limit %d: %d events, want %d", tc.limit, len(resp.GetEvents()), tc.want)
		}
	}
}

func TestTopErrorsOverGRPC(t *testing.T) {
	now := t0.Add(time.Hour)
	s := newStore(t, Config{Now: newClock(now).Now})
	s.Ingest(batch("node-a", "p", "r", 1,
		ev{at: 40 * time.Minute, class: capacity},                    // 20 minutes ago: outside the default window
		ev{at: 55 * time.Minute, class: originRejected, origin: "x"}, // 5 minutes ago
		ev{at: 56 * time.Minute, class: originRejected, origin: "x"},
		ev{at: 57 * time.Minute, class: heartbeat, origin: "y"},
	))
	f := serve(t, s)
	ctx := testContext(t)

	resp, err := f.fleet.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := groups(resp); !equal(got, []string{"origin_rejected=2/ERROR_CLASS_ORIGIN_REJECTED", "heartbeat_timeout=1/ERROR_CLASS_HEARTBEAT_TIMEOUT"}) || resp.GetTotal() != 3 {
		t.Fatalf("default window: %v total %d", got, resp.GetTotal())
	}
	resp, err = f.fleet.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{
		Filter:  &wsfleetv1.EventFilter{StartTime: ts(0)},
		GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN,
		Limit:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := groups(resp); !equal(got, []string{"x=2/ERROR_CLASS_ORIGIN_REJECTED"}) || resp.GetTotal() != 4 {
		t.Fatalf("since t0 by origin: %v total %d", got, resp.GetTotal())
	}
	// Only an end: the default window ends there.
	resp, err = f.fleet.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{Filter: &wsfleetv1.EventFilter{EndTime: ts(45 * time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTotal() != 1 {
		t.Fatalf("15 minutes before the end: total %d", resp.GetTotal())
	}

	invalid := []struct {
		name   string
		req    *wsfleetv1.TopErrorsRequest
		fields []string
	}{
		{"an end before the start", &wsfleetv1.TopErrorsRequest{Filter: &wsfleetv1.EventFilter{StartTime: ts(time.Hour), EndTime: ts(0)}}, []string{"filter.end_time"}},
		{"an unknown class", &wsfleetv1.TopErrorsRequest{Filter: &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{42}}}, []string{"filter.classes[0]"}},
		{"an unknown grouping", &wsfleetv1.TopErrorsRequest{GroupBy: 9}, []string{"group_by"}},
		{"a negative limit", &wsfleetv1.TopErrorsRequest{Limit: -3}, []string{"limit"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name+" is InvalidArgument", func(t *testing.T) {
			_, err := f.fleet.TopErrors(ctx, tc.req)
			if got := badRequestFields(t, err); !equal(got, tc.fields) {
				t.Fatalf("violations %v, want %v", got, tc.fields)
			}
		})
	}
}

func TestTailEventsBacklogThenLive(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(time.Hour)).Now})
	s.Ingest(batch("node-a", "p", "ra", 1,
		ev{id: "old1", at: time.Minute, class: originRejected},
		ev{id: "old2", at: 2 * time.Minute, class: originRejected},
		ev{id: "other", at: 3 * time.Minute, class: normal},
		ev{id: "old3", at: 4 * time.Minute, class: originRejected}))
	f := serve(t, s)
	ctx := testContext(t)
	tail, err := f.fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{
		Filter:  &wsfleetv1.EventFilter{ErrorsOnly: true},
		Backlog: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		resp, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.GetEvent().GetConnId())
	}
	if !equal(got, []string{"old2", "old3"}) {
		t.Fatalf("backlog %v, want oldest first", got)
	}

	// Live events through the node API reach the tail.
	stream, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(batch("node-b", "p", "rb", 1,
		ev{id: "quiet", at: 5 * time.Minute, class: goingAway},
		ev{id: "live", at: 5 * time.Minute, class: capacity})); err != nil {
		t.Fatal(err)
	}
	resp, err := tail.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetEvent(); e.GetConnId() != "live" || e.GetNodeId() != "node-b" {
		t.Fatalf("live event = %v", e)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestTailEventsValidation(t *testing.T) {
	f := serve(t, newStore(t, Config{Now: newClock(t0).Now}))
	cases := []struct {
		name   string
		req    *wsfleetv1.TailEventsRequest
		fields []string
	}{
		{"a negative backlog", &wsfleetv1.TailEventsRequest{Backlog: -1}, []string{"backlog"}},
		{"an unknown class", &wsfleetv1.TailEventsRequest{Filter: &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{77}}}, []string{"filter.classes[0]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is InvalidArgument", func(t *testing.T) {
			tail, err := f.fleet.TailEvents(testContext(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tail.Recv()
			if got := badRequestFields(t, err); !equal(got, tc.fields) {
				t.Fatalf("violations %v, want %v", got, tc.fields)
			}
		})
	}
	t.Run("a time range is ignored, even a reversed one", func(t *testing.T) {
		f.store.Ingest(batch("n", "p", "r", 1, ev{id: "backlog"}))
		tail, err := f.fleet.TailEvents(testContext(t), &wsfleetv1.TailEventsRequest{
			Filter:  &wsfleetv1.EventFilter{StartTime: ts(time.Hour), EndTime: ts(0)},
			Backlog: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		// The backlog arriving means the tail is subscribed.
		if resp, err := tail.Recv(); err != nil || resp.GetEvent().GetConnId() != "backlog" {
			t.Fatalf("backlog: %v %v", resp, err)
		}
		f.store.Ingest(batch("n", "p", "r", 2, ev{id: "live"}))
		if resp, err := tail.Recv(); err != nil || resp.GetEvent().GetConnId() != "live" {
			t.Fatalf("live: %v %v", resp, err)
		}
	})
}

func TestShutdownEndsStreams(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0).Now})
	f := serve(t, s)
	ctx := testContext(t)
	report, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Send(batch("n", "p", "r", 1, ev{id: "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := report.Recv(); err != nil {
		t.Fatal(err)
	}
	s.Ingest(batch("n", "p", "r2", 1, ev{id: "y"}))
	tail, err := f.fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{Backlog: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tail.Recv(); err != nil {
		t.Fatal(err)
	}

	f.srv.Shutdown()
	if _, err := report.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("report stream after shutdown: %v", err)
	}
	if _, err := tail.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("tail after shutdown: %v", err)
	}
	if st := s.Stats(); st.TailSubscribers != 0 {
		t.Fatalf("%d tail subscribers after shutdown", st.TailSubscribers)
	}
	later, err := f.fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := later.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("tail opened after shutdown: %v", err)
	}
}
