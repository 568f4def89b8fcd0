package telemetry

import "errors"

var (
	// ErrConfig: the store's Config is invalid.
	ErrConfig = errors.New("telemetry: invalid config")
	// ErrTooManyTails: Config.MaxTails live tails are open already.
	ErrTooManyTails = errors.New("telemetry: too many live tails")
)
