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
	// ErrPaging: a server's pages of a listing do not advance (a server
	// bug): AllNodes stops instead of looping.
	ErrPaging = errors.New("admin: the listing's pages do not advance")

	// How a call failed, as far as its effect is known (see CallError).

	// ErrUnreachable: no connection to the control plane could be made
	// (refused, no route, unknown name, TLS handshake failed, or none
	// before the call's deadline). The call was never sent: nothing
	// changed.
	ErrUnreachable = errors.New("admin: control plane unreachable")
	// ErrStoreUnavailable: the control plane answered that its policy store
	// failed; nothing was stored. Retrying later is safe.
	ErrStoreUnavailable = errors.New("admin: the control plane's policy store failed")
	// ErrOutcomeUnknown: a write (apply, rollback, recover, or a proposal's
	// propose, approve, reject) was sent, and
	// the connection broke, the deadline passed or the call was cancelled
	// before the answer came. The control plane may or may not have stored
	// it: read the pool's history before retrying.
	ErrOutcomeUnknown = errors.New("admin: the outcome of the write is unknown")
	// ErrConnectionLost: a call that changes nothing (a read, a dry run)
	// was sent and the connection broke before the answer. Retrying is
	// safe.
	ErrConnectionLost = errors.New("admin: the connection broke during the call")
)
