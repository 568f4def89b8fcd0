package headfeed

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func rev(pool string, n int64) *wsfleetv1.PolicyRevision {
	return &wsfleetv1.PolicyRevision{Pool: pool, Revision: n}
}

func name(r *wsfleetv1.PolicyRevision) string {
	return fmt.Sprintf("%s@%d", r.GetPool(), r.GetRevision())
}

// run starts f.Run and stops it when the test ends.
func run(t *testing.T, f *Feed) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		f.Run(ctx)
		f.Close()
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func receive(t *testing.T, f *Feed) string {
	t.Helper()
	select {
	case r, ok := <-f.Out():
		if !ok {
			t.Fatal("Out closed")
		}
		return name(r)
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered")
	}
	return ""
}

func TestOffersAreDeliveredLatestWinsPerPool(t *testing.T) {
	tests := []struct {
		name   string
		offers []*wsfleetv1.PolicyRevision
		want   []string
	}{
		{"a consumer that reads later gets each pool's newest head once",
			[]*wsfleetv1.PolicyRevision{rev("a", 1), rev("a", 2), rev("a", 3)}, []string{"a@3"}},
		{"pools come out in the order they started waiting",
			[]*wsfleetv1.PolicyRevision{rev("b", 1), rev("a", 1), rev("b", 2)}, []string{"b@2", "a@1"}},
		{"a head at or below one accepted is dropped",
			[]*wsfleetv1.PolicyRevision{rev("a", 5), rev("a", 4), rev("a", 5)}, []string{"a@5"}},
		{"a jump is a head like any other",
			[]*wsfleetv1.PolicyRevision{rev("a", 1), rev("a", 82)}, []string{"a@82"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			for _, r := range tt.offers {
				f.Offer(r)
			}
			run(t, f)
			for _, want := range tt.want {
				if got := receive(t, f); got != want {
					t.Fatalf("delivered %s, want %s (all: %v)", got, want, tt.want)
				}
			}
			select {
			case r := <-f.Out():
				t.Fatalf("delivered %s too", name(r))
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}

func TestAHeadBelowOneDeliveredIsNotDeliveredAgain(t *testing.T) {
	f := New()
	run(t, f)
	f.Offer(rev("a", 3))
	if got := receive(t, f); got != "a@3" {
		t.Fatalf("delivered %s", got)
	}
	if f.Offer(rev("a", 2)) || f.Offer(rev("a", 3)) {
		t.Fatal("an old head was accepted after a newer one was delivered")
	}
	if !f.Offer(rev("a", 4)) {
		t.Fatal("a newer head was refused")
	}
	if got := receive(t, f); got != "a@4" {
		t.Fatalf("delivered %s", got)
	}
}

func TestOfferNeverBlocksAndMemoryIsOneHeadPerPool(t *testing.T) {
	f := New()
	run(t, f) // nobody reads Out
	for i := range 10_000 {
		f.Offer(rev(fmt.Sprint("p", i%7), int64(i+1)))
	}
	f.mu.Lock()
	waiting, order := len(f.pending), len(f.order)
	f.mu.Unlock()
	// One of the seven may be held by Run, blocked on the send.
	if waiting > 7 || order != waiting {
		t.Fatalf("%d heads waiting (%d in order) for 7 pools", waiting, order)
	}
}

func TestRunReturnsWhenItsContextEnds(t *testing.T) {
	f := New()
	f.Offer(rev("a", 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
		f.Close()
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if r, ok := <-f.Out(); ok {
		t.Fatalf("Out still open after Close: delivered %s", name(r))
	}
}
