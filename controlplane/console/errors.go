package console

import "errors"

var (
	// ErrConfig: the console's Config is invalid.
	ErrConfig = errors.New("console: invalid config")
)
