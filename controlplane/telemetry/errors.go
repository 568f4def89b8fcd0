package telemetry

import "errors"

// ErrConfig: the store's Config is invalid.
var ErrConfig = errors.New("telemetry: invalid config")
