// Package boltstore is the control plane's embedded policy store: a
// store.Store in one bbolt file under the control plane's data directory.
//
// # Layout
//
//	meta/schema_version        8-byte big-endian schema version (currently 1)
//	pools/<pool>/<revision>    proto.Marshal(PolicyRevision), deterministic
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
// No method starts a goroutine. A caller may block in Append behind other
// writers (each waits for one fsync) and in Close, which waits for in-flight
// transactions to finish. bbolt transactions cannot be interrupted, so ctx is
// checked before a transaction starts and, for Append, again once the write
// lock is held.
//
// The file is locked with flock while open: a second process (or a second
// Open in this one) waits Config.Timeout and then fails with ErrLocked.
package boltstore
