// Package protocol is the wire format between a client and a node: the small
// JSON text frames a WebSocket client uses to subscribe to, unsubscribe from
// and publish on channels, and the frames the node sends back.
//
// Client to node:
//
//	{"type":"subscribe","channel":"c"}
//	{"type":"unsubscribe","channel":"c"}
//	{"type":"publish","channel":"c","data":<any JSON>}
//
// Node to client:
//
//	{"type":"welcome","trace_id":"…","node_id":"…","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}
//	                                         (always the first frame after the 101: the
//	                                         connection's trace id and the heartbeat in
//	                                         force when it opened)
//	{"type":"subscribed","channel":"c"}      (the subscription is in effect)
//	{"type":"unsubscribed","channel":"c"}
//	{"type":"message","channel":"c","data":<the published JSON>}
//	{"type":"error","code":"<code>","message":"<text>"}
//
// Every client frame is untrusted input. DecodeClientFrame either returns a
// frame whose channel is a valid name and whose data is compact, valid JSON
// in valid UTF-8, or a *FrameError carrying one of the Code* constants. A bad
// frame is answered with an error frame and the connection stays open:
// closing is reserved for what the error-class table names (size, rate,
// UTF-8 at the WebSocket layer).
//
// # Cost
//
// Every message passes through here, and a message frame is encoded once per
// publish and shared by every subscriber, so the encoders append to a
// caller's buffer without reflection. The decoder lets encoding/json
// (json.Valid) decide whether a frame is valid JSON, then finds the three
// top-level values with a short walk over the validated bytes instead of
// unmarshalling through reflection: a small publish costs two allocations
// (the channel name and the data, both the caller's to keep) instead of
// eight. The fuzz target checks the walk against a plain encoding/json
// decode of the same frame.
//
// # Concurrency
//
// The package has no state and starts no goroutines; every function is safe
// for concurrent use and none blocks.
package protocol
