package auth

import "strings"

// AuthenticateToken is the identity of a bearer token presented outside
// gRPC (the web console's login, package console), checked against the
// same token set as every call. In dev mode every token is an admin named
// after it, as the user header names a dev caller. Errors are gRPC status
// errors (Unauthenticated).
func (a *Authenticator) AuthenticateToken(token string) (Identity, error) {
	token = strings.TrimSpace(token)
	if a.dev {
		return devIdentity(token), nil
	}
	return a.tokenIdentity(token)
}

// Dev reports whether authentication is off (dev mode).
func (a *Authenticator) Dev() bool { return a.dev }
