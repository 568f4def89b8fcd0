package publish

import "errors"

var (
	// ErrConfig: the Config is invalid; the message names the field and
	// its flag.
	ErrConfig = errors.New("publish: invalid config")
	// ErrNATS: the NATS connection cannot be set up (bad URL, unreadable
	// credentials or TLS files). A NATS server that is down is not an
	// error: the control plane starts and publishes are refused until it
	// connects.
	ErrNATS = errors.New("publish: cannot set up NATS")
)
