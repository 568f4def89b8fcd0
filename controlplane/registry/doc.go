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
// lives, and until the node reports running a newer revision of that pool);
// the next newer one is.
//
// Identity: a hello's node id and pool must be among those the stream's
// credential may act as (auth.AuthorizeNode on the identity the
// interceptors stored in the context), else PermissionDenied naming both.
// A stream replaces an attached one for the same id only when it comes
// with the same credential (auth.Identity.Credential: token name or
// certificate identity); another is refused with AlreadyExists and the
// attached stream goes on. NACK memory and the shown NACK are only ever
// set by the node's own stream, and are forgotten when a stream of another
// credential attaches.
//
// What a node runs: the hello carries the node's running revision whole
// (pool, number, store identity, content); each ACK replaces it with the
// revision acknowledged. A node is up to date only with the head of the
// same store: a node on the same number from another store is pushed the
// head. ListNodes marks a node ahead when it runs a revision this control
// plane does not have (a higher number than the head of that pool, a pool
// with no head, or the head's number from another store): the store was
// reset or replaced while the node kept running, and the node NACKs the
// older head it is offered, keeping its status. Running hands what the
// fleet runs to RecoverPolicy, which stores it as the pool's next revision
// above every reported number; the normal push then reaches every node.
//
// Capacity: a hello is checked against caps on every string it carries
// (node id, pool, address, build, labels: at most 64, each key and value
// and all of them together capped; the running revision) and refused with
// InvalidArgument naming the field: nodes are ours, so an oversized hello
// is a misconfiguration to be loud about. The registry knows at most
// Config.MaxNodes nodes and Config.MaxNodesBytes of their estimated
// memory; a new node beyond either makes it forget the disconnected node
// seen longest ago, and when every known node is connected the new one is
// refused with ResourceExhausted (a node reporting telemetry without
// watching is then just not listed). Nodes running the head revision
// share it instead of each keeping a copy. ListNodes pages through the
// nodes in id order (a sorted index), each page bounded in nodes and in
// encoded bytes; its token is the last id listed, so paging works while
// nodes come and go.
//
// Shared status (Config.Shared, with several control-plane replicas on
// one etcd store): the registry notes every status change of its own
// nodes (Dirty, TakeDirty, Local) for package registry/etcdstatus to
// write to etcd, and keeps the records the other replicas write there
// (PutPeer, SetPeerPresent, DeletePeer, BeginPeerSync/EndPeerSync), so
// that ListNodes lists the whole fleet, each node once (see merged in
// shared.go: the replica the node is attached to speaks for it, its
// counters add up every replica's). Those records count against MaxNodes
// and MaxNodesBytes like its own nodes; one that does not fit is not
// kept, and ListNodes says its view is degraded. Pushes, NACK memory and
// Running stay this replica's own: a node is pushed by the replica it is
// attached to. ahead and head_revision are computed from this replica's
// heads, which follow the shared store, so every replica shows the same.
//
// Where heads come from: the store's watch (store.Store.WatchHeads),
// which Follow consumes, so a revision committed through any control-plane
// replica sharing the store is pushed to the nodes attached to this one;
// nothing in this process hands the registry its own commits. A head is
// taken only if it is newer than the one the registry has for the pool.
//
// Canary rollouts: while a pool's head carries a rollout (a baking
// canary, see policyserver), it is pushed only to the nodes of that pool
// whose hello labels its selector matches; every other node of the pool,
// and every node that falls back to the pool, gets or keeps the rollout's
// base revision, which advance reads through Config.Revision before it
// takes the lock and keeps with the head; when that read fails, a stream
// waiting for the base reads it again (readBase: one read at a time, at
// most every Config.BaseRetry, blocking only that stream's goroutine). A
// node that already runs the canary revision keeps it whatever its labels
// say now: the base is a lower number it would refuse. ListNodes'
// head_revision is what the node should run (canary or base). The
// revision that ends the rollout is an ordinary head: every node gets it.
//
// Goroutines and blocking: each Watch call runs in its gRPC stream
// goroutine plus one receive goroutine; Follow runs in its caller's
// goroutine (the control plane's Run). New heads reach streams through a
// one-slot channel per stream (latest wins: a stream that is busy sending
// just sees "something changed" once and reads the newest head), so
// Follow never waits for a node, whatever the number of nodes. The registry's
// mutex guards node status and the head cache and is never held across a
// send or a receive.
package registry
