package admin

import "errors"

var (
	// ErrConfig: the Config cannot work (a certificate without its key, a
	// token that cannot travel in a header...).
	ErrConfig = errors.New("admin: invalid config")
	// ErrInsecureToken: a bearer token would go in plaintext to a host other
	// than this one, where anyone on the path could read and replay it.
	ErrInsecureToken = errors.New("admin: refusing to send a token in plaintext")
	// ErrTLS: the CA bundle or the client certificate could not be loaded.
	ErrTLS = errors.New("admin: cannot load TLS material")
)
