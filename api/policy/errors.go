package policy

import "errors"

var (
	// ErrInvalidOrigin: an allowlist entry is not a valid origin pattern.
	ErrInvalidOrigin = errors.New("policy: invalid origin pattern")
	// ErrInvalidPoolName: a pool name is not a DNS label.
	ErrInvalidPoolName = errors.New("policy: invalid pool name")
	// ErrInvalidPolicy: a policy has at least one field violation; Check
	// wraps it with the list of violations.
	ErrInvalidPolicy = errors.New("policy: invalid policy")
)

// ErrInvalidSelector: a label selector (RolloutSpec.selector) does not
// parse.
var ErrInvalidSelector = errors.New("policy: invalid label selector")
