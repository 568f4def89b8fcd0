package etcdstatus

import "errors"

// ErrConfig: the Config is incomplete or out of range.
var ErrConfig = errors.New("etcdstatus: invalid config")
