package telemetry

import "errors"

var (
	// ErrConfig: the Config cannot work; the message names the field.
	ErrConfig = errors.New("telemetry: invalid config")
	// ErrRunning: Run was called while another Run of the same Reporter is
	// still going; one Reporter has one sending loop.
	ErrRunning = errors.New("telemetry: reporter is already running")
	// ErrNotRunning: Flush found events to deliver but no Run loop to
	// deliver them.
	ErrNotRunning = errors.New("telemetry: reporter is not running")
	// ErrFlush: Flush's context ended before the control plane acknowledged
	// every event recorded before the call.
	ErrFlush = errors.New("telemetry: flush incomplete")
	// ErrNotConnected: FinalFlush found events to deliver and no stream to
	// the control plane open to deliver them on.
	ErrNotConnected = errors.New("telemetry: not connected to the control plane")
	// ErrStreamEnded: the control plane closed the telemetry stream without
	// an error status; the reporter reconnects as after any other failure.
	ErrStreamEnded = errors.New("telemetry: control plane ended the stream")
)
