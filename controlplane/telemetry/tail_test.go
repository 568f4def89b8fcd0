package telemetry

import (
	"fmt"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// drain reads what ch holds now without waiting: Ingest has already sent
// everything it will send by the time it returns.
func drain(ch <-chan *wsfleetv1.ErrorEvent) []string {
	var out []string
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e.GetConnId())
		default:
			return out
		}
	}
}

func TestSubscribeReceivesMatchingLiveEvents(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0).Now})
	s.Ingest(batch("n", "p", "r", 1, ev{id: "before", class: originRejected}))
	// The time range of a tail is ignored: a start far in the future still
	// receives.
	tail := subscribe(t, s, &wsfleetv1.EventFilter{
		Classes:    []wsfleetv1.ErrorClass{originRejected, normal},
		ErrorsOnly: true,
		StartTime:  ts(1000 * time.Hour),
	}, 10)
	ch := tail.C
	s.Ingest(batch("n", "p", "r", 2,
		ev{id: "x1", class: originRejected}, ev{id: "no1", class: capacity}, ev{id: "no2", class: normal}, ev{id: "x2", class: originRejected}))
	if got := drain(ch); !equal(got, []string{"x1", "x2"}) {
		t.Fatalf("tail got %v", got)
	}
	// A duplicate batch is not sent again.
	s.Ingest(batch("n", "p", "r", 2, ev{id: "x1", class: originRejected}))
	if got := drain(ch); len(got) != 0 {
		t.Fatalf("duplicate batch reached the tail: %v", got)
	}
}

func TestSlowSubscriberIsDroppedWithoutBlockingIngest(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0).Now})
	slow := subscribe(t, s, nil, 2)
	fast := subscribe(t, s, nil, 100)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 10; i++ {
			s.Ingest(batch("n", "p", "r", uint64(i), ev{id: fmt.Sprintf("e%d", i)}))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ingest blocked on a subscriber that does not read")
	}
	// The slow one keeps what it had buffered, then its channel is closed.
	if got := drain(slow.C); !equal(got, []string{"e1", "e2"}) {
		t.Fatalf("slow subscriber got %v", got)
	}
	if _, open := <-slow.C; open || !slow.Dropped() {
		t.Fatalf("slow subscriber: channel open %v, dropped %v", open, slow.Dropped())
	}
	if got := drain(fast.C); len(got) != 10 || fast.Dropped() {
		t.Fatalf("fast subscriber got %v, dropped %v", got, fast.Dropped())
	}
	// A dropped tail holds its slot until cancelled.
	if st := s.Stats(); st.TailsDropped != 1 || st.Events != 10 || st.TailSubscribers != 2 {
		t.Fatalf("stats = %+v", st)
	}
	slow.Cancel()
	if st := s.Stats(); st.TailSubscribers != 1 {
		t.Fatalf("%d tails after cancelling the dropped one", st.TailSubscribers)
	}
}

func TestCancelClosesTheTail(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0).Now})
	tail := subscribe(t, s, nil, 1)
	tail.Cancel()
	tail.Cancel()
	if _, ok := <-tail.C; ok {
		t.Fatal("channel open after cancel")
	}
	if tail.Dropped() {
		t.Fatal("a cancelled tail reads as dropped")
	}
	// Ingest after cancel must not send on the closed channel.
	s.Ingest(batch("n", "p", "r", 1, ev{id: "after"}))
	if st := s.Stats(); st.TailSubscribers != 0 {
		t.Fatalf("%d subscribers after cancel", st.TailSubscribers)
	}
}

func TestTailBacklogThenLiveWithoutGapOrRepeat(t *testing.T) {
	s := newStore(t, Config{Now: newClock(t0.Add(time.Hour)).Now})
	s.Ingest(batch("n", "p", "r", 1,
		ev{id: "e1", at: time.Minute, class: capacity},
		ev{id: "skip", at: 2 * time.Minute, class: normal},
		ev{id: "e2", at: 3 * time.Minute, class: capacity},
		ev{id: "e3", at: 4 * time.Minute, class: capacity}))
	past, tail, err := s.tail(&wsfleetv1.EventFilter{Classes: []wsfleetv1.ErrorClass{capacity}}, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Cancel()
	ch := tail.C
	if got := ids(past); !equal(got, []string{"e2", "e3"}) {
		t.Fatalf("backlog %v, want the two most recent, oldest first", got)
	}
	s.Ingest(batch("n", "p", "r", 2, ev{id: "e4", at: 5 * time.Minute, class: capacity}))
	if got := drain(ch); !equal(got, []string{"e4"}) {
		t.Fatalf("live %v", got)
	}
}

// subscribe is Store.Subscribe, cancelled when the test ends.
func subscribe(t *testing.T, s *Store, f *wsfleetv1.EventFilter, buffer int) *Tail {
	t.Helper()
	tail, err := s.Subscribe(f, buffer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tail.Cancel)
	return tail
}
