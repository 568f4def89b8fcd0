package auth

import "errors"

var (
	// ErrTokensFile: the tokens file cannot be read or is invalid.
	ErrTokensFile = errors.New("auth: invalid tokens file")
	// ErrNoTokens: authentication is on but no token is configured.
	ErrNoTokens = errors.New("auth: no tokens configured")
)
