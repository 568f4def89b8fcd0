package loadgen

import "errors"

var (
	// ErrConfig: a scenario or run configuration cannot work (no target, a
	// count or duration out of range, an unknown scenario name).
	ErrConfig = errors.New("loadgen: invalid config")
	// ErrDial: a WebSocket handshake did not complete (refused, timed out,
	// or answered with a status other than 101).
	ErrDial = errors.New("loadgen: dial failed")
	// ErrReply: the server answered with something the scenario did not
	// send (an error frame, a wrong sequence number, a frame without one).
	ErrReply = errors.New("loadgen: unexpected reply")
	// ErrStalled: an awaited reply or delivery did not arrive in time.
	ErrStalled = errors.New("loadgen: no progress before the deadline")
	// ErrClosed: the server closed a connection the scenario still used.
	ErrClosed = errors.New("loadgen: connection closed by the server")
	// ErrChild: a child process (node, echo server, control plane, etcd,
	// nats-server) did not start, did not announce its address, or did not
	// exit cleanly.
	ErrChild = errors.New("loadgen: child process failed")
	// ErrControl: a call to the control plane's admin API (reading or
	// applying a policy) failed.
	ErrControl = errors.New("loadgen: control plane call failed")
	// ErrRSS: a process's resident set size could not be read.
	ErrRSS = errors.New("loadgen: cannot read RSS")
	// ErrCPU: a process's CPU time could not be read.
	ErrCPU = errors.New("loadgen: cannot read CPU time")
	// ErrPin: the servers or the load could not be pinned to their CPUs.
	ErrPin = errors.New("loadgen: cannot pin to CPUs")
	// ErrFiles: the descriptor limit is below what a scenario needs and
	// cannot be raised.
	ErrFiles = errors.New("loadgen: too few file descriptors")
	// ErrGoBench: the Go benchmark results (--go-bench) cannot be read,
	// or hold no result.
	ErrGoBench = errors.New("loadgen: cannot read the Go benchmark results")
)
