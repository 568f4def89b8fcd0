package telemetry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// huge is a 600 KB string of two-byte runes: a cut anywhere but on a rune
// boundary would leave invalid UTF-8.
var huge = strings.Repeat("é", 300_000)

func TestIngestCapsEveryStringField(t *testing.T) {
	cases := []struct {
		field string
		limit int
		set   func(*wsfleetv1.ErrorEvent, string)
		get   func(*wsfleetv1.ErrorEvent) string
	}{
		{"origin", MaxOriginBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.Origin = s }, (*wsfleetv1.ErrorEvent).GetOrigin},
		{"user_agent", MaxUserAgentBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.UserAgent = s }, (*wsfleetv1.ErrorEvent).GetUserAgent},
		{"error", MaxErrorBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.Error = s }, (*wsfleetv1.ErrorEvent).GetError},
		{"trace_id", MaxTraceIDBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.TraceId = s }, (*wsfleetv1.ErrorEvent).GetTraceId},
		{"conn_id", MaxConnIDBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.ConnId = s }, (*wsfleetv1.ErrorEvent).GetConnId},
		{"node_id", MaxNodeIDBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.NodeId = s }, (*wsfleetv1.ErrorEvent).GetNodeId},
		{"pool", MaxPoolBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.Pool = s }, (*wsfleetv1.ErrorEvent).GetPool},
		{"remote_addr", MaxRemoteBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.RemoteAddr = s }, (*wsfleetv1.ErrorEvent).GetRemoteAddr},
		{"client_url", MaxClientURLBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.ClientUrl = s }, (*wsfleetv1.ErrorEvent).GetClientUrl},
		{"client_detail", MaxClientDetailBytes, func(e *wsfleetv1.ErrorEvent, s string) { e.ClientDetail = s }, (*wsfleetv1.ErrorEvent).GetClientDetail},
	}
	if len(cases) != len(FieldNames()) {
		t.Fatalf("%d cases for %d capped fields", len(cases), len(FieldNames()))
	}
	for _, tc := range cases {
		t.Run("a 600 KB "+tc.field+" is cut on a rune boundary, marked and counted", func(t *testing.T) {
			s := newStore(t, Config{Now: newClock(t0).Now})
			e := ev{id: "x", class: capacity}.proto()
			tc.set(e, huge)
			s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", Pool: "p", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{e}})
			got, _ := s.Query(nil, 0)
			if len(got) != 1 {
				t.Fatalf("%d events", len(got))
			}
			v := tc.get(got[0])
			if len(v) > tc.limit || !strings.HasSuffix(v, clip.Mark) || !utf8.ValidString(v) {
				t.Fatalf("%s is %d bytes (cap %d), marked %v, valid %v", tc.field, len(v), tc.limit, strings.HasSuffix(v, clip.Mark), utf8.ValidString(v))
			}
			for name, n := range s.Stats().Truncated {
				if want := uint64(map[bool]int{true: 1}[name == tc.field]); n != want {
					t.Errorf("Truncated[%s] = %d, want %d", name, n, want)
				}
			}
		})
	}
	t.Run("invalid UTF-8 is replaced, so that the event can be marshalled", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock(t0).Now})
		e := ev{id: "x", class: originRejected, origin: "https://\xffevil.example"}.proto()
		e.UserAgent = "agent\xc3"
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{e}})
		got, _ := s.Query(nil, 0)
		if _, err := proto.Marshal(&wsfleetv1.QueryEventsResponse{Events: got}); err != nil {
			t.Fatalf("the answer does not marshal: %v", err)
		}
		if o := got[0].GetOrigin(); o != "https://\uFFFDevil.example" {
			t.Fatalf("origin %q", o)
		}
		if tr := s.Stats().Truncated; tr["origin"] != 1 || tr["user_agent"] != 1 {
			t.Fatalf("truncated %v", tr)
		}
	})
	t.Run("unknown fields are not kept", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock(t0).Now})
		e := ev{id: "x", class: capacity}.proto()
		var unknown []byte
		unknown = protowire.AppendTag(unknown, 999, protowire.BytesType)
		unknown = protowire.AppendBytes(unknown, make([]byte, 1<<20))
		e.ProtoReflect().SetUnknown(unknown)
		e.Time.ProtoReflect().SetUnknown(unknown)
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{e}})
		got, _ := s.Query(nil, 0)
		if n := proto.Size(got[0]); n > 1024 {
			t.Fatalf("the stored event is %d bytes", n)
		}
	})
	t.Run("strings within their caps are kept as they are", func(t *testing.T) {
		s := newStore(t, Config{Now: newClock(t0).Now})
		e := ev{id: "c-1", class: originRejected, origin: strings.Repeat("o", MaxOriginBytes), trace: "t-1"}.proto()
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{e}})
		got, _ := s.Query(nil, 0)
		if got[0].GetOrigin() != strings.Repeat("o", MaxOriginBytes) || got[0].GetTraceId() != "t-1" {
			t.Fatalf("event changed: %v", got[0])
		}
		for name, n := range s.Stats().Truncated {
			if n != 0 {
				t.Errorf("Truncated[%s] = %d", name, n)
			}
		}
	})
}

// bigEvents makes n events whose strings are all far over their caps, with
// conn ids c0..c(n-1).
func bigEvents(n int) []*wsfleetv1.ErrorEvent {
	out := make([]*wsfleetv1.ErrorEvent, n)
	for i := range out {
		e := ev{id: fmt.Sprintf("c%d", i), class: originRejected, trace: fmt.Sprintf("t%d", i)}.proto()
		e.Origin, e.UserAgent, e.Error, e.RemoteAddr = huge, huge, huge, huge
		out[i] = e
	}
	return out
}

func TestRawRingIsBoundedInBytes(t *testing.T) {
	s := newStore(t, Config{MaxRaw: 100_000, MaxRawBytes: MinMaxRawBytes, Now: newClock(t0.Add(time.Hour)).Now})
	const n = 2000
	events := bigEvents(n)
	for i := 0; i < n; i += 100 {
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: uint64(i/100 + 1), Events: events[i : i+100]})
	}
	st := s.Stats()
	if st.RawBytes > MinMaxRawBytes || st.RawBytesCapacity != MinMaxRawBytes {
		t.Fatalf("ring holds %d bytes, bound %d", st.RawBytes, st.RawBytesCapacity)
	}
	// Each capped event is estimated at about 2.5 KB: the bound, not the
	// count, decides how many stay.
	if st.RawEvents < 100 || st.RawEvents >= n || st.RawEvicted != uint64(n-st.RawEvents) || st.Events != n {
		t.Fatalf("stats = %+v", st)
	}
	got, truncated := s.Query(nil, 0)
	if len(got) != st.RawEvents || !truncated || got[0].GetConnId() != fmt.Sprintf("c%d", n-1) {
		t.Fatalf("query: %d events, truncated %v, newest %s", len(got), truncated, got[0].GetConnId())
	}
	// The oldest are gone from the ring, not from the counts.
	if got, _ := s.Query(&wsfleetv1.EventFilter{TraceId: "t0"}, 0); len(got) != 0 {
		t.Fatalf("oldest event still held")
	}
	if top := s.Top(nil, byClass, 0); top.GetTotal() != n {
		t.Fatalf("counted %d", top.GetTotal())
	}
}

func TestDuplicateTableIsBoundedInBytes(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("reporter-%03d", i) } // 12 bytes
	d := newDedup(1000, 10*(12+reporterOverhead))
	for i := range 20 {
		if !d.fresh(id(i), 1) {
			t.Fatalf("%s seen before", id(i))
		}
	}
	if d.len() != 10 || d.evicted != 10 || d.bytes != 10*(12+reporterOverhead) {
		t.Fatalf("%d kept, %d evicted, %d bytes", d.len(), d.evicted, d.bytes)
	}
	// The least recently seen went first.
	if d.fresh(id(19), 1) || !d.fresh(id(0), 1) {
		t.Fatal("wrong reporters evicted")
	}
}

func TestTopCountsAnEventRepeatTimes(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	folded := func(origin string, repeat uint32) *wsfleetv1.ErrorEvent {
		e := ev{at: time.Minute, class: originRejected, origin: origin}.proto()
		e.Repeat = repeat
		return e
	}
	s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "node-a", Pool: "blue", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{
		folded("https://evil.example", 0), // the first of a fold, sent at once
		folded("https://evil.example", 2999),
		folded("https://other.example", 1),
		ev{at: time.Minute, class: capacity, origin: "https://app.example"}.proto(),
	}})
	const or = "ERROR_CLASS_ORIGIN_REJECTED"
	cases := []struct {
		name  string
		by    wsfleetv1.TopErrorsRequest_GroupBy
		want  []string
		total int64
	}{
		{"by class", byClass, []string{"origin_rejected=3001/" + or, "capacity=1/ERROR_CLASS_CAPACITY"}, 3002},
		{"by origin", byOrigin, []string{"https://evil.example=3000/" + or, "https://app.example=1/ERROR_CLASS_CAPACITY", "https://other.example=1/" + or}, 3002},
		{"by node", byNode, []string{"node-a=3002/" + or}, 3002},
	}
	for _, tc := range cases {
		t.Run(tc.name+" counts each event max(1, repeat) times", func(t *testing.T) {
			resp := s.Top(nil, tc.by, 0)
			if got := groups(resp); !equal(got, tc.want) || resp.GetTotal() != tc.total {
				t.Fatalf("got %v total %d, want %v total %d", got, resp.GetTotal(), tc.want, tc.total)
			}
		})
	}
	if st := s.Stats(); st.Events != 4 {
		t.Fatalf("%d events ingested, want 4", st.Events)
	}
}

func TestAggregatesAreBoundedInBytes(t *testing.T) {
	clock := newClock(t0.Add(30 * time.Second))
	const budget = 16 << 10
	logger, logs := logtest.NewNullLogger()
	s := newStore(t, Config{Retention: time.Minute, MaxAggregateBytes: budget, Now: clock.Now, Log: logger})
	var events []ev
	for i := range 200 {
		events = append(events, ev{at: 30 * time.Second, class: originRejected, origin: fmt.Sprintf("https://%s-%d.example", strings.Repeat("o", 100), i)})
	}
	s.Ingest(batch("node-a", "blue", "r", 1, events...))
	st := s.Stats()
	// Over by at most the one origin and key that crossed the bound, plus
	// the minute's catch-all key.
	if limit := budget + MaxOriginBytes + originBytes + 2*keyBytes; st.AggregateBytes > limit {
		t.Fatalf("aggregates hold %d bytes, bound %d", st.AggregateBytes, limit)
	}
	if st.OverBudget == 0 || st.OtherOrigins == 0 {
		t.Fatalf("stats = %+v", st)
	}
	if n := len(logs.AllEntries()); n != 1 {
		t.Fatalf("%d warnings, want one", n)
	}
	// Totals stay exact; what did not fit is "(other)".
	resp := s.Top(nil, byOrigin, 0)
	if resp.GetTotal() != 200 || resp.GetGroups()[0].GetKey() != OtherOrigin {
		t.Fatalf("total %d, largest group %v", resp.GetTotal(), resp.GetGroups()[0])
	}

	// Once the minute expires its bytes are free again.
	clock.Set(t0.Add(3 * time.Minute))
	s.Ingest(batch("node-a", "blue", "r", 2, ev{at: 3 * time.Minute, class: capacity, origin: "https://late.example"}))
	resp = s.Top(&wsfleetv1.EventFilter{StartTime: ts(3 * time.Minute)}, byOrigin, 0)
	if got := groups(resp); !equal(got, []string{"https://late.example=1/ERROR_CLASS_CAPACITY"}) {
		t.Fatalf("after expiry: %v", got)
	}
	if st := s.Stats(); st.AggregateBytes > 2*minuteBytes+budget/4 {
		t.Fatalf("%d bytes after expiry", st.AggregateBytes)
	}
}

func TestTailsAreCapped(t *testing.T) {
	s := newStore(t, Config{MaxTails: 2, Now: newClock(t0).Now})
	a := subscribe(t, s, nil, 1)
	subscribe(t, s, nil, 1)
	if _, err := s.Subscribe(nil, 1); !errors.Is(err, ErrTooManyTails) {
		t.Fatalf("third tail: %v", err)
	}
	// A dropped tail still holds its slot until it is cancelled.
	s.Ingest(batch("n", "p", "r", 1, ev{id: "1"}, ev{id: "2"}))
	if !a.Dropped() {
		t.Fatal("tail not dropped")
	}
	if _, err := s.Subscribe(nil, 1); !errors.Is(err, ErrTooManyTails) {
		t.Fatalf("tail after a drop: %v", err)
	}
	a.Cancel()
	subscribe(t, s, nil, 1)
}

func TestSlowTailsAreDroppedWithoutHoldingUpIngest(t *testing.T) {
	s := newStore(t, Config{MaxTails: 101, TailBuffer: 64, Now: newClock(t0).Now})
	var slow []*Tail
	for range 100 {
		slow = append(slow, subscribe(t, s, nil, 0))
	}
	fast := subscribe(t, s, nil, 0)
	got := make(chan int)
	go func() {
		n := 0
		for range fast.C {
			n++
		}
		got <- n
	}()

	const batches, perBatch = 200, 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= batches; i++ {
			evs := make([]ev, perBatch)
			s.Ingest(batch("n", "p", "r", uint64(i), evs...))
			// Paced by the fast tail's reader, so only the slow ones fall
			// behind: wait until it has taken this batch.
			deadline := time.Now().Add(10 * time.Second)
			for len(fast.C) > 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ingest held up by tails that do not read")
	}
	for i, tail := range slow {
		if n := len(drain(tail.C)); n != 64 || !tail.Dropped() {
			t.Fatalf("slow tail %d: %d buffered, dropped %v", i, n, tail.Dropped())
		}
	}
	fast.Cancel()
	if n := <-got; n != batches*perBatch || fast.Dropped() {
		t.Fatalf("fast tail got %d of %d, dropped %v", n, batches*perBatch, fast.Dropped())
	}
	if st := s.Stats(); st.TailsDropped != 100 {
		t.Fatalf("%d tails dropped", st.TailsDropped)
	}
}

func TestTailEventsBeyondMaxTailsIsResourceExhausted(t *testing.T) {
	s := newStore(t, Config{MaxTails: 1, Now: newClock(t0).Now})
	f := serve(t, s)
	ctx := testContext(t)
	first, err := f.fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().TailSubscribers == 1 })
	s.Ingest(batch("n", "p", "r", 1, ev{id: "x"}))
	if resp, err := first.Recv(); err != nil || resp.GetEvent().GetConnId() != "x" {
		t.Fatalf("first tail: %v %v", resp, err)
	}
	second, err := f.fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many live tails") {
		t.Fatalf("second tail: %v", err)
	}
}

func TestTailEventsEndsADroppedTailWithResourceExhausted(t *testing.T) {
	s := newStore(t, Config{TailBuffer: 4, Now: newClock(t0).Now})
	f := serve(t, s)
	ctx := testContext(t)
	// Fixed flow-control windows: gRPC's dynamic ones could grow large
	// enough to absorb everything sent below.
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tail, err := wsfleetv1.NewFleetServiceClient(conn).TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the tail is registered, then give it more at once than its
	// buffer holds while its handler is busy sending: events with 8 KB of
	// strings fill the stream's flow-control windows (64 KiB each way)
	// long before 2000 of them are sent.
	waitFor(t, func() bool { return s.Stats().TailSubscribers == 1 })
	for i := range 20 {
		var evs []*wsfleetv1.ErrorEvent
		for j := range 100 {
			e := ev{id: fmt.Sprintf("c%d", i*100+j), class: capacity}.proto()
			e.Error = strings.Repeat("x", MaxErrorBytes)
			e.UserAgent = strings.Repeat("u", MaxUserAgentBytes)
			e.Origin = strings.Repeat("o", MaxOriginBytes)
			evs = append(evs, e)
		}
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: uint64(i + 1), Events: evs})
	}
	if st := s.Stats(); st.TailsDropped != 1 {
		t.Fatalf("%d tails dropped", st.TailsDropped)
	}
	// The client reads what was under way, then learns why it ends.
	n := 0
	for {
		_, err := tail.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "tail dropped") {
				t.Fatalf("after %d events: %v", n, err)
			}
			break
		}
		n++
		if n > 2000 {
			t.Fatal("every event arrived: the tail was not dropped")
		}
	}
	waitFor(t, func() bool { return s.Stats().TailSubscribers == 0 })
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestQueryEventsAnswersFitInAMessage(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(time.Hour)).Now})
	const n = 3000 // about 2.5 KB each once capped: 7 MB in all
	events := bigEvents(n)
	for i := 0; i < n; i += 500 {
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "n", ReporterId: "r", Sequence: uint64(i/500 + 1), Events: events[i : i+500]})
	}
	f := serve(t, s)
	// The fixture's client takes gRPC's default 4 MiB at most.
	resp, err := f.fleet.QueryEvents(testContext(t), &wsfleetv1.QueryEventsRequest{Limit: MaxQueryLimit})
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(resp); size > MaxQueryBytes || len(resp.GetEvents()) < 500 || !resp.GetTruncated() {
		t.Fatalf("%d events in %d bytes, truncated %v", len(resp.GetEvents()), size, resp.GetTruncated())
	}
	if got := resp.GetEvents()[0].GetConnId(); got != fmt.Sprintf("c%d", n-1) {
		t.Fatalf("the newest event is %s", got)
	}
}
