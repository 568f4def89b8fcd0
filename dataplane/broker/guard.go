package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// guardBuckets cuts the breaker's rolling window into buckets, as the
// connect-authorization breaker does (dataplane/admission): old failures
// age out a tenth of the window at a time.
const guardBuckets = 10

// guardSettings is the part of a policy the breaker is built from; equal
// settings keep the breaker (and its state) across Update.
type guardSettings struct {
	failureRatio float64
	minSamples   uint32
	window       time.Duration
	openDuration time.Duration
	probes       uint32
}

func guardSettingsOf(p *wsfleetv1.BreakerPolicy) guardSettings {
	return guardSettings{
		failureRatio: p.GetFailureRatio(),
		minSamples:   uint32(p.GetMinSamples()),
		window:       p.GetWindow().AsDuration(),
		openDuration: p.GetOpenDuration().AsDuration(),
		probes:       uint32(p.GetHalfOpenProbes()),
	}
}

// readyToTrip opens the breaker once min_samples publishes in the window
// have an outcome and failures reach failure_ratio of them (publishes in
// flight have no outcome yet and do not dilute the ratio).
func (s guardSettings) readyToTrip(c gobreaker.Counts) bool {
	samples := c.TotalSuccesses + c.TotalFailures
	if samples == 0 || samples < s.minSamples {
		return false
	}
	return float64(c.TotalFailures) >= s.failureRatio*float64(samples)
}

// GuardStateFunc is told of every state change of a Guard's current
// breaker. It runs with the breaker's lock held: it must not block or call
// back into the Guard.
type GuardStateFunc func(from, to gobreaker.State)

// Guard puts a distributed broker behind a circuit breaker whose thresholds
// are the policy's breaker section (the same section the connect
// authorization uses, each with its own breaker). Once the broker fails
// often enough, publishes are refused at once with ErrBreakerOpen instead of
// each waiting out the broker's own bound; after open_duration,
// half_open_probes publishes try the broker again and close the breaker
// when they succeed.
//
// Subscribe, Unsubscribe and Close go straight to the broker: a
// subscription costs the broker no waiting (NATS registers it locally and
// restores it after a reconnect).
//
// What counts: a publish that fails with anything but ErrClosed, ErrTooBig
// or a cancelled context is a failure; a publish that succeeds is a
// success. The in-process broker needs no Guard: it cannot fail.
type Guard struct {
	inner   Broker
	onState GuardStateFunc

	mu  sync.Mutex // serializes Update
	cur atomic.Pointer[guardBreaker]
}

type guardBreaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	settings guardSettings
}

var _ Broker = (*Guard)(nil)

// NewGuard wraps inner with a closed breaker built from p. onState may be
// nil.
func NewGuard(inner Broker, p *wsfleetv1.BreakerPolicy, onState GuardStateFunc) *Guard {
	g := &Guard{inner: inner, onState: onState}
	g.cur.Store(g.newBreaker(guardSettingsOf(p)))
	return g
}

func (g *Guard) newBreaker(s guardSettings) *guardBreaker {
	b := &guardBreaker{settings: s}
	var bucket time.Duration
	if s.window >= guardBuckets {
		bucket = s.window / guardBuckets
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         "broker",
		MaxRequests:  s.probes,
		Interval:     s.window,
		BucketPeriod: bucket,
		Timeout:      s.openDuration,
		ReadyToTrip:  s.readyToTrip,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// A breaker replaced by Update may still see the outcome of
			// publishes that started on it; only the current one reports.
			if g.onState != nil && g.cur.Load() == b {
				g.onState(from, to)
			}
		},
		// The node shutting down, or a message over the broker's size
		// limit, says nothing about the broker's health.
		IsExcluded: func(err error) bool {
			return errors.Is(err, ErrClosed) || errors.Is(err, ErrTooBig) ||
				errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		},
	})
	return b
}

// Update takes a new policy's breaker section. Changed thresholds start a
// new, closed breaker with empty counts (reported as a change to closed
// when the old one was not); unchanged ones keep the breaker and its state.
func (g *Guard) Update(p *wsfleetv1.BreakerPolicy) {
	s := guardSettingsOf(p)
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.cur.Load()
	if old.settings == s {
		return
	}
	g.cur.Store(g.newBreaker(s))
	if st := old.cb.State(); st != gobreaker.StateClosed && g.onState != nil {
		g.onState(st, gobreaker.StateClosed)
	}
}

// State is the current breaker's state.
func (g *Guard) State() gobreaker.State { return g.cur.Load().cb.State() }

// Subscribe subscribes on the broker; see Broker.
func (g *Guard) Subscribe(channel string, s Subscriber) (bool, error) {
	return g.inner.Subscribe(channel, s)
}

// Unsubscribe unsubscribes on the broker; see Broker.
func (g *Guard) Unsubscribe(channel string, s Subscriber) bool {
	return g.inner.Unsubscribe(channel, s)
}

// Publish publishes through the breaker: ErrBreakerOpen while it is open
// (or half-open with every probe taken), the broker's own answer otherwise.
func (g *Guard) Publish(ctx context.Context, channel string, data []byte) (int, error) {
	var n int
	_, err := g.cur.Load().cb.Execute(func() (struct{}, error) {
		var err error
		n, err = g.inner.Publish(ctx, channel, data)
		return struct{}{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return 0, ErrBreakerOpen
	}
	return n, err
}

// Close closes the broker.
// PublishLocal implements Broker: it stays on this node, so the breaker,
// which guards the network, does not apply.
func (g *Guard) PublishLocal(channel string, data []byte) (int, error) {
	return g.inner.PublishLocal(channel, data)
}

func (g *Guard) Close() error { return g.inner.Close() }
