// Package deliveryclient is the node side of NodeService.Deliveries: the
// stream on which the control plane sends a node what backends publish to
// its pool (PublishService.Publish) when the control plane has no NATS.
// The data-plane node hands every delivery to its own subscribers of the
// channel; any service that fans out wsfleet channels may embed it.
//
// The client opens Deliveries naming its node id and pool (with the
// node's credential on the connection, as for the policy watch), and calls
// Config.Deliver with each delivery, in the order the control plane sent
// them. A delivery whose channel is not a valid name or whose data is not
// one JSON value in UTF-8 (api/channel) is dropped and counted: the node
// writes data into text frames for browsers, and must never write an
// invalid one whatever the control plane sends. Delivery is at most once:
// what is published while the stream is down is not resent.
//
// # Reconnecting
//
// Run retries for ever, until its context ends, with the SDK's full-jitter
// exponential backoff between MinBackoff and MaxBackoff; the backoff
// starts over after a healthy stream (one that delivered something or
// lasted longer than MaxBackoff). A control plane without the call
// (Unimplemented: older than the node) is retried at MaxBackoff. One
// warning per outage, retries at debug.
//
// # Goroutines and blocking
//
// Run's goroutine receives and calls Deliver; nothing else. Deliver must
// not block for long: while it runs, nothing is received, and the control
// plane skips this node once its queue for it is full. Status may be
// called from any goroutine.
package deliveryclient
