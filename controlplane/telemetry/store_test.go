package telemetry

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestNewValidatesConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"a retention under a minute is refused", Config{Retention: 30 * time.Second}},
		{"a negative retention is refused", Config{Retention: -time.Hour}},
		{"a retention over a month is refused", Config{Retention: MaxRetention + time.Minute}},
		{"a negative ring size is refused", Config{MaxRaw: -1}},
		{"a negative origin bound is refused", Config{MaxOriginsPerMinute: -1}},
		{"a negative key bound is refused", Config{MaxKeysPerMinute: -1}},
		{"a negative reporter bound is refused", Config{MaxReporters: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	t.Run("zero values get the defaults", func(t *testing.T) {
		s := newStore(t, Config{})
		if s.cfg.Retention != DefaultRetention || s.cfg.MaxRaw != DefaultMaxRaw || s.cfg.MaxOriginsPerMinute != DefaultMaxOriginsPerMinute ||
			s.cfg.MaxKeysPerMinute != DefaultMaxKeysPerMinute || s.cfg.MaxReporters != DefaultMaxReporters || s.cfg.Now == nil || s.cfg.Log == nil {
			t.Fatalf("config = %+v", s.cfg)
		}
		if st := s.Stats(); st.RawCapacity != DefaultMaxRaw {
			t.Fatalf("raw capacity %d", st.RawCapacity)
		}
	})
}

// sixEvents ingests three batches from three nodes into s.
func sixEvents(t *testing.T, s *Store) {
	t.Helper()
	for _, b := range []*wsfleetv1.ReportTelemetryRequest{
		batch("node-a", "blue", "ra", 1,
			ev{id: "e1", at: 1 * time.Minute, class: originRejected, origin: "https://a.example", trace: "abc"},
			ev{id: "e2", at: 2 * time.Minute, class: normal, origin: "https://b.example", trace: "t2"}),
		batch("node-b", "green", "rb", 1,
			ev{id: "e3", at: 3 * time.Minute, class: heartbeat, origin: "https://a.example", trace: "abc"},
			ev{id: "e4", at: 4 * time.Minute, class: goingAway, trace: "t4"}),
		batch("node-c", "", "rc", 1,
			ev{id: "e5", at: 5 * time.Minute, class: shutdown, origin: "https://b.example", trace: "t5"},
			ev{id: "e6", at: 6 * time.Minute, class: capacity, origin: "https://a.example", trace: "t6"}),
	} {
		if !s.Ingest(b) {
			t.Fatalf("batch of %s not fresh", b.GetNodeId())
		}
	}
}

func TestQueryFilters(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	sixEvents(t, s)
	cases := []struct {
		name  string
		f     *wsfleetv1.EventFilter
		limit int
		want  []string
	}{
		{"no filter returns everything newest first", nil, 0, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{"the limit keeps the newest", nil, 2, []string{"e6", "e5"}},
		{"start time is inclusive", &wsfleetv1.EventFilter{StartTime: ts(3 * time.Minute)}, 0, []string{"e6", "e5", "e4", "e3"}},
		{"end time is exclusive", &wsfleetv1.EventFilter{EndTime: ts(3 * time.Minute)}, 0, []string{"e2", "e1"}},
		{"a time range", &wsfleetv1.EventFilter{StartTime: ts(2 * time.Minute), EndTime: ts(5 * time.Minute)}, 0, []string{"e4", "e3", "e2"}},
		{"classes", &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{originRejected, capacity}}, 0, []string{"e6", "e1"}},
		{"node id", &wsfleetv1.EventFilter{NodeId: "node-b"}, 0, []string{"e4", "e3"}},
		{"pool", &wsfleetv1.EventFilter{Pool: "green"}, 0, []string{"e4", "e3"}},
		{"a batch without pool is in default", &wsfleetv1.EventFilter{Pool: "default"}, 0, []string{"e6", "e5"}},
		{"origin matches exactly", &wsfleetv1.EventFilter{Origin: "https://a.example"}, 0, []string{"e6", "e3", "e1"}},
		{"origin is not a prefix match", &wsfleetv1.EventFilter{Origin: "https://a.exam"}, 0, []string{}},
		{"trace id finds the trace across nodes", &wsfleetv1.EventFilter{TraceId: "abc"}, 0, []string{"e3", "e1"}},
		{"errors only leaves out normal, going away and shutdown", &wsfleetv1.EventFilter{ErrorsOnly: true}, 0, []string{"e6", "e3", "e1"}},
		{"errors only with classes intersects", &wsfleetv1.EventFilter{ErrorsOnly: true, Classes: []wsfleetv1.ErrorClass{normal, capacity}}, 0, []string{"e6"}},
		{"fields combine", &wsfleetv1.EventFilter{NodeId: "node-a", ErrorsOnly: true}, 0, []string{"e1"}},
		{"an unknown node matches nothing", &wsfleetv1.EventFilter{NodeId: "node-z"}, 0, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated := s.Query(tc.f, tc.limit)
			if !equal(ids(got), tc.want) {
				t.Fatalf("got %v, want %v", ids(got), tc.want)
			}
			if truncated {
				t.Fatal("truncated with a ring that never overflowed")
			}
		})
	}
}

func TestQueryOrdersByEventTimeNotArrival(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	s.Ingest(batch("n", "p", "r1", 1, ev{id: "late", at: 5 * time.Minute}))
	s.Ingest(batch("n2", "p", "r2", 1, ev{id: "early", at: 1 * time.Minute}, ev{id: "mid", at: 3 * time.Minute}))
	got, _ := s.Query(nil, 0)
	if want := []string{"late", "mid", "early"}; !equal(ids(got), want) {
		t.Fatalf("got %v, want %v", ids(got), want)
	}
}

func TestIngestFillsNodePoolAndTime(t *testing.T) {
	now := t0.Add(time.Hour)
	s := newStore(t, Config{Now: newClock(now).Now})
	req := batch("node-a", "blue", "r", 1, ev{id: "own", node: "node-x"}, ev{id: "filled"})
	req.Events[1].Time = nil
	req.Events[0].Pool = "red"
	s.Ingest(req)
	got, _ := s.Query(nil, 0)
	byID := map[string]*wsfleetv1.ErrorEvent{}
	for _, e := range got {
		byID[e.GetConnId()] = e
	}
	if e := byID["own"]; e.GetNodeId() != "node-x" || e.GetPool() != "red" {
		t.Fatalf("event with its own node and pool changed: %v", e)
	}
	if e := byID["filled"]; e.GetNodeId() != "node-a" || e.GetPool() != "blue" || !e.GetTime().AsTime().Equal(now) {
		t.Fatalf("event without node, pool, time: %v", e)
	}
}

func TestDuplicateBatchesAreIngestedOnce(t *testing.T) {
	type call struct {
		node   string
		events int
	}
	var mu sync.Mutex
	var calls []call
	s := newStore(t, Config{Now: newClock(t0).Now, OnBatch: func(node string, events int, dropped uint64) {
		mu.Lock()
		calls = append(calls, call{node, events})
		mu.Unlock()
	}})
	first := batch("node-a", "p", "r1", 1, ev{id: "a1"}, ev{id: "a2"})
	first.Dropped = 7
	if !s.Ingest(first) {
		t.Fatal("first batch not fresh")
	}
	resend := batch("node-a", "p", "r1", 1, ev{id: "a1"}, ev{id: "a2"})
	resend.Dropped = 7
	if s.Ingest(resend) {
		t.Fatal("resent batch taken for fresh")
	}
	if !s.Ingest(batch("node-a", "p", "r2", 1, ev{id: "b1"})) {
		t.Fatal("a new reporter_id's sequence 1 taken for a duplicate")
	}
	if !s.Ingest(batch("node-a", "p", "r1", 2, ev{id: "a3"})) {
		t.Fatal("the next sequence taken for a duplicate")
	}
	st := s.Stats()
	if st.Events != 4 || st.Batches != 3 || st.DuplicateBatches != 1 || st.DroppedByNodes != 7 || st.Reporters != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if got, _ := s.Query(nil, 0); len(got) != 4 {
		t.Fatalf("ring holds %v", ids(got))
	}
	if top := s.Top(nil, wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, 0); top.GetTotal() != 4 {
		t.Fatalf("aggregates count %d", top.GetTotal())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 || calls[0] != (call{"node-a", 2}) || calls[1] != (call{"node-a", 1}) {
		t.Fatalf("OnBatch calls = %v", calls)
	}
}

func TestRingOverflowSetsTruncated(t *testing.T) {
	s := newStore(t, Config{MaxRaw: 4, Now: newClock(t0.Add(10 * time.Minute)).Now})
	for i := 1; i <= 6; i++ {
		s.Ingest(batch("n", "p", "r", uint64(i), ev{id: fmt.Sprintf("e%d", i), at: time.Duration(i) * time.Minute}))
	}
	cases := []struct {
		name      string
		f         *wsfleetv1.EventFilter
		want      []string
		truncated bool
	}{
		{"no start time reaches past the ring", nil, []string{"e6", "e5", "e4", "e3"}, true},
		{"a start before the newest overwritten event is truncated", &wsfleetv1.EventFilter{StartTime: ts(2 * time.Minute)}, []string{"e6", "e5", "e4", "e3"}, true},
		{"a start after every overwritten event is whole", &wsfleetv1.EventFilter{StartTime: ts(2*time.Minute + time.Second)}, []string{"e6", "e5", "e4", "e3"}, false},
		{"a later start is whole", &wsfleetv1.EventFilter{StartTime: ts(5 * time.Minute)}, []string{"e6", "e5"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated := s.Query(tc.f, 100)
			if !equal(ids(got), tc.want) || truncated != tc.truncated {
				t.Fatalf("got %v truncated %v, want %v truncated %v", ids(got), truncated, tc.want, tc.truncated)
			}
		})
	}
	st := s.Stats()
	if st.RawEvents != 4 || st.RawEvicted != 2 || st.Events != 6 {
		t.Fatalf("stats = %+v", st)
	}
	if top := s.Top(nil, wsfleetv1.TopErrorsRequest_GROUP_BY_CLASS, 0); top.GetTotal() != 6 {
		t.Fatalf("aggregates lost overwritten events: total %d", top.GetTotal())
	}
}

func TestQueryScansAcrossChunks(t *testing.T) {
	// More events than one scan chunk, so the scan takes the lock several
	// times; the trace is at both ends of the ring.
	n := 3*scanChunk + 17
	s := newStore(t, Config{MaxRaw: n, Now: newClock(t0).Now})
	req := batch("n", "p", "r", 1)
	for i := range n {
		e := ev{id: fmt.Sprintf("e%d", i), trace: fmt.Sprintf("t%d", i)}
		if i == 0 || i == n-1 {
			e.trace = "needle"
		}
		req.Events = append(req.Events, e.proto())
	}
	s.Ingest(req)
	got, truncated := s.Query(&wsfleetv1.EventFilter{TraceId: "needle"}, 0)
	if want := []string{fmt.Sprintf("e%d", n-1), "e0"}; !equal(ids(got), want) || truncated {
		t.Fatalf("got %v truncated %v, want %v", ids(got), truncated, want)
	}
}

func TestConcurrentIngestAndQueries(t *testing.T) {
	s := newStore(t, Config{MaxRaw: 1000, Now: newClock(t0).Now})
	tail, err := s.Subscribe(&wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{capacity}}, 8)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const writers, batches = 4, 50
	for w := range writers {
		wg.Go(func() {
			for i := 1; i <= batches; i++ {
				s.Ingest(batch(fmt.Sprintf("n%d", w), "p", fmt.Sprintf("r%d", w), uint64(i),
					ev{id: "x", class: capacity, trace: "t"}, ev{id: "y", class: normal}))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			s.Query(&wsfleetv1.EventFilter{TraceId: "t"}, 10)
			s.Top(nil, wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, 3)
			s.Stats()
		}
	})
	wg.Wait()
	dropped := tail.Dropped()
	tail.Cancel()
	n := 0
	for range tail.C {
		n++
	}
	// The tail is never read while ingest runs: it takes what fits in its
	// buffer and is dropped at the first event that does not.
	st := s.Stats()
	if st.Events != writers*batches*2 || n != 8 || !dropped || st.TailsDropped != 1 {
		t.Fatalf("events %d, tail got %d, dropped %v (%d)", st.Events, n, dropped, st.TailsDropped)
	}
}

func TestClassesNewerThanThisBuildAreKeptAndCountAsErrors(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(time.Hour)).Now})
	s.Ingest(batch("n", "p", "r", 1, ev{id: "new", class: 100}, ev{id: "n64", class: 64}, ev{id: "old", class: capacity}))
	got, _ := s.Query(&wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{100}, ErrorsOnly: true}, 0)
	if !equal(ids(got), []string{"new"}) {
		t.Fatalf("class 100: %v", ids(got))
	}
	if got, _ := s.Query(&wsfleetv1.EventFilter{ErrorsOnly: true}, 0); len(got) != 3 {
		t.Fatalf("errors only: %v", ids(got))
	}
	resp := s.Top(nil, byClass, 0)
	if g := groups(resp); !equal(g, []string{"unspecified=2/ERROR_CLASS_UNSPECIFIED", "capacity=1/ERROR_CLASS_CAPACITY"}) {
		t.Fatalf("top: %v", g)
	}
}

func TestTimestampsOutsideTheNanosecondRangeSaturate(t *testing.T) {
	cases := []struct {
		name string
		ts   *timestamppb.Timestamp
		want int64
	}{
		{"a normal time", &timestamppb.Timestamp{Seconds: 1, Nanos: 5}, int64(time.Second) + 5},
		{"the year 9999", &timestamppb.Timestamp{Seconds: 253402300799}, math.MaxInt64},
		{"the year 1", &timestamppb.Timestamp{Seconds: -62135596800}, math.MinInt64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tsNanos(tc.ts); got != tc.want {
				t.Fatalf("tsNanos = %d, want %d", got, tc.want)
			}
		})
	}
	s := newStore(t, Config{Now: newClock(t0).Now})
	req := batch("n", "p", "r", 1, ev{id: "far"})
	req.Events[0].Time = &timestamppb.Timestamp{Seconds: 253402300799}
	s.Ingest(req)
	if got, _ := s.Query(&wsfleetv1.EventFilter{StartTime: ts(0)}, 0); !equal(ids(got), []string{"far"}) {
		t.Fatalf("far-future event: %v", ids(got))
	}
}

// TestClientReportsAreStoredQueriedAndCounted: the events a node records
// from a client's report (kind CLIENT_REPORT, client_* classes, the
// client's URL, time and detail) are kept whole, found by class, trace id
// and errors_only, and counted by class.
func TestClientReportsAreStoredQueriedAndCounted(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(time.Hour)).Now})
	classes := []wsfleetv1.ErrorClass{
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_FAILED,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_CONNECTION_LOST,
	}
	req := &wsfleetv1.ReportTelemetryRequest{NodeId: "n", Pool: "p", ReporterId: "r", Sequence: 1}
	for i, c := range classes {
		req.Events = append(req.Events, &wsfleetv1.ErrorEvent{
			Kind: wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT, Class: c,
			TraceId: "trace-" + errclass.Name(c), ConnId: errclass.Name(c),
			Time:         ts(time.Duration(i) * time.Second),
			ClientUrl:    "wss://edge.example.com/ws?trace_id=trace-" + errclass.Name(c),
			ClientTime:   ts(time.Duration(i)*time.Second - 3*time.Second),
			ClientDetail: "WebSocket connection failed",
			Origin:       "https://app.example.com",
		})
	}
	s.Ingest(req)

	got, _ := s.Query(&wsfleetv1.EventFilter{ErrorsOnly: true}, 0)
	if len(got) != len(classes) {
		t.Fatalf("errors only: %v", ids(got))
	}
	for _, c := range classes {
		name := errclass.Name(c)
		got, _ := s.Query(&wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{c}}, 0)
		if len(got) != 1 {
			t.Fatalf("class %s: %v", name, ids(got))
		}
		e := got[0]
		if e.GetKind() != wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT || e.GetClientUrl() == "" ||
			e.GetClientTime() == nil || e.GetClientDetail() != "WebSocket connection failed" {
			t.Errorf("class %s came back as %v", name, e)
		}
		if got, _ := s.Query(&wsfleetv1.EventFilter{TraceId: "trace-" + name}, 0); !equal(ids(got), []string{name}) {
			t.Errorf("trace-%s: %v", name, ids(got))
		}
	}
	resp := s.Top(nil, byClass, 0)
	// Equal counts are ordered by key.
	want := []string{
		"client_connection_lost=1/ERROR_CLASS_CLIENT_CONNECTION_LOST",
		"client_handshake_failed=1/ERROR_CLASS_CLIENT_HANDSHAKE_FAILED",
		"client_handshake_timeout=1/ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT",
		"client_unreachable=1/ERROR_CLASS_CLIENT_UNREACHABLE",
	}
	if g := groups(resp); !equal(g, want) {
		t.Fatalf("top: %v, want %v", g, want)
	}
}
