// Package broker fans published messages out to the subscribers of a
// channel. Broker is the seam: InProcess is the default (channels stop at
// the node), natsbroker carries channels between the nodes of a pool over
// NATS, and Guard puts a breaker in front of a broker that can fail.
//
// # Messages
//
// Publish takes the JSON value a client published ("data"), not a frame:
// NATS carries it as it is (api/subject), and each node encodes the message
// frame, {"type":"message","channel":…,"data":…}, once for all its
// subscribers (InProcess.Fanout). That frame is shared by every subscriber,
// uncopied: it is read-only from the moment Deliver is called. Subscribers
// may keep it (queued for writing) as long as they only read it. A publish
// to a channel with no local subscriber encodes nothing.
//
// # Concurrency and blocking
//
// Every method of InProcess is safe for concurrent use, and InProcess starts
// no goroutines. Publish runs on the publisher's goroutine and calls
// Deliver on each subscriber in turn, so Deliver must not block: the node's
// session only enqueues to its bounded outgoing queue (and, when the queue
// is full, closes the slow consumer instead of waiting). Subscribe and
// Unsubscribe change a channel's list in place, in O(1) amortized whatever
// its size (an index per subscription finds a duplicate or the subscriber
// to remove; a removal moves the last subscriber into the hole), under the
// mutex of one of 64 shards, so writers of different channels rarely
// contend. A subscription holds about 70 bytes (BenchmarkBuildChannel).
// Publish takes no lock and allocates nothing but the frame: it walks an
// immutable view of the list. A change drops the view; the next publish
// takes the shard mutex once to publish a new one, which shares the list's
// chunks of 256 subscribers (copying one slice header per chunk), and a
// removal copies the chunks it writes if a view may have them. So a
// publish never waits for a subscriber, nor a subscriber for a publish
// (however many subscribers it walks), and Deliver may call back into the
// broker.
//
// A publish sees the subscribers of the moment it loaded the list: a
// subscriber added meanwhile may miss it, one removed meanwhile may still
// get it. The session drops what arrives after it closed.
//
// # Failures
//
// InProcess fails only after Close. A distributed broker refuses a publish
// it cannot carry with ErrUnavailable or an error wrapping it
// (ErrNotConnected, ErrTimeout), or ErrTooBig; the message then reached
// nobody, and Reason names the cause for metrics. Guard counts those
// failures with the policy's breaker thresholds and, once open, refuses
// publishes at once with ErrBreakerOpen; it takes a lock per publish (the
// breaker's), which is why the node puts no Guard in front of InProcess.
package broker
