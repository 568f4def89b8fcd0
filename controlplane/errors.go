package controlplane

import "errors"

var (
	// ErrConfig: the Config is invalid; the message names the field.
	ErrConfig = errors.New("controlplane: invalid config")
	// ErrDevNotLoopback: --dev (no auth) on an address other than loopback.
	ErrDevNotLoopback = errors.New("controlplane: --dev is allowed only on loopback addresses")
)
