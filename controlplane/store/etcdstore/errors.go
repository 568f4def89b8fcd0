package etcdstore

import "errors"

// Errors of Open and Create name the endpoints and the prefix and say what
// is wrong; what an operator should do about it is the caller's to say
// (the control plane adds it, since it knows its flags).
var (
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("etcdstore: invalid config")
	// ErrUnavailable: etcd did not answer in time, or answered with an
	// error (unreachable, no leader, refused credentials).
	ErrUnavailable = errors.New("etcdstore: etcd unavailable")
	// ErrForeign: the prefix holds keys that are not a wsfleet store's.
	// They are never written over: another program (or another wsfleet
	// version's layout) owns them.
	ErrForeign = errors.New("etcdstore: the prefix holds keys that are not a wsfleet store's")
	// ErrNoIdentity: the prefix holds wsfleet keys but no store identity:
	// a damaged or partly deleted store. It is never initialised over,
	// which would give the fleet's revisions a new identity silently.
	ErrNoIdentity = errors.New("etcdstore: the prefix holds wsfleet data but no store identity")
	// ErrSchemaTooNew: the store was written by a newer wsfleet whose
	// layout this build does not understand.
	ErrSchemaTooNew = errors.New("etcdstore: store schema is newer than this build supports")
	// ErrExists: Create found a store under the prefix; it never replaces
	// one.
	ErrExists = errors.New("etcdstore: a store already exists under the prefix")
	// ErrReplaced: the identity under the prefix is no longer the one this
	// Store opened: the store was deleted and another created in its
	// place while this one ran.
	ErrReplaced = errors.New("etcdstore: the store under the prefix was replaced")
	// ErrCorrupt: a stored key or value cannot be decoded, or holds
	// another revision than its key says.
	ErrCorrupt = errors.New("etcdstore: corrupt data")
	// ErrInvalidRevision: Append got a nil revision or one without a pool.
	ErrInvalidRevision = errors.New("etcdstore: invalid revision")
)
