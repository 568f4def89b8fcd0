package replicas

import "errors"

// ErrConfig: the Config is incomplete or out of range.
var ErrConfig = errors.New("replicas: invalid config")
