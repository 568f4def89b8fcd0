package admission

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// breakerBuckets is how many buckets the rolling window is cut into: old
// failures age out a tenth of the window at a time instead of all at once
// at the end of a fixed window.
const breakerBuckets = 10

// breakerSettings is the part of a policy the breaker is built from; equal
// settings keep the breaker (and its state) across Update.
type breakerSettings struct {
	failureRatio float64
	minSamples   uint32
	window       time.Duration
	openDuration time.Duration
	probes       uint32
}

func breakerSettingsOf(p *wsfleetv1.BreakerPolicy) breakerSettings {
	return breakerSettings{
		failureRatio: p.GetFailureRatio(),
		minSamples:   uint32(p.GetMinSamples()),
		window:       p.GetWindow().AsDuration(),
		openDuration: p.GetOpenDuration().AsDuration(),
		probes:       uint32(p.GetHalfOpenProbes()),
	}
}

// breaker wraps the gobreaker circuit breaker around connect authorization
// with what gobreaker does not expose: when it last opened, for Retry-After.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	settings breakerSettings
	// openedAt is monoNow() at the last transition to open.
	openedAt atomic.Int64
}

// newBreaker builds a closed breaker. onChange is told of every state
// change; gobreaker calls it with its own lock held.
func newBreaker(s breakerSettings, onChange func(b *breaker, from, to gobreaker.State)) *breaker {
	b := &breaker{settings: s}
	var bucket time.Duration
	if s.window >= breakerBuckets {
		bucket = s.window / breakerBuckets
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         "connect-authorization",
		MaxRequests:  s.probes,
		Interval:     s.window,
		BucketPeriod: bucket,
		Timeout:      s.openDuration,
		ReadyToTrip:  s.readyToTrip,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(monoNow())
			}
			if onChange != nil {
				onChange(b, from, to)
			}
		},
		// A client that leaves mid-call says nothing about the upstream.
		IsExcluded: func(err error) bool { return errors.Is(err, ErrClientGone) },
	})
	return b
}

// readyToTrip opens the breaker once min_samples calls in the window have
// an outcome and failures reach failure_ratio of them. Calls still in
// flight have no outcome yet; counting them (as Counts.Requests does) would
// dilute the ratio exactly when a slow upstream piles requests up.
func (s breakerSettings) readyToTrip(c gobreaker.Counts) bool {
	samples := c.TotalSuccesses + c.TotalFailures
	if samples == 0 || samples < s.minSamples {
		return false
	}
	return float64(c.TotalFailures) >= s.failureRatio*float64(samples)
}

// retryAfter is the time left until the breaker lets probes through, as
// gobreaker will decide it (it uses the wall clock's monotonic reading, as
// monoNow does).
func (b *breaker) retryAfter() time.Duration {
	left := b.settings.openDuration - time.Duration(monoNow()-b.openedAt.Load())
	return roundRetryAfter(left)
}

// monoBase anchors monoNow; time.Since reads the monotonic clock, so a wall
// clock step cannot stretch or shrink a Retry-After.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }
