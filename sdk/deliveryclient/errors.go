package deliveryclient

import "errors"

var (
	// ErrConfig: the Config cannot work (no connection, no node id, no
	// Deliver, an invalid pool name, backoff bounds out of order).
	ErrConfig = errors.New("deliveryclient: invalid config")
	// ErrRunning: Run was called while another Run of the same Client is
	// still going.
	ErrRunning = errors.New("deliveryclient: Run is already running")
	// ErrStreamEnded: the control plane ended the stream without an error
	// status; the client reconnects as after any other failure.
	ErrStreamEnded = errors.New("deliveryclient: the control plane ended the delivery stream")
)
