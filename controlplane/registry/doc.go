// Package registry is the control plane's view of the fleet: every node's
// watch stream and status, and the push of each new policy revision to the
// nodes it concerns.
//
// Protocol (modelled on Envoy xDS, see NodeService.Watch): a node's first
// message is a hello; the registry answers with the node's effective
// policy — its pool's head revision, or default's when its pool has none —
// unless the hello says the node already runs it. Each push carries a new
// nonce; an ACK or NACK quoting an older nonce is stale and ignored. A
// NACKed revision is never pushed to that node again (while this process
// lives); the next newer one is.
//
// Goroutines and blocking: each Watch call runs in its gRPC stream
// goroutine plus one receive goroutine; nothing else. Commits reach streams
// through a one-slot channel per stream (latest wins: a stream that is busy
// sending just sees "something changed" once and reads the newest head), so
// Committed never blocks, whatever the number of nodes. The registry's
// mutex guards node status and the head cache and is never held across a
// send or a receive.
package registry
