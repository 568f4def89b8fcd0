// Package natsbroker is the broker.Broker that carries channels between the
// nodes of a pool over NATS (core NATS: at most once, no persistence), so a
// message published on any node reaches every subscriber on every node.
//
// # Subjects and payload
//
// Every use of NATS goes through api/subject: a pool's channel is the
// subject wsfleet.<pool>.ch.<escaped channel>, and the payload is the JSON
// value a client published as "data", byte for byte. A backend already on
// NATS publishes to a channel by publishing there. What arrives is checked
// to be a JSON value in valid UTF-8 (any NATS client with permission can
// publish on the subject; a browser fails its connection on an invalid
// text frame); anything else is dropped and counted.
//
// # One subscription per channel per node
//
// The node subscribes on NATS once per channel, whatever the number of its
// clients on it: the channel's first local subscriber subscribes, its last
// one leaving unsubscribes (both under the channel's shard mutex, so they
// happen exactly once). Fan-out after the node stays local: a message from
// NATS is encoded into its message frame once (broker.InProcess.Fanout) and
// handed to every local subscriber's queue.
//
// A node does not deliver its own publishes directly: it receives them back
// from NATS like every other node and delivers them then, exactly once. So
// every subscriber of the pool sees the same messages in the same order per
// publisher, and while NATS is unreachable nobody sees a publish, local
// subscribers of the publishing node included: the publish is refused
// (broker.ErrNotConnected, a client gets an "unavailable" error frame)
// instead of reaching part of the pool. A client never sees a split view it
// cannot tell from a complete one.
//
// # Goroutines and blocking
//
// The client library (nats.go) owns the connection: it reads in one
// goroutine, writes buffered data in another, pings the server and redials
// for ever with jitter, restoring every subscription after a reconnect.
// It hands every received message to one pump goroutine, which routes it to
// the queue of one of Config.Dispatchers dispatcher goroutines (a channel
// always to the same one, so its messages stay in order); a dispatcher looks
// the channel's local subscribers up and calls their Deliver, which never
// blocks. The queues together hold at most Config.QueueLen messages and
// Config.QueueBytes bytes; beyond either the pump drops what arrives rather
// than stop the reader (and with it the pings that keep the connection
// alive). Between the reader and the pump, a hand-off channel of 256
// messages (each at most the server's max_payload) fills only while the
// pump waits for a CPU; the client library drops what it cannot hand over.
// Every drop is counted.
//
// Publish runs on the publisher's read loop and never waits for a
// reconnect: it fails at once while the connection is down, and buffers
// nothing for later. Connected, it appends to the client's buffer; a write
// to the server (the client's flusher, or Publish itself when the buffer is
// full) holds the client's lock for at most Config.WriteTimeout, after
// which the connection is dropped and redialled. A server that stopped
// answering but keeps its TCP connection (a stopped process, a dead host
// behind a live proxy) is noticed by unanswered pings within
// PingInterval × (MaxPingsOut+1); until then publishes are accepted and
// may be lost, as core NATS's at-most-once delivery allows. The node's
// broker.Guard adds a breaker on top, so a failing NATS costs no waiting at
// all once it has opened.
//
// Subscribe waits at most Config.SubscribeTimeout for the server to confirm
// a channel's first subscription (a ping round trip), and nothing while
// disconnected. Unsubscribe never waits for the server.
package natsbroker
