package rollout

import "errors"

// ErrConfig: the Evaluator's Config is incomplete.
var ErrConfig = errors.New("rollout: invalid config")
