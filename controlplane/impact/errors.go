package impact

import "errors"

// ErrPolicy: a policy given to Compute has an allowlist that does not
// parse (it was validated before it was stored, so this is a bug or a
// policy from a newer build).
var ErrPolicy = errors.New("impact: policy allowlist does not parse")
