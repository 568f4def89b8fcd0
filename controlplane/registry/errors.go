package registry

import "errors"

// ErrConfig: the registry's Config is incomplete.
var ErrConfig = errors.New("registry: invalid config")
