// Package protocol is the wire format between a client and a node: the small
// JSON text frames a WebSocket client uses to subscribe to, unsubscribe from
// and publish on channels, its application heartbeat, and the frames the
// node sends back.
//
// Client to node (every frame may carry an optional request id, "id": 1 to
// 64 bytes of [A-Za-z0-9._:-], echoed on the frame that answers it):
//
//	{"type":"subscribe","channel":"c","id":"1"}
//	{"type":"unsubscribe","channel":"c","id":"2"}
//	{"type":"publish","channel":"c","data":<any JSON>,"id":"3"}
//	{"type":"ping","id":"4"}                 (the application heartbeat: browsers cannot
//	                                         see WebSocket pings)
//
// Node to client:
//
//	{"type":"welcome","trace_id":"…","node_id":"…","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}
//	                                         (always the first frame after the 101: the
//	                                         connection's trace id and the heartbeat in
//	                                         force when it opened)
//	{"type":"subscribed","channel":"c","id":"1"}    (the subscription is in effect)
//	{"type":"unsubscribed","channel":"c","id":"2"}
//	{"type":"published","channel":"c","id":"3"}     (the broker took the publish; only
//	                                                for a publish that carried an id)
//	{"type":"pong","id":"4"}
//	{"type":"message","channel":"c","data":<the published JSON>}
//	{"type":"error","code":"<code>","message":"<text>","id":"3"}
//
// Each answer carries "id" exactly when the frame it answers had one; a
// message never does (it is one frame shared by every subscriber). An
// error frame carries the id of the frame it refuses when that id was
// valid, so a client can fail the one request; an invalid id is answered
// by bad_id without one.
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
// caller's buffer without reflection. The decoder decides whether a frame
// is valid JSON exactly as encoding/json's json.Valid would and finds the
// four top-level values it reads in the same single pass (scan.go),
// instead of unmarshalling through reflection: a small publish costs two
// allocations (the channel name and the data, both the caller's to keep)
// instead of eight, and an id one more. The fuzz targets hold the scanner
// to json.Valid and the decoder to a plain encoding/json decode of the same
// frame.
//
// # Concurrency
//
// The package has no state and starts no goroutines; every function is safe
// for concurrent use and none blocks.
package protocol
