package wsclient

import (
	"encoding/json"
)

// The frames of the node's protocol this client speaks (package
// dataplane/protocol is the node's side; the SDK does not import it).

// clientFrame is every frame the client sends; empty fields are left out.
type clientFrame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	ID      string          `json:"id,omitempty"`
}

// nodeFrame is every frame the node sends, decoded into one struct.
type nodeFrame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	ID      string          `json:"id"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// welcome
	TraceID             string `json:"trace_id"`
	NodeID              string `json:"node_id"`
	HeartbeatIntervalMS int64  `json:"heartbeat_interval_ms"`
	HeartbeatTimeoutMS  int64  `json:"heartbeat_timeout_ms"`
}

const (
	typeWelcome      = "welcome"
	typeSubscribe    = "subscribe"
	typeSubscribed   = "subscribed"
	typeUnsubscribe  = "unsubscribe"
	typeUnsubscribed = "unsubscribed"
	typePublish      = "publish"
	typePublished    = "published"
	typeMessage      = "message"
	typeError        = "error"
	typePing         = "ping"
	typePong         = "pong"
)

// pingFrame is the application heartbeat.
var pingFrame = []byte(`{"type":"ping"}`)

func encode(f clientFrame) []byte {
	// A clientFrame always marshals: strings and validated raw JSON.
	b, _ := json.Marshal(f)
	return b
}
