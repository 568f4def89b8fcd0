// Package broker fans published messages out to the subscribers of a
// channel. Broker is the seam: InProcess is the default, and a distributed
// implementation (NATS between nodes) can later sit behind the same
// interface without the node changing.
//
// # Concurrency and blocking
//
// Every method of InProcess is safe for concurrent use, and InProcess starts
// no goroutines. Publish runs on the publisher's goroutine and calls
// Deliver on each subscriber in turn, so Deliver must not block: the node's
// session only enqueues to its bounded outgoing queue (and, when the queue
// is full, closes the slow consumer instead of waiting). Publish takes no
// lock: it loads the channel's subscriber list, an immutable slice, and
// walks it. Subscribe and Unsubscribe copy that list (O(subscribers of the
// channel), rare next to publishes) under the mutex of one of 64 shards, so
// writers of different channels rarely contend and never hold up a
// publisher.
//
// A publish sees the subscribers of the moment it loaded the list: a
// subscriber added meanwhile may miss it, one removed meanwhile may still
// get it. The session drops what arrives after it closed.
//
// # Messages
//
// The msg passed to Publish is shared by every subscriber, unencoded and
// uncopied: it is read-only from the moment Publish is called. Subscribers
// may keep it (queued for writing) as long as they only read it.
package broker
