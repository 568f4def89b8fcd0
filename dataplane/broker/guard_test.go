package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// flaky is a Broker whose publishes fail with err while it is set.
type flaky struct {
	*broker.InProcess
	mu    sync.Mutex
	err   error
	calls int
}

func (f *flaky) Publish(ctx context.Context, channel string, data []byte) (int, error) {
	f.mu.Lock()
	f.calls++
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return f.InProcess.Publish(ctx, channel, data)
}

func (f *flaky) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *flaky) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func breakerPolicy(minSamples int32, open time.Duration) *wsfleetv1.BreakerPolicy {
	return &wsfleetv1.BreakerPolicy{
		FailureRatio:   0.5,
		MinSamples:     minSamples,
		Window:         durationpb.New(time.Minute),
		OpenDuration:   durationpb.New(open),
		HalfOpenProbes: 1,
	}
}

// states records a Guard's state changes.
type states struct {
	mu  sync.Mutex
	got []gobreaker.State
}

func (s *states) record(_, to gobreaker.State) {
	s.mu.Lock()
	s.got = append(s.got, to)
	s.mu.Unlock()
}

func (s *states) last() gobreaker.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return gobreaker.StateClosed
	}
	return s.got[len(s.got)-1]
}

func TestTheGuardOpensAfterFailuresAndRefusesWithoutTrying(t *testing.T) {
	inner := &flaky{InProcess: broker.NewInProcess()}
	st := &states{}
	g := broker.NewGuard(inner, breakerPolicy(4, time.Hour), st.record)
	defer g.Close()
	r := &recorder{}
	subscribe(t, g, "c", r)
	ctx := context.Background()

	if n, err := g.Publish(ctx, "c", []byte(`1`)); n != 1 || err != nil {
		t.Fatalf("Publish through a closed breaker = %d, %v; want 1, nil", n, err)
	}
	inner.set(broker.ErrNotConnected)
	for i := range 3 {
		if _, err := g.Publish(ctx, "c", []byte(`2`)); !errors.Is(err, broker.ErrNotConnected) {
			t.Fatalf("failing publish %d = %v, want the broker's ErrNotConnected", i, err)
		}
	}
	if g.State() != gobreaker.StateOpen || st.last() != gobreaker.StateOpen {
		t.Fatalf("after 3 failures of 4 samples the breaker is %v (told %v), want open", g.State(), st.last())
	}
	calls := inner.callCount()
	_, err := g.Publish(ctx, "c", []byte(`3`))
	if !errors.Is(err, broker.ErrBreakerOpen) || !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish through an open breaker = %v, want ErrBreakerOpen (an ErrUnavailable)", err)
	}
	if inner.callCount() != calls {
		t.Error("the open breaker still called the broker")
	}
	if got := broker.Reason(err); got != "breaker_open" {
		t.Errorf("Reason = %q, want breaker_open", got)
	}
}

func TestTheGuardClosesAgainWhenAProbeSucceeds(t *testing.T) {
	inner := &flaky{InProcess: broker.NewInProcess()}
	st := &states{}
	g := broker.NewGuard(inner, breakerPolicy(1, 50*time.Millisecond), st.record)
	defer g.Close()
	ctx := context.Background()
	inner.set(broker.ErrTimeout)
	_, _ = g.Publish(ctx, "c", []byte(`1`))
	if g.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %v after a failure with min_samples 1, want open", g.State())
	}
	inner.set(nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := g.Publish(ctx, "c", []byte(`2`)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the breaker did not let a probe through within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g.State() != gobreaker.StateClosed || st.last() != gobreaker.StateClosed {
		t.Fatalf("breaker %v (told %v) after a successful probe, want closed", g.State(), st.last())
	}
}

func TestWhatSaysNothingAboutTheBrokerDoesNotOpenTheGuard(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range []error{broker.ErrTooBig, broker.ErrClosed, context.Canceled} {
		t.Run(broker.Reason(err)+" is not a failure", func(t *testing.T) {
			inner := &flaky{InProcess: broker.NewInProcess()}
			g := broker.NewGuard(inner, breakerPolicy(1, time.Hour), nil)
			defer g.Close()
			inner.set(err)
			for range 5 {
				_, _ = g.Publish(cancelled, "c", []byte(`1`))
			}
			if g.State() != gobreaker.StateClosed {
				t.Fatalf("breaker %v after 5 × %v, want closed", g.State(), err)
			}
		})
	}
}

func TestAPolicyChangeKeepsOrResetsTheGuard(t *testing.T) {
	inner := &flaky{InProcess: broker.NewInProcess()}
	st := &states{}
	g := broker.NewGuard(inner, breakerPolicy(1, time.Hour), st.record)
	defer g.Close()
	inner.set(broker.ErrNotConnected)
	_, _ = g.Publish(context.Background(), "c", []byte(`1`))
	if g.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %v, want open", g.State())
	}
	g.Update(breakerPolicy(1, time.Hour))
	if g.State() != gobreaker.StateOpen {
		t.Fatal("the same thresholds reset the breaker; want it kept, open")
	}
	g.Update(breakerPolicy(2, time.Hour))
	if g.State() != gobreaker.StateClosed || st.last() != gobreaker.StateClosed {
		t.Fatalf("new thresholds left the breaker %v (told %v), want a new closed one", g.State(), st.last())
	}
}

func TestReasonNamesEveryBrokerError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{broker.ErrBreakerOpen, "breaker_open"},
		{broker.ErrNotConnected, "not_connected"},
		{broker.ErrTimeout, "timeout"},
		{broker.ErrUnavailable, "unavailable"},
		{broker.ErrTooBig, "too_big"},
		{broker.ErrClosed, "closed"},
		{context.Canceled, "canceled"},
		{errors.New("something else"), "error"},
	}
	listed := map[string]bool{}
	for _, r := range broker.Reasons() {
		listed[r] = true
	}
	for _, tt := range tests {
		if got := broker.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
		if tt.err != nil && !listed[tt.want] {
			t.Errorf("Reasons() lacks %q", tt.want)
		}
	}
}
