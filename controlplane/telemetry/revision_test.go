package telemetry

import (
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// A canary rollout compares the events its nodes recorded while running
// the canary revision with the rest: the filter's policy_revision must hold
// for raw queries and for the per-minute aggregates alike, also within the
// minute a node moved to another revision.
func TestPolicyRevisionFilter(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(10 * time.Minute)).Now})
	m1 := 70 * time.Second
	s.Ingest(batch("node-a", "p", "ra", 1,
		ev{id: "a1", at: m1, class: originRejected, origin: "x", rev: 4},
		ev{id: "a2", at: m1 + time.Second, class: originRejected, origin: "x", rev: 5},
		ev{id: "a3", at: m1 + 2*time.Second, class: originRejected, origin: "x", rev: 5},
		ev{id: "a4", at: m1 + 3*time.Second, class: normal, origin: "x", rev: 5},
	))
	s.Ingest(batch("node-b", "p", "rb", 1,
		ev{id: "b1", at: m1, class: originRejected, origin: "x", rev: 4},
	))
	cases := []struct {
		name      string
		f         *wsfleetv1.EventFilter
		top       []string
		total     int64
		rawEvents []string
	}{
		{"zero means any revision", &wsfleetv1.EventFilter{}, []string{"node-a=4/ERROR_CLASS_ORIGIN_REJECTED", "node-b=1/ERROR_CLASS_ORIGIN_REJECTED"}, 5, []string{"a4", "a3", "a2", "a1", "b1"}},
		{"only the canary revision's events", &wsfleetv1.EventFilter{PolicyRevision: 5}, []string{"node-a=3/ERROR_CLASS_ORIGIN_REJECTED"}, 3, []string{"a4", "a3", "a2"}},
		{"the revision with errors only", &wsfleetv1.EventFilter{PolicyRevision: 5, ErrorsOnly: true}, []string{"node-a=2/ERROR_CLASS_ORIGIN_REJECTED"}, 2, []string{"a3", "a2"}},
		{"the base revision on every node", &wsfleetv1.EventFilter{PolicyRevision: 4}, []string{"node-a=1/ERROR_CLASS_ORIGIN_REJECTED", "node-b=1/ERROR_CLASS_ORIGIN_REJECTED"}, 2, []string{"a1", "b1"}},
		{"a revision nobody ran", &wsfleetv1.EventFilter{PolicyRevision: 9}, []string{}, 0, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Top(tc.f, byNode, 0)
			if got := groups(resp); !equal(got, tc.top) || resp.GetTotal() != tc.total {
				t.Errorf("Top: got %v total %d, want %v total %d", got, resp.GetTotal(), tc.top, tc.total)
			}
			evs, _ := s.Query(tc.f, 0)
			got := ids(evs)
			// Same-time events come back in ingest order reversed; compare as sets.
			if len(got) != len(tc.rawEvents) || !sameSet(got, tc.rawEvents) {
				t.Errorf("Query: got %v, want %v", got, tc.rawEvents)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
