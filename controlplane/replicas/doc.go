// Package replicas is a control-plane replica's membership among the
// replicas sharing one etcd store: a lease of its own, kept alive while the
// process lives, and a key bound to it that says where the others reach it.
//
// # Layout
//
// Under the store's prefix P (see package etcdstore):
//
//	P fleet/replicas/<replica-id>   {"addr": "<advertised gRPC address>", "started": "<RFC 3339>"}
//
// bound to the replica's lease. A replica id is random, made once per
// process ("r-" and 16 hex digits): a restarted replica is a new one. The
// node status the replicas share (package registry/etcdstatus) lives under
// P fleet/ too, its presence keys bound to the same lease, so a replica
// that dies takes its key and its nodes' presence with it within the lease
// TTL.
//
// # The lease
//
// Run grants a lease of Config.LeaseTTL, puts the replica's key under it
// and keeps it alive (etcd's client renews it every TTL/3). When a renewal
// does not come back within the TTL (etcd unreachable, or the lease
// expired while this process was cut off) the lease is lost: Run grants a
// new one and puts the key again, retrying with backoff while etcd is
// unreachable; Lease then returns the new lease, and the channel it
// returned with the old one is closed, so that whoever bound keys to the
// lease puts them again. Degraded says why the membership is not sound
// (no lease, or a renewal overdue): the other replicas then see this one,
// and its nodes, as gone. When Run's context ends it revokes the lease, so
// a replica that stops cleanly is gone from every other replica's view at
// once rather than after the TTL.
//
// # Peers
//
// Run also keeps a copy of every replica's key (package etcdmirror): Peers
// lists the others, by id, for the queries that ask every replica (package
// telemetry/fanout).
//
// Goroutines: Run runs in its caller's goroutine plus one for the copy of
// the replicas' keys, and an etcd lessor of its own, all ended when it
// returns. Lease, Peers, Alive and Degraded may be called from any
// goroutine and never block on etcd.
package replicas
