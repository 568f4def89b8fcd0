package wsclient

import (
	"errors"
	"fmt"
)

var (
	// ErrConfig: the Config cannot work (no URL, a URL that is not ws:// or
	// wss://, backoff bounds out of order, a negative limit).
	ErrConfig = errors.New("wsclient: invalid config")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("wsclient: already started")
	// ErrClosed: the client is closed, by Close or because a terminal
	// failure (Failure.Retryable false) stopped it; see Client.Failure.
	ErrClosed = errors.New("wsclient: client closed")
	// ErrNotConnected: Publish was called while no connection is up. A
	// publish is not queued across reconnects: what it carried may be stale
	// by then, and only the caller knows.
	ErrNotConnected = errors.New("wsclient: not connected")
	// ErrDisconnected: the connection ended before the node answered the
	// request; it may or may not have been carried out.
	ErrDisconnected = errors.New("wsclient: disconnected before the node answered")
	// ErrTimeout: the node did not answer the request within
	// Config.RequestTimeout.
	ErrTimeout = errors.New("wsclient: no answer from the node in time")
	// ErrBadRequest: the request cannot be sent as given (data that is not
	// JSON, an empty channel name).
	ErrBadRequest = errors.New("wsclient: bad request")
)

// ServerError is the node's error frame answering a request:
// {"type":"error","code":"…","message":"…","id":"…"}. Code is one of the
// protocol's codes (bad_channel, forbidden, unavailable, …); the connection
// stays open after it.
type ServerError struct {
	Code    string
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("wsclient: node refused: %s: %s", e.Code, e.Message)
}
