package telemetry

import (
	"fmt"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// times repeats e n times.
func times(n int, e ev) []ev {
	out := make([]ev, n)
	for i := range out {
		out[i] = e
	}
	return out
}

func concat(parts ...[]ev) []ev {
	var out []ev
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// groups renders a response as "key=count/top_class" in order.
func groups(resp *wsfleetv1.TopErrorsResponse) []string {
	out := make([]string, 0, len(resp.GetGroups()))
	for _, g := range resp.GetGroups() {
		out = append(out, fmt.Sprintf("%s=%d/%s", g.GetKey(), g.GetCount(), g.GetTopClass()))
	}
	return out
}

const (
	byClass  = wsfleetv1.TopErrorsRequest_GROUP_BY_CLASS
	byOrigin = wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN
	byNode   = wsfleetv1.TopErrorsRequest_GROUP_BY_NODE
	byPool   = wsfleetv1.TopErrorsRequest_GROUP_BY_POOL
)

func TestTop(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	m1, m2, m5 := 70*time.Second, 150*time.Second, 5*time.Minute
	s.Ingest(batch("node-a", "blue", "ra", 1, concat(
		times(3, ev{at: m1, class: originRejected, origin: "a", trace: "abc"}),
		times(1, ev{at: m1, class: originRejected, origin: "b"}),
		times(2, ev{at: m2, class: capacity, origin: "a"}),
	)...))
	s.Ingest(batch("node-b", "green", "rb", 1, concat(
		times(1, ev{at: m2, class: heartbeat, origin: "b"}),
		times(1, ev{at: m2, class: normal, origin: "a"}),
		times(4, ev{at: m5, class: heartbeat, origin: "c"}),
	)...))

	const (
		or = "ERROR_CLASS_ORIGIN_REJECTED"
		hb = "ERROR_CLASS_HEARTBEAT_TIMEOUT"
		ca = "ERROR_CLASS_CAPACITY"
		no = "ERROR_CLASS_NORMAL"
	)
	cases := []struct {
		name  string
		f     *wsfleetv1.EventFilter
		by    wsfleetv1.TopErrorsRequest_GroupBy
		limit int
		want  []string
		total int64
	}{
		{"by class, everything kept", nil, byClass, 0,
			[]string{"heartbeat_timeout=5/" + hb, "origin_rejected=4/" + or, "capacity=2/" + ca, "normal=1/" + no}, 12},
		{"unspecified grouping is by class", nil, wsfleetv1.TopErrorsRequest_GROUP_BY_UNSPECIFIED, 1,
			[]string{"heartbeat_timeout=5/" + hb}, 12},
		{"by origin with each origin's top class, ties to the lower class", nil, byOrigin, 0,
			[]string{"a=6/" + or, "c=4/" + hb, "b=2/" + or}, 12},
		{"by node, equal counts ordered by key", nil, byNode, 0,
			[]string{"node-a=6/" + or, "node-b=6/" + hb}, 12},
		{"by pool", nil, byPool, 0, []string{"blue=6/" + or, "green=6/" + hb}, 12},
		{"the limit keeps the largest, the total counts all", nil, byClass, 2,
			[]string{"heartbeat_timeout=5/" + hb, "origin_rejected=4/" + or}, 12},
		{"a time range takes whole minutes", &wsfleetv1.EventFilter{StartTime: ts(2 * time.Minute), EndTime: ts(5 * time.Minute)}, byClass, 0,
			[]string{"capacity=2/" + ca, "heartbeat_timeout=1/" + hb, "normal=1/" + no}, 4},
		{"a start inside a minute includes that minute", &wsfleetv1.EventFilter{StartTime: ts(2*time.Minute + 45*time.Second), EndTime: ts(5 * time.Minute)}, byClass, 0,
			[]string{"capacity=2/" + ca, "heartbeat_timeout=1/" + hb, "normal=1/" + no}, 4},
		{"an end inside a minute includes that minute", &wsfleetv1.EventFilter{StartTime: ts(2 * time.Minute), EndTime: ts(5*time.Minute + time.Second)}, byClass, 0,
			[]string{"heartbeat_timeout=5/" + hb, "capacity=2/" + ca, "normal=1/" + no}, 8},
		{"a range with no events is empty", &wsfleetv1.EventFilter{StartTime: ts(7 * time.Minute)}, byClass, 0, []string{}, 0},
		{"errors only leaves out normal closes", &wsfleetv1.EventFilter{ErrorsOnly: true}, byClass, 0,
			[]string{"heartbeat_timeout=5/" + hb, "origin_rejected=4/" + or, "capacity=2/" + ca}, 11},
		{"node filter", &wsfleetv1.EventFilter{NodeId: "node-b"}, byClass, 0,
			[]string{"heartbeat_timeout=5/" + hb, "normal=1/" + no}, 6},
		{"pool filter", &wsfleetv1.EventFilter{Pool: "blue"}, byOrigin, 0,
			[]string{"a=5/" + or, "b=1/" + or}, 6},
		{"origin filter", &wsfleetv1.EventFilter{Origin: "b"}, byNode, 0,
			[]string{"node-a=1/" + or, "node-b=1/" + hb}, 2},
		{"class filter", &wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{capacity, normal}}, byNode, 0,
			[]string{"node-a=2/" + ca, "node-b=1/" + no}, 3},
		{"a trace id is not aggregated and is ignored", &wsfleetv1.EventFilter{TraceId: "abc", Pool: "green"}, byPool, 0,
			[]string{"green=6/" + hb}, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Top(tc.f, tc.by, tc.limit)
			if got := groups(resp); !equal(got, tc.want) || resp.GetTotal() != tc.total {
				t.Fatalf("got %v total %d, want %v total %d", got, resp.GetTotal(), tc.want, tc.total)
			}
		})
	}
}

func TestOriginsBeyondTheBoundAreOther(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	s := newStore(t, Config{MaxOriginsPerMinute: 2, Log: logger, Now: newClock(t0.Add(10 * time.Minute)).Now})
	s.Ingest(batch("n", "p", "r", 1,
		ev{at: time.Minute, class: originRejected, origin: "a"},
		ev{at: time.Minute, class: originRejected, origin: "b"},
		ev{at: time.Minute, class: originRejected, origin: "c"},
		ev{at: time.Minute, class: capacity, origin: "d"},
		ev{at: time.Minute, class: originRejected, origin: "a"},
		// The bound is per minute: c is counted as itself in the next one.
		ev{at: 2 * time.Minute, class: originRejected, origin: "c"},
	))
	resp := s.Top(nil, byOrigin, 0)
	want := []string{"(other)=2/ERROR_CLASS_ORIGIN_REJECTED", "a=2/ERROR_CLASS_ORIGIN_REJECTED", "b=1/ERROR_CLASS_ORIGIN_REJECTED", "c=1/ERROR_CLASS_ORIGIN_REJECTED"}
	if got := groups(resp); !equal(got, want) || resp.GetTotal() != 6 {
		t.Fatalf("got %v total %d, want %v", got, resp.GetTotal(), want)
	}
	if other := s.Top(&wsfleetv1.EventFilter{Origin: OtherOrigin}, byClass, 0); other.GetTotal() != 2 {
		t.Fatalf("filtering by %q counts %d", OtherOrigin, other.GetTotal())
	}
	if st := s.Stats(); st.OtherOrigins != 2 {
		t.Fatalf("OtherOrigins = %d", st.OtherOrigins)
	}
	// Another overflow in the same minute is not reported again.
	s.Ingest(batch("n", "p", "r", 2, ev{at: time.Minute, class: originRejected, origin: "e"}))
	if n := len(hook.AllEntries()); n != 1 || hook.LastEntry().Level != logrus.WarnLevel {
		t.Fatalf("%d log entries, want one warning: %v", n, hook.AllEntries())
	}
	// The raw events keep their real origins.
	if got, _ := s.Query(&wsfleetv1.EventFilter{Origin: "d"}, 0); len(got) != 1 {
		t.Fatalf("raw query for origin d: %v", got)
	}
}

func TestCombinationsBeyondTheBoundAreOther(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	s := newStore(t, Config{MaxKeysPerMinute: 2, Log: logger, Now: newClock(t0.Add(10 * time.Minute)).Now})
	s.Ingest(batch("", "p", "r", 1,
		ev{at: time.Minute, class: capacity, node: "n1"},
		ev{at: time.Minute, class: capacity, node: "n2"},
		ev{at: time.Minute, class: capacity, node: "n3"},
		ev{at: time.Minute, class: heartbeat, node: "n4"},
		ev{at: time.Minute, class: heartbeat, node: "n5"},
		ev{at: time.Minute, class: capacity, node: "n1"},
	))
	resp := s.Top(nil, byNode, 0)
	// n3 and then every new combination go to the catch-all, by class.
	want := []string{"(other)=3/ERROR_CLASS_HEARTBEAT_TIMEOUT", "n1=2/ERROR_CLASS_CAPACITY", "n2=1/ERROR_CLASS_CAPACITY"}
	if got := groups(resp); !equal(got, want) || resp.GetTotal() != 6 {
		t.Fatalf("got %v total %d, want %v", got, resp.GetTotal(), want)
	}
	st := s.Stats()
	if st.OtherKeys != 3 || st.AggregateKeys != 4 {
		t.Fatalf("OtherKeys %d, AggregateKeys %d", st.OtherKeys, st.AggregateKeys)
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d log entries, want one warning", n)
	}
}

func TestRetentionPrunesOldMinutes(t *testing.T) {
	clock := newClock(t0)
	s := newStore(t, Config{Retention: 10 * time.Minute, Now: clock.Now})
	all := &wsfleetv1.EventFilter{StartTime: ts(-24 * time.Hour)}
	s.Ingest(batch("n", "p", "r", 1, ev{at: 0, class: capacity}, ev{at: 30 * time.Second, class: capacity}))

	clock.Set(t0.Add(10*time.Minute + 59*time.Second))
	if got := s.Top(all, byClass, 0).GetTotal(); got != 2 {
		t.Fatalf("within the retention: total %d, want 2", got)
	}
	clock.Set(t0.Add(11 * time.Minute))
	if got := s.Top(all, byClass, 0).GetTotal(); got != 0 {
		t.Fatalf("past the retention: total %d, want 0", got)
	}
	if st := s.Stats(); st.AggregateMinutes != 0 || st.AggregateKeys != 0 {
		t.Fatalf("pruned aggregates still hold %d minutes, %d keys", st.AggregateMinutes, st.AggregateKeys)
	}
	// Pruning the aggregates leaves the raw ring alone.
	if got, _ := s.Query(nil, 0); len(got) != 2 {
		t.Fatalf("raw events: %d", len(got))
	}
}

func TestIngestPrunesWithoutQueries(t *testing.T) {
	clock := newClock(t0)
	s := newStore(t, Config{Retention: 5 * time.Minute, Now: clock.Now})
	for i := range 30 {
		clock.Set(t0.Add(time.Duration(i) * time.Minute))
		s.Ingest(batch("n", "p", "r", uint64(i+1), ev{at: time.Duration(i) * time.Minute, class: capacity}))
	}
	// The current minute and the five before it.
	if st := s.Stats(); st.AggregateMinutes != 6 {
		t.Fatalf("AggregateMinutes = %d, want 6", st.AggregateMinutes)
	}
}

func TestEventsWithWrongClocksAreCountedOnArrival(t *testing.T) {
	now := t0.Add(time.Hour)
	s := newStore(t, Config{Retention: 10 * time.Minute, Now: newClock(now).Now})
	s.Ingest(batch("n", "p", "r", 1,
		ev{id: "ancient", at: 0, class: capacity},
		ev{id: "future", at: 48 * time.Hour, class: heartbeat},
		ev{id: "skewed", at: time.Hour + 3*time.Minute, class: normal},
	))
	arrival := &wsfleetv1.EventFilter{StartTime: timestampAt(now), EndTime: timestampAt(now.Add(time.Minute))}
	if got := groups(s.Top(arrival, byClass, 0)); !equal(got, []string{"capacity=1/ERROR_CLASS_CAPACITY", "heartbeat_timeout=1/ERROR_CLASS_HEARTBEAT_TIMEOUT"}) {
		t.Fatalf("arrival minute holds %v", got)
	}
	skew := &wsfleetv1.EventFilter{StartTime: ts(time.Hour + 3*time.Minute)}
	if got := s.Top(skew, byClass, 0).GetTotal(); got != 1 {
		t.Fatalf("a slightly fast clock's event is not in its own minute: %d", got)
	}
	if st := s.Stats(); st.AggregateMinutes != 2 {
		t.Fatalf("AggregateMinutes = %d, want 2", st.AggregateMinutes)
	}
	// The raw event keeps its own time.
	if got, _ := s.Query(&wsfleetv1.EventFilter{EndTime: ts(time.Minute)}, 0); !equal(ids(got), []string{"ancient"}) {
		t.Fatalf("raw query: %v", ids(got))
	}
}

func TestUnixMinuteFloors(t *testing.T) {
	cases := []struct {
		name string
		ns   int64
		want int64
	}{
		{"the epoch is minute 0", 0, 0},
		{"a nanosecond before the next minute", int64(time.Minute) - 1, 0},
		{"a minute", int64(time.Minute), 1},
		{"a nanosecond before the epoch is minute -1", -1, -1},
		{"a whole minute before the epoch", -int64(time.Minute), -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unixMinute(tc.ns); got != tc.want {
				t.Fatalf("unixMinute(%d) = %d, want %d", tc.ns, got, tc.want)
			}
		})
	}
}
