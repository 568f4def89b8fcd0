package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/dataplane/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Subscriber that keeps what it gets.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Deliver(msg []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// counter is a Subscriber that only counts, safe under concurrent publishes.
type counter struct{ n atomic.Int64 }

func (c *counter) Deliver([]byte) { c.n.Add(1) }

func subscribe(t *testing.T, b broker.Broker, channel string, s broker.Subscriber) {
	t.Helper()
	added, err := b.Subscribe(channel, s)
	if err != nil || !added {
		t.Fatalf("Subscribe(%q) = %v, %v; want true, nil", channel, added, err)
	}
}

// publish publishes the JSON string text on channel.
func publish(t *testing.T, b broker.Broker, channel, text string, want int) {
	t.Helper()
	n, err := b.Publish(context.Background(), channel, []byte(strconv.Quote(text)))
	if err != nil || n != want {
		t.Fatalf("Publish(%q, %q) = %d, %v; want %d, nil", channel, text, n, err, want)
	}
}

// frames are the message frames of publish's texts on channel.
func frames(channel string, texts ...string) []string {
	out := make([]string, len(texts))
	for i, text := range texts {
		out[i] = `{"type":"message","channel":"` + channel + `","data":` + strconv.Quote(text) + `}`
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTwoSubscribersBothReceive(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	a, c, other := &recorder{}, &recorder{}, &recorder{}
	subscribe(t, b, "news", a)
	subscribe(t, b, "news", c)
	subscribe(t, b, "sports", other)

	publish(t, b, "news", "m1", 2)
	publish(t, b, "news", "m2", 2)

	for name, r := range map[string]*recorder{"first": a, "second": c} {
		if got := r.got(); !equal(got, frames("news", "m1", "m2")) {
			t.Errorf("%s subscriber got %q, want the frames of m1 and m2 in order", name, got)
		}
	}
	if got := other.got(); len(got) != 0 {
		t.Errorf("a subscriber of another channel got %q", got)
	}
}

// sliceSub keeps the slices it is given, to compare their backing arrays.
type sliceSub struct{ got [][]byte }

func (s *sliceSub) Deliver(msg []byte) { s.got = append(s.got, msg) }

func TestAPublishIsEncodedOnceForEveryLocalSubscriber(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	subs := []*sliceSub{{}, {}, {}}
	for _, s := range subs {
		subscribe(t, b, "room:1", s)
	}
	data := []byte(`{"text":"hi"}`)
	if n, err := b.Publish(context.Background(), "room:1", data); n != 3 || err != nil {
		t.Fatalf("Publish = %d, %v; want 3, nil", n, err)
	}
	want := `{"type":"message","channel":"room:1","data":{"text":"hi"}}`
	for i, s := range subs {
		if len(s.got) != 1 || string(s.got[0]) != want {
			t.Fatalf("subscriber %d got %q, want [%s]", i, s.got, want)
		}
		if &s.got[0][0] != &subs[0].got[0][0] {
			t.Errorf("subscriber %d got its own copy of the frame; want one frame shared by all", i)
		}
	}
	// One allocation per publish (the shared frame), none per subscriber,
	// and none at all for a channel nobody subscribes to.
	ctx := context.Background()
	if a := testing.AllocsPerRun(100, func() { _, _ = b.Publish(ctx, "room:1", data) }); a != 1 {
		t.Errorf("a publish to 3 subscribers allocates %v times, want 1", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = b.Publish(ctx, "nobody", data) }); a != 0 {
		t.Errorf("a publish to nobody allocates %v times, want 0", a)
	}
}

func TestUnsubscribedDoesNotReceive(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	stays, leaves := &recorder{}, &recorder{}
	subscribe(t, b, "c", stays)
	subscribe(t, b, "c", leaves)
	publish(t, b, "c", "before", 2)

	if !b.Unsubscribe("c", leaves) {
		t.Fatal("Unsubscribe of a subscriber = false, want true")
	}
	if b.Unsubscribe("c", leaves) {
		t.Error("second Unsubscribe = true, want false")
	}
	publish(t, b, "c", "after", 1)

	if got := leaves.got(); !equal(got, frames("c", "before")) {
		t.Errorf("unsubscribed subscriber got %q, want only before's frame", got)
	}
	if got := stays.got(); !equal(got, frames("c", "before", "after")) {
		t.Errorf("remaining subscriber got %q, want before's and after's frames", got)
	}
}

func TestSubscribeIsIdempotent(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	r := &recorder{}
	subscribe(t, b, "c", r)
	added, err := b.Subscribe("c", r)
	if err != nil || added {
		t.Fatalf("second Subscribe = %v, %v; want false, nil", added, err)
	}
	if n := b.Subscribers("c"); n != 1 {
		t.Errorf("Subscribers = %d, want 1", n)
	}
	publish(t, b, "c", "once", 1)
	if got := r.got(); !equal(got, frames("c", "once")) {
		t.Errorf("got %q, want the message once", got)
	}
	// One Unsubscribe undoes any number of Subscribes.
	if !b.Unsubscribe("c", r) || b.Subscribers("c") != 0 {
		t.Error("one Unsubscribe did not remove the subscriber")
	}
}

func TestEmptyChannelsAreRemoved(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	r1, r2 := &recorder{}, &recorder{}
	subscribe(t, b, "a", r1)
	subscribe(t, b, "a", r2)
	subscribe(t, b, "b", r1)
	if n := b.Channels(); n != 2 {
		t.Fatalf("Channels = %d, want 2", n)
	}
	b.Unsubscribe("a", r1)
	if n := b.Channels(); n != 2 {
		t.Errorf("Channels after one of two left = %d, want 2", n)
	}
	b.Unsubscribe("a", r2)
	b.Unsubscribe("b", r1)
	if n := b.Channels(); n != 0 {
		t.Errorf("Channels after everyone left = %d, want 0", n)
	}
	publish(t, b, "a", "nobody", 0)
	if b.Unsubscribe("never", r1) {
		t.Error("Unsubscribe from an unknown channel = true")
	}
}

func TestSubscribeRefuses(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	tests := []struct {
		name    string
		channel string
		sub     broker.Subscriber
		want    error
	}{
		{"an empty channel is refused", "", &recorder{}, broker.ErrEmptyChannel},
		{"a nil subscriber is refused", "c", nil, broker.ErrNilSubscriber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			added, err := b.Subscribe(tt.channel, tt.sub)
			if added || !errors.Is(err, tt.want) {
				t.Errorf("Subscribe = %v, %v; want false, %v", added, err, tt.want)
			}
		})
	}
	if n := b.Channels(); n != 0 {
		t.Errorf("Channels = %d after refused subscribes, want 0", n)
	}
}

func TestPublishHonoursContext(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	r := &recorder{}
	subscribe(t, b, "c", r)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := b.Publish(ctx, "c", []byte("x"))
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context = %d, %v; want 0, context.Canceled", n, err)
	}
	if got := r.got(); len(got) != 0 {
		t.Errorf("subscriber got %q from a cancelled publish", got)
	}
}

func TestClose(t *testing.T) {
	b := broker.NewInProcess()
	r := &recorder{}
	subscribe(t, b, "c", r)
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := b.Close(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if n, err := b.Publish(context.Background(), "c", []byte("x")); n != 0 || !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %d, %v; want 0, ErrClosed", n, err)
	}
	if added, err := b.Subscribe("c", &recorder{}); added || !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, %v; want false, ErrClosed", added, err)
	}
	if b.Unsubscribe("c", r) {
		t.Error("Unsubscribe after Close = true, want false")
	}
	if b.Channels() != 0 || b.Subscribers("c") != 0 {
		t.Errorf("after Close: %d channels, %d subscribers; want none", b.Channels(), b.Subscribers("c"))
	}
	if got := r.got(); len(got) != 0 {
		t.Errorf("subscriber got %q after Close", got)
	}
}

// Run with -race: subscribers come and go on several channels while others
// publish. Subscribers that stay for the whole run receive every message
// published to their channel; the counts add up.
func TestConcurrentSubscribePublish(t *testing.T) {
	b := broker.NewInProcess()
	defer b.Close()
	const (
		channels   = 8
		publishers = 4
		perPub     = 300
		churners   = 4
		churn      = 300
	)
	stayers := make([]*counter, channels)
	for i := range stayers {
		stayers[i] = &counter{}
		subscribe(t, b, fmt.Sprint("ch", i), stayers[i])
	}

	var wg sync.WaitGroup
	var delivered atomic.Int64
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPub {
				n, err := b.Publish(context.Background(), fmt.Sprint("ch", (p+i)%channels), []byte("m"))
				if err != nil {
					t.Error(err)
					return
				}
				delivered.Add(int64(n))
			}
		}()
	}
	// Counted only after every publisher is done: a publish that loaded
	// the list just before an Unsubscribe may still deliver.
	churnSubs := make([][]*counter, churners)
	for c := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range churn {
				s := &counter{}
				churnSubs[c] = append(churnSubs[c], s)
				ch := fmt.Sprint("ch", (c+i)%channels)
				if _, err := b.Subscribe(ch, s); err != nil {
					t.Error(err)
					return
				}
				_ = b.Subscribers(ch)
				_ = b.Channels()
				if !b.Unsubscribe(ch, s) {
					t.Errorf("Unsubscribe(%s) of a fresh subscriber = false", ch)
					return
				}
				// Churn on channels nobody else uses too, so channels are
				// created and removed while publishers look them up.
				tmp := fmt.Sprint("tmp", c, "-", i)
				if _, err := b.Subscribe(tmp, s); err != nil {
					t.Error(err)
					return
				}
				b.Unsubscribe(tmp, s)
			}
		}()
	}
	wg.Wait()

	var stayed, churned int64
	for _, s := range stayers {
		stayed += s.n.Load()
	}
	for _, subs := range churnSubs {
		for _, s := range subs {
			churned += s.n.Load()
		}
	}
	if stayed != publishers*perPub {
		t.Errorf("long-lived subscribers got %d messages, want %d", stayed, publishers*perPub)
	}
	if got := delivered.Load(); got != stayed+churned {
		t.Errorf("Publish reported %d deliveries, subscribers counted %d", got, stayed+churned)
	}
	if n := b.Channels(); n != channels {
		t.Errorf("Channels = %d after churn, want %d", n, channels)
	}
	for i := range channels {
		if n := b.Subscribers(fmt.Sprint("ch", i)); n != 1 {
			t.Errorf("ch%d has %d subscribers after churn, want 1", i, n)
		}
	}
}

// Close racing with subscribers leaves nothing subscribed.
func TestCloseRacingSubscribe(t *testing.T) {
	b := broker.NewInProcess()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := b.Subscribe(fmt.Sprint("c", w, "-", i), &counter{}); errors.Is(err, broker.ErrClosed) {
					return
				}
			}
		}()
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := b.Channels(); n != 0 {
		t.Errorf("Channels = %d after Close, want 0", n)
	}
}

// Subscribe and Unsubscribe cost O(1) amortized whatever the size of the
// channel: building a channel of n subscribers and emptying it again
// allocate a bounded number of bytes per subscriber, not O(n) each (a
// copied list made 50,000 subscribers cost 19 GB of allocations).
func TestSubscribeAndUnsubscribeAllocateAConstantPerSubscriber(t *testing.T) {
	const (
		n = 10_000
		// The list slot, the index entry and their growth slack; a copy of
		// the list per change would be 80 KB each at this size.
		maxPerSubscriber = 256
	)
	b := broker.NewInProcess()
	defer b.Close()
	subs := make([]*counter, n)
	for i := range subs {
		subs[i] = &counter{}
	}
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	tests := []struct {
		name string
		do   func(i int)
	}{
		{"subscribing one at a time", func(i int) {
			if _, err := b.Subscribe("big", subs[i]); err != nil {
				t.Fatal(err)
			}
		}},
		{"unsubscribing one at a time", func(i int) {
			if !b.Unsubscribe("big", subs[i]) {
				t.Fatalf("subscriber %d was not subscribed", i)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" allocates a constant per subscriber", func(t *testing.T) {
			// Publishes between the changes make the broker publish views of
			// the list, which later changes must not write into.
			bytes := allocated(func() {
				for i := range n {
					tt.do(i)
					if i%1000 == 0 {
						publish(t, b, "big", "m", b.Subscribers("big"))
					}
				}
			})
			if per := bytes / n; per > maxPerSubscriber {
				t.Errorf("%d bytes allocated per subscriber, want at most %d", per, maxPerSubscriber)
			}
		})
	}
	if n := b.Subscribers("big"); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
}

// A publish delivers to the subscribers of the moment it started, each
// once, even when the list changes in place under it: subscribers that
// join or leave meanwhile neither appear in it nor move within it.
func TestAPublishSeesTheSubscribersOfTheMomentItStarted(t *testing.T) {
	for _, n := range []int{8, 3*256 + 5} {
		t.Run(fmt.Sprintf("%d subscribers, one leaving from the front and one joining during the publish", n), func(t *testing.T) {
			b := broker.NewInProcess()
			defer b.Close()
			got := map[int]int{}
			var subs []*hook
			for i := range n {
				subs = append(subs, &hook{f: func() { got[i]++ }})
				subscribe(t, b, "c", subs[i])
			}
			publish(t, b, "c", "warm", n) // the list is in a published view now
			clear(got)
			// The first delivery changes the channel under the running
			// publish: subscriber 2 leaves (the last one moves into its
			// place), a new one joins.
			changed := false
			for _, s := range subs {
				s.before = func() {
					if !changed {
						changed = true
						b.Unsubscribe("c", subs[2])
						subscribe(t, b, "c", &hook{f: func() { got[-1]++ }})
					}
				}
			}
			publish(t, b, "c", "m", n)
			for i := range n {
				if got[i] != 1 {
					t.Fatalf("subscriber %d got the publish %d times, want once", i, got[i])
				}
			}
			if got[-1] != 0 {
				t.Fatal("a subscriber that joined during the publish got it")
			}
			clear(got)
			publish(t, b, "c", "next", n)
			for i := range n {
				if want := 1 - boolInt(i == 2); got[i] != want {
					t.Fatalf("next publish: subscriber %d got it %d times, want %d", i, got[i], want)
				}
			}
			if got[-1] != 1 {
				t.Fatalf("next publish: the subscriber that joined got it %d times, want once", got[-1])
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// hook is a Subscriber that runs before (if set) and then f on delivery.
type hook struct {
	before, f func()
}

func (h *hook) Deliver([]byte) {
	if h.before != nil {
		h.before()
	}
	h.f()
}

// Random subscribes, unsubscribes and publishes on one channel, across
// chunk boundaries and under published views: every publish reaches
// exactly the subscribers a plain set says are subscribed.
func TestRandomChangesKeepExactlyTheSubscribedSubscribers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := broker.NewInProcess()
	defer b.Close()
	const pool = 1500
	subs := make([]*counter, pool)
	for i := range subs {
		subs[i] = &counter{}
	}
	model := map[int]bool{}
	for op := range 20_000 {
		i := rng.IntN(pool)
		switch r := rng.IntN(100); {
		case r < 55:
			added, err := b.Subscribe("c", subs[i])
			if err != nil || added == model[i] {
				t.Fatalf("op %d: Subscribe(%d) = %v, %v; subscribed before: %v", op, i, added, err, model[i])
			}
			model[i] = true
		case r < 95:
			if removed := b.Unsubscribe("c", subs[i]); removed != model[i] {
				t.Fatalf("op %d: Unsubscribe(%d) = %v; subscribed before: %v", op, i, removed, model[i])
			}
			delete(model, i)
		default:
			before := make([]int64, pool)
			for j, s := range subs {
				before[j] = s.n.Load()
			}
			publish(t, b, "c", "m", len(model))
			for j, s := range subs {
				if want := int64(boolInt(model[j])); s.n.Load()-before[j] != want {
					t.Fatalf("op %d: subscriber %d got %d copies, want %d", op, j, s.n.Load()-before[j], want)
				}
			}
		}
		if n := b.Subscribers("c"); n != len(model) {
			t.Fatalf("op %d: Subscribers = %d, want %d", op, n, len(model))
		}
	}
}
