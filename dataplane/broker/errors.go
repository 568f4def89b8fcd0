package broker

import "errors"

var (
	// ErrClosed: the broker was closed; it accepts no more subscriptions or
	// publishes.
	ErrClosed = errors.New("broker: closed")
	// ErrEmptyChannel: a channel name must not be empty.
	ErrEmptyChannel = errors.New("broker: empty channel name")
	// ErrNilSubscriber: Subscribe was given a nil Subscriber.
	ErrNilSubscriber = errors.New("broker: nil subscriber")
)
