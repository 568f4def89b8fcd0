package dataplane

import "errors"

var (
	// ErrConfig: the Config is invalid; the message names the field.
	ErrConfig = errors.New("dataplane: invalid config")
	// ErrInvalidPolicy: a policy failed validation; the message names every field.
	ErrInvalidPolicy = errors.New("dataplane: invalid policy")
	// ErrDraining: the node is shutting down.
	ErrDraining = errors.New("dataplane: node is draining")

	// errStreamBroken: a write to the client failed part-way, so nothing
	// more can be written on its connection, not even a close frame.
	errStreamBroken = errors.New("dataplane: an earlier write to the client failed; the stream is cut")
)
