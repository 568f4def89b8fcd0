// Package publish is the control plane's backend publish API: a product's
// backend pushes a message to a channel on every node of a pool without
// holding a WebSocket (PublishService.Publish over gRPC, POST /v1/publish
// over HTTP/JSON), and nodes receive what is published to their pool
// (NodeService.Deliveries) when there is no NATS.
//
// # A publish
//
// Publish checks, in order: the caller's rate (a token bucket per
// credential, golang.org/x/time/rate; ResourceExhausted with a RetryInfo
// when over); the request as a whole (pool a DNS label, channel a name of
// api/channel, data one JSON value in UTF-8 of at most Config.MaxBytes:
// InvalidArgument naming every bad field); the pool (auth.AuthorizePublish:
// a publisher only to its pools, an admin to any). The data is compacted
// (whitespace between tokens removed, as the node does for clients'
// publishes) and routed:
//
//   - With NATS (Config.NATS.URL): published to
//     api/subject.Channel(pool, channel) with the data as payload, exactly
//     the layout a backend already on NATS publishes to directly; every
//     node of the pool subscribed to the channel delivers it. The answer
//     waits until NATS confirms it has the message (a PING/PONG after it,
//     at most Config.Timeout): ROUTE_NATS.
//   - Without: queued on the delivery stream of every node of the pool
//     attached to this control plane, which hands it to its own
//     subscribers: ROUTE_NODES with how many nodes it was queued for and
//     how many were skipped because their queue was full. With several
//     control-plane replicas, only the nodes attached to the replica that
//     took the publish get it: run NATS for a pool spread over replicas.
//
// Delivery is at most once either way. A refusal that delivered nothing
// carries the NOT_DELIVERED ErrorInfo with its cause (api/channel): no
// node of the pool attached, NATS not connected (Unavailable), every
// queue or the byte buffer full, rate limited (ResourceExhausted). A
// NATS that took the message but did not confirm it in time is
// Unavailable with DELIVERY_UNCONFIRMED: subscribers may or may not get
// it. Every outcome is counted in wsfleet_control_publishes_total{result}.
//
// # Memory
//
// Everything a publisher or a node can make the control plane hold is
// bounded: a message by MaxBytes (and the gRPC receive limit, the HTTP
// body limit), each node's queue by NodeQueue messages, the data of all
// queued messages by MaxBufferedBytes (a message counts once however many
// queues hold it: they share it), the streams by MaxStreams, the rate
// limiters by a fixed table size.
//
// # Goroutines and blocking
//
// The package starts no goroutine of its own (nats.go runs its
// connection's). A publish runs on its caller's goroutine and never
// blocks on a node: it queues with non-blocking sends under its pool's
// mutex; with NATS it waits at most Config.Timeout for the confirmation.
// Each delivery stream is served by its gRPC handler goroutine, the only
// one that sends on it; a node that reads slowly fills its own queue and
// misses messages, nobody else waits. A stream ends when the node goes
// away, a newer stream of the same node id and credential replaces it
// (Aborted), or Shutdown (Unavailable).
package publish
