package telemetry

import "testing"

func TestDedup(t *testing.T) {
	type step struct {
		id    string
		seq   uint64
		fresh bool
	}
	cases := []struct {
		name  string
		limit int
		steps []step
	}{
		{"a resend of the same sequence is a duplicate", 10, []step{
			{"r1", 1, true}, {"r1", 1, false}, {"r1", 2, true}, {"r1", 2, false}, {"r1", 1, false},
		}},
		{"sequence numbers count per reporter", 10, []step{
			{"r1", 1, true}, {"r2", 1, true}, {"r1", 2, true}, {"r2", 2, true}, {"r2", 1, false},
		}},
		{"a reporter first seen mid-stream starts there", 10, []step{
			{"r1", 500, true}, {"r1", 499, true}, {"r1", 500, false}, {"r1", 501, true},
		}},
		{"a gap is filled later once", 10, []step{
			{"r1", 1, true}, {"r1", 3, true}, {"r1", 2, true}, {"r1", 2, false}, {"r1", 3, false},
		}},
		{"a jump beyond the window forgets the bits", 10, []step{
			{"r1", 1, true}, {"r1", 1 + dedupWindow + 5, true}, {"r1", dedupWindow + 5, true},
		}},
		{"a sequence older than the window counts as a duplicate", 10, []step{
			{"r1", 100, true}, {"r1", 100 - dedupWindow, false}, {"r1", 100 - dedupWindow + 1, true},
		}},
		{"the least recently seen reporter is forgotten first", 2, []step{
			{"r1", 1, true}, {"r2", 1, true}, {"r1", 2, true}, {"r3", 1, true},
			// r2 was forgotten, so its old batch counts again; r1 was kept.
			{"r1", 1, false}, {"r2", 1, true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDedup(tc.limit, 1<<30)
			for i, st := range tc.steps {
				if got := d.fresh(st.id, st.seq); got != st.fresh {
					t.Fatalf("step %d (%s, %d): fresh = %v, want %v", i, st.id, st.seq, got, st.fresh)
				}
			}
			if d.len() > tc.limit {
				t.Fatalf("%d reporters kept, limit %d", d.len(), tc.limit)
			}
		})
	}
}

func TestReporterBoundIsReported(t *testing.T) {
	s := newStore(t, Config{MaxReporters: 2, Now: newClock(t0).Now})
	for _, id := range []string{"r1", "r2", "r3"} {
		s.Ingest(batch("n", "p", id, 1, ev{id: id}))
	}
	if st := s.Stats(); st.Reporters != 2 || st.ReportersEvicted != 1 {
		t.Fatalf("reporters %d, evicted %d", st.Reporters, st.ReportersEvicted)
	}
}
