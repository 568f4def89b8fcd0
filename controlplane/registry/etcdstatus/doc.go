// Package etcdstatus shares the registry's node status among the
// control-plane replicas of one etcd store, so that every replica lists
// the whole fleet (wsctl nodes list) and a node whose replica died shows
// disconnected within the replica's lease TTL.
//
// # Layout
//
// Under the store's prefix P (see package etcdstore), next to the
// replicas' own keys (package replicas):
//
//	P fleet/nodes/<replica-id>/<node-id>     the node's last known status as that replica has it:
//	                                          a layout version byte (1), a flags byte (1: the node
//	                                          reported the revision it runs), proto.Marshal(NodeStatus)
//	P fleet/presence/<replica-id>/<node-id>  empty, bound to the replica's lease: the node's watch
//	                                          stream is attached to that replica now
//
// Keys are per replica, so no two replicas ever write the same key and no
// write needs a compare. A replica id has no "/"; a node id may, and is
// the rest of the key.
//
// # Writes
//
// The registry notes which of its nodes changed (an attach, a detach, an
// ACK or NACK, a push, a telemetry batch); Run writes their status,
// coalesced: a node's status is written at most once per WriteInterval
// (the first change after a quiet interval a tenth of it later, so that
// the changes of a burst share transactions; later ones at the end of the
// interval, the newest status then), at most maxBatch nodes (and
// maxBatchBytes) per etcd transaction, one transaction at a time. So the write rate is at
// most one per node per interval and never more than etcd absorbs: while
// a transaction is under way changes only mark nodes, and the set of
// nodes waiting is bounded by the nodes the registry knows. A node's
// presence key is put with its first write while attached (and again
// under each new lease) and deleted when it detaches; the status record
// outlives it, so a disconnected node is still listed with its last
// revision and last-seen time. A record is deleted when the registry
// forgets its node (ForgetAfter, or evicted for room); the records of a
// replica that is gone are deleted by the other replicas once their node
// has not been seen for ForgetAfter (in one transaction comparing the
// record's version, its presence key and the replica's key, so that a
// rewrite, an attached node or a replica that is only slow to show up
// here is never deleted). Nothing of this blocks a watch
// stream: a stream's change is a map insert in the registry.
//
// # Reads
//
// Run keeps a copy of every other replica's records and presence keys
// (package etcdmirror) in the registry (registry.PutPeer and the rest),
// whose bounds (MaxNodes, MaxNodesBytes) apply to them too. Records this
// replica wrote are skipped: its registry has them first-hand.
//
// # When etcd is away
//
// The registry keeps serving its own nodes; writes are retried with
// backoff (the latest status of each node, never a queue of old ones).
// Degraded says why the view may be incomplete or stale — no lease, the
// copy's watch broken, writes failing — and ListNodes carries it.
//
// Goroutines: Run runs in its caller's goroutine plus one for the copy;
// both end before it returns. Degraded may be called from any goroutine.
package etcdstatus
