package admission

import "errors"

var (
	// ErrInvalidConfig: the Config is invalid; the message names the field.
	ErrInvalidConfig = errors.New("admission: invalid config")
	// ErrInvalidPolicy: New or Update got a policy that does not pass
	// policy.Check; the running policy (if any) stays.
	ErrInvalidPolicy = errors.New("admission: invalid policy")
	// ErrAuthStatus: the connect-authorization endpoint answered a status
	// other than 2xx, 401 or 403. It counts as a breaker failure.
	ErrAuthStatus = errors.New("admission: connect authorization endpoint answered an unexpected status")
	// ErrAuthTimeout: the endpoint did not answer within Config.AuthTimeout.
	// It counts as a breaker failure.
	ErrAuthTimeout = errors.New("admission: connect authorization timed out")
	// ErrAuthUnavailable: the request to the endpoint failed (connection
	// refused, reset, DNS). It counts as a breaker failure.
	ErrAuthUnavailable = errors.New("admission: connect authorization endpoint unreachable")
	// ErrClientGone: the handshake's own context ended (the client went
	// away) while the endpoint was being asked. It is not the upstream's
	// fault, so the breaker ignores it.
	ErrClientGone = errors.New("admission: client went away during connect authorization")
)
