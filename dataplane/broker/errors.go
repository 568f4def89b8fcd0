package broker

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrClosed: the broker was closed; it accepts no more subscriptions or
	// publishes.
	ErrClosed = errors.New("broker: closed")
	// ErrEmptyChannel: a channel name must not be empty.
	ErrEmptyChannel = errors.New("broker: empty channel name")
	// ErrNilSubscriber: Subscribe was given a nil Subscriber.
	ErrNilSubscriber = errors.New("broker: nil subscriber")

	// ErrUnavailable: a distributed broker cannot carry a publish now. The
	// message reached nobody; a client may retry. The errors below say why,
	// and each wraps it.
	ErrUnavailable = errors.New("broker: unavailable")
	// ErrNotConnected: the broker is not connected to its server (it
	// reconnects by itself) and refuses publishes meanwhile instead of
	// buffering them for an unknown time.
	ErrNotConnected = fmt.Errorf("%w: not connected to the message server", ErrUnavailable)
	// ErrTimeout: the server did not take the message within the broker's
	// write timeout (it is stalled or far too slow).
	ErrTimeout = fmt.Errorf("%w: the message server did not take the message in time", ErrUnavailable)
	// ErrBreakerOpen: Guard's breaker opened after broker failures; it
	// refuses publishes without trying until its open duration ends.
	ErrBreakerOpen = fmt.Errorf("%w: breaker open after broker failures", ErrUnavailable)

	// ErrTooBig: the message is over what the broker carries (NATS's
	// max_payload). Retrying does not help; it says nothing about the
	// broker's health.
	ErrTooBig = errors.New("broker: message over the broker's maximum payload")
)

// Reason names why a publish failed, for a metric label: "ok" for nil,
// "breaker_open", "not_connected", "timeout", "unavailable" (another
// ErrUnavailable), "too_big", "closed", "canceled" or "error".
func Reason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBreakerOpen):
		return "breaker_open"
	case errors.Is(err, ErrNotConnected):
		return "not_connected"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrTooBig):
		return "too_big"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

// Reasons lists every value Reason returns but "ok", so a metric can show
// each at zero before it first happens.
func Reasons() []string {
	return []string{"breaker_open", "not_connected", "timeout", "unavailable", "too_big", "closed", "canceled", "error"}
}
