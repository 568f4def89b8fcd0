package policyserver

import "errors"

// ErrConfig: the server's Config is incomplete.
var ErrConfig = errors.New("policyserver: invalid config")
