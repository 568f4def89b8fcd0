package policyclient

import "errors"

var (
	// ErrConfig: the Config cannot work (no connection, no node id, no
	// Apply, an invalid pool name, backoff bounds out of order...).
	ErrConfig = errors.New("policyclient: invalid config")
	// ErrRunning: Run was called while another Run of the same Client is
	// still going. A Client has one watch stream at a time.
	ErrRunning = errors.New("policyclient: Run is already running")
	// ErrInvalidPush: the control plane pushed a revision that is not a
	// valid policy for this node; it is NACKed with this error's text and
	// never reaches Apply.
	ErrInvalidPush = errors.New("policyclient: refused pushed revision")
	// ErrBackwards: the control plane pushed a revision older than the one
	// the node runs for the same pool (a lower number, or the same number
	// with other content from another store): its store was reset or
	// replaced. The push is NACKed with this error's text and never
	// reaches Apply; the node keeps serving its revision until the control
	// plane recovers the pool's policy from the fleet (RecoverPolicy).
	ErrBackwards = errors.New("policyclient: revision went backwards")
	// ErrCache: the cache file could not be read, decoded, validated or
	// written.
	ErrCache = errors.New("policyclient: policy cache")
	// ErrStreamEnded: the control plane ended the watch stream without an
	// error status (it is shutting down or dropped the node); the client
	// reconnects as after any other failure.
	ErrStreamEnded = errors.New("policyclient: the control plane ended the watch stream")
)
