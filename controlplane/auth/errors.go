package auth

import "errors"

var (
	// ErrTokensFile: the tokens file cannot be read or is invalid.
	ErrTokensFile = errors.New("auth: invalid tokens file")
	// ErrNoTokens: authentication is on but no token is configured.
	ErrNoTokens = errors.New("auth: no tokens configured")
	// ErrPatterns: a list of node or pool patterns is invalid.
	ErrPatterns = errors.New("auth: invalid patterns")
	// ErrCertIdentity: a client certificate names no node this control
	// plane can tell apart from any other.
	ErrCertIdentity = errors.New("auth: the client certificate names no node")
)
