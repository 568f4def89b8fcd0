// Package etcdstore is a store.Store in an etcd cluster, under a key
// prefix, so that several control-plane replicas share one store: each
// replica's writes are compare-and-set transactions, and each replica's
// watch of pool heads is etcd's own Watch, so a revision committed through
// any replica is pushed by all of them.
//
// # Layout
//
// Under the prefix P (Config.Prefix, default "/wsfleet/"):
//
//	P meta/store_id              the store's identity, "etcd-" and 16 hex digits
//	P meta/schema_version        the layout version, decimal (currently "1")
//	P heads/<pool>               the pool's head revision: proto.Marshal(PolicyRevision)
//	P revs/<pool>/<revision>     every revision, the same encoding; <revision> is
//	                             20 decimal digits, zero-padded, so that key order
//	                             is numeric order
//	P meta/proposal_seq          the last proposal id given, decimal
//	P proposals/<id>             proto.Marshal(Proposal); <id> as <revision>
//
//	P fleet/...                  the replicas' membership and shared node status
//	                             (packages replicas and registry/etcdstatus); not
//	                             the store's, but wsfleet's: a prefix holding only
//	                             these and no identity is refused as damaged
//
// A pool name is a DNS label (no "/"), so one pool's keys never fall under
// another's prefix, and heads/ sorts by pool name, which gives Pools its
// order. The head is a copy of the newest revs/ entry: Pools is one range
// read, and a watch event carries the whole head. A revision is at most a
// few hundred KiB (the policy's bounds), so the two copies fit etcd's
// default 1.5 MiB request limit.
//
// # Writes
//
// Proposals: a create compares and bumps meta/proposal_seq in its
// transaction (ids are store-wide and never reused; the per-pool bound of
// open proposals is checked on the same read). Approving one commits the
// revision, the head and the approved proposal in one transaction,
// compared on the head key's and the proposal key's ModRevision; deciding
// one also deletes the oldest decided proposals beyond the kept number.
// A damaged proposals/ key or value is skipped by listing, the open count
// and pruning (kept, logged once, counted in Stats) and fails only the
// calls naming its id; a new id is above every proposals/ key's.
//
// Append reads the pool's head and commits, in one transaction, the new
// revs/ key and the new head, if the head key's ModRevision is still the
// one read (0: the pool still has none), the revision key does not exist
// and meta/store_id still holds this store's identity. A lost race is
// re-read: with an expected revision it becomes a *store.ConflictError
// naming the new head, with store.AnyRevision it is retried. Nothing is
// locked: writers on any number of replicas only ever lose a
// compare-and-set. When Append returns nil, etcd has committed the write
// to a quorum: it survives the loss of this process and of a minority of
// etcd members. A transaction that gets no answer (a timeout, a dropped
// connection) may still have been committed: Append then reads the
// revision key back, and reports success if it holds the bytes it wrote,
// ErrUnavailable if it is absent (nothing was stored); only when that
// read fails too is the outcome unknown, which its error says.
//
// # Identity
//
// Open creates the identity (and the schema version) when nothing is
// under the prefix, in a transaction that succeeds only while the prefix
// is empty, so replicas starting together on an empty prefix agree on one
// identity; Store.Created tells the one that made it. A prefix with
// wsfleet keys but no identity (ErrNoIdentity), with keys of something
// else (ErrForeign), or with a newer layout (ErrSchemaTooNew) is refused:
// it is never adopted or initialised over. Every write checks the identity
// is still the one read at Open, so a store that was deleted and created
// anew under a running replica fails its writes (ErrReplaced) instead of
// mixing two stores' revisions.
//
// # Watching heads
//
// WatchHeads reads every pool head (one range read) and then follows
// etcd's Watch of P heads/ from the revision of that read, so nothing
// committed in between is missed. etcd's client resumes a broken watch
// stream by itself from the last revision it delivered; when the watch
// ends anyway (etcd compacted the revisions it would resume from, lost
// its leader, or the connection stayed down), the watch resumes from the
// last etcd revision it saw, and after a compaction re-reads every head.
// Re-reads are retried with exponential backoff (at most watchRetryMax
// apart) while etcd is unreachable; the watch never ends on its own. Heads
// reach the consumer latest wins per pool (see store.Store.WatchHeads).
// Each watch is two goroutines of ours (one reading etcd, one delivering)
// and an etcd watcher of its own (a gRPC stream and its goroutines), all
// ended by the watch's context or by Close, which waits for them.
//
// # Timeouts
//
// Every etcd call is bounded: opening by Config.DialTimeout (an etcd that
// is unreachable at start is an ErrUnavailable error naming the
// endpoints, not a hang), every read and write by Config.RequestTimeout.
// Only the watch is long-lived; it asks etcd to end it when the cluster has
// no leader (clientv3.WithRequireLeader), so a partitioned member cannot
// keep it silently stale.
package etcdstore
