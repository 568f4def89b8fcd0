package traffic

import "errors"

// ErrConfig: the Config cannot work; the message names the field.
var ErrConfig = errors.New("traffic: invalid config")
