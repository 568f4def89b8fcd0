// Package policyclient is the embeddable client of the control plane's
// policy stream (NodeService.Watch). Any Go service that enforces wsfleet
// policy embeds it; the data-plane node is its first user.
//
// The protocol is modelled on Envoy xDS. The client opens Watch and says
// hello: node id, pool, labels, build, address, and the revision and pool it
// already runs. The control plane pushes a WatchResponse{revision, nonce}
// whenever the node's effective policy changes (its pool's, or the default
// pool's when its pool has none). The client validates the revision with
// api/policy, hands it to Config.Apply, and answers PolicyAck{nonce} when
// Apply returns nil or PolicyNack{nonce, error} when it returns an error (or
// when the revision is invalid, which never reaches Apply); after a NACK the
// last good revision stays.
//
// # Latest wins
//
// Pushes go through a one-slot channel that the receive loop empties before
// each send, as grpc-go's health server does: when several pushes arrive
// while Apply is busy, only the newest is applied and ACKed, and the
// skipped ones are never answered (the control plane ignores stale nonces).
// A slow Apply therefore never blocks the stream. A push whose revision is
// the one already applied (same pool, number and policy) is ACKed without
// calling Apply again.
//
// # Revisions never go backwards
//
// Every revision carries the identity of the store that issued it
// (store_id), and the hello carries the revision the node runs, whole
// (NodeHello.running). A push of the pool the node runs with a lower
// number, or with the same number and other content from another store, is
// NACKed with ErrBackwards ("revision went backwards: running default@81
// from store A, offered default@1 from store B") without reaching Apply,
// and the node keeps serving what it runs: a control plane whose store was
// reset must not roll the fleet back. So is default's revision offered to a
// node that runs its own pool's (pools are never deleted; the control plane
// lost that pool). The control plane shows such a node as ahead and can
// make what the fleet runs its next revision (RecoverPolicy), numbered
// above every revision the fleet reports, which every node then applies. A
// node's first revision of its own pool after default's is not backwards.
//
// # Reconnecting
//
// Run retries for ever, until its context ends: after every stream that
// ends, it sleeps rand[0, min(MaxBackoff, MinBackoff·2^attempt)) (full
// jitter), and attempt starts over after a healthy stream, one that
// delivered a push or lasted longer than MaxBackoff. Every stream starts
// with a hello carrying the last good revision, so the node resumes where it
// was and the control plane resends only what changed. The client has no
// idle timeout: a watch stream may carry nothing for days. Dead connections
// are found by gRPC keepalive on the caller's ClientConn. A ClientConn that
// spans several control-plane replicas (sdk/admin Config.Addr) sends the
// next stream to another replica when its replica dies; the hello makes it
// resume there, and the replica pushes its head only if it is newer.
//
// Status.Connected turns true when the control plane answers on a stream:
// response headers or a push. A watch server should therefore send its
// headers (grpc.ServerStream.SendHeader) as soon as it has accepted the
// hello, or a node that is already up to date reads as not connected.
//
// # Cache
//
// With Config.CacheFile set, the last good revision (store_id included) is
// written after each successful Apply and before its ACK, as protojson (indented, proto field
// names; readable with cat or jq), atomically: a temporary file in the same
// directory, fsync, rename over the cache file, fsync of the directory. New
// reads it back; Cached returns it and the client counts it as applied
// (Ready, the hello), so the embedding code should start with it. A cache
// file that cannot be read, decoded or validated, or that holds a revision
// of a pool other than the node's or the default pool, is logged at warning
// level and ignored.
//
// # Logging
//
// One info line per connect, disconnect and applied revision, a warning per
// NACK and for the first failed attempt of an outage; further retries log at
// debug only, so a node that cannot reach its control plane for an hour
// does not flood its log.
//
// # Goroutines and blocking
//
// Run's goroutine is the receive loop: it dials, sends the hello and
// receives pushes, and never blocks on anything but the stream and the
// backoff sleep. Run starts one apply goroutine, the only one that calls
// Apply, writes the cache and sends ACKs and NACKs; gRPC adds its own per
// stream. Both stop before Run returns, which includes waiting for an Apply
// in progress: Apply gets no context, so it must return on its own. Status,
// Ready and Cached may be called from any goroutine and never block on the
// stream. A Client has at most one Run at a time; many Clients may share a
// ClientConn.
package policyclient
