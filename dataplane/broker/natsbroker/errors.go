package natsbroker

import "errors"

// ErrConfig: the Config is invalid; the message names the field.
var ErrConfig = errors.New("natsbroker: invalid config")
