package channel

import "errors"

var (
	// ErrName: not a valid channel name.
	ErrName = errors.New("channel: invalid name")
	// ErrData: not a valid message (one JSON value in UTF-8).
	ErrData = errors.New("channel: invalid data")
)
