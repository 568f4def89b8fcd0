package dataplane

import (
	"context"
	"encoding/json"
)

// ConnInfo describes a connection to Hooks. Origin, RemoteAddr and
// UserAgent are as the node keeps them: capped (Config.MaxOriginBytes and
// the rest; a longer value ends with clip.Mark) and valid UTF-8.
type ConnInfo struct {
	ConnID     string
	TraceID    string
	Origin     string
	RemoteAddr string
	UserAgent  string
}

// Hooks let a service that embeds the node take part in channel operations.
// They run on the connection's read goroutine: a slow hook slows only that
// connection. A hook that panics is recovered, its stack logged, and the
// connection closed with 1011 (internal_error); other connections are not
// affected.
type Hooks struct {
	// OnSubscribe, if set, may refuse a subscription: the client gets an
	// error frame with code "forbidden" and the error's text.
	OnSubscribe func(ctx context.Context, c ConnInfo, channel string) error
	// OnPublish, if set, may refuse a publication the same way.
	OnPublish func(ctx context.Context, c ConnInfo, channel string, data json.RawMessage) error
}
