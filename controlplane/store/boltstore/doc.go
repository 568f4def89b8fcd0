// Package boltstore is the control plane's embedded policy store: a
// store.Store in one bbolt file under the control plane's data directory.
//
// # Layout
//
//	meta/schema_version        8-byte big-endian schema version (currently 1)
//	meta/store_id              the store's identity, "bolt-" and 16 hex digits
//	pools/<pool>/<revision>    proto.Marshal(PolicyRevision), deterministic
//	proposals/<id>             proto.Marshal(Proposal); the bucket's sequence is
//	                           the last id given; created by the first proposal
//
// Revision keys are the 8-byte big-endian revision number, so bbolt's byte
// order is numeric order: the head is the pool bucket's last key and history
// is a backwards cursor walk. Pool buckets sort by name, which gives Pools its
// order for free.
//
// # Concurrency and durability
//
// bbolt allows one write transaction at a time and any number of readers on
// MVCC snapshots. Append reads the head and writes head+1 inside a single
// write transaction, so the compare-and-set needs no lock of ours. bbolt
// fsyncs on every commit (NoSync is never set): when Append returns nil the
// revision is on disk, and a crash before that leaves the previous state,
// never a partial revision.
//
// ApproveProposal appends the revision and marks the proposal approved in
// one write transaction, so both happen or neither.
// A damaged proposals/ record is skipped by listing, the open count and
// pruning (kept, logged once, counted in Stats) and fails only the calls
// naming its id; a new id never lands on a damaged record's key.
//
// A caller may block in Append behind other writers (each waits for one
// fsync) and in Close, which waits for in-flight transactions to finish.
//
// # Watching heads
//
// The file belongs to one process (see the lock below), so the commits to
// watch are this Store's own: after each Append commits, it offers the
// revision to every watch (store.Store.WatchHeads) without blocking. Each
// watch is one goroutine, handing the waiting heads (at most one per
// pool, latest wins) to its consumer; it ends when the watch's context is
// done or at Close, which waits for it. No other method starts a
// goroutine. bbolt transactions cannot be interrupted, so ctx is
// checked before a transaction starts and, for Append, again once the write
// lock is held.
//
// The file is locked with flock while open: a second process (or a second
// Open in this one) waits Config.Timeout and then fails with ErrLocked.
//
// # Opening, creating, refusing
//
// A store file is created only when none exists: Open creates a missing
// file (Store.Created reports it) and Create makes one or fails with
// ErrExists. A new file is built under a temporary name and hard-linked
// into place, so a crash leaves no file or a whole store; a leftover
// policy.db.new-* file after a crash is safe to delete.
//
// An existing file is never initialised, whatever its size: losing the
// store and starting over at revision 1 without a word would roll the whole
// fleet back. Before use, Open takes the lock (so no writer is mid-commit),
// then checks the file with plain reads: not empty (ErrEmpty), both bbolt
// meta pages intact, the file as long as they say, and every page and
// element the tree and freelist reference inside the file (ErrCorrupt), a
// bbolt file at all (ErrNotPolicyDB). Only then does bbolt map it; bbolt's
// consistency check (tx.Check) and our layout check (ErrNotPolicyDB,
// ErrSchemaTooNew) follow. bbolt reads the file through a memory map and
// asserts with panics; Open runs bbolt with debug.SetPanicOnFault on its
// goroutine and recovers, so damage that slips past the checks is still
// ErrCorrupt, not a crash. tx.Check runs on a goroutine of bbolt's own,
// where neither reaches: that is why the page bounds are checked first.
// Every error names the file and fits on one line.
package boltstore
