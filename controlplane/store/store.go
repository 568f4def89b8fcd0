// Package store defines where the control plane keeps policy revisions.
//
// The Store interface is deliberately narrow: revisions are immutable, a pool's
// history is append-only, and the only write of a revision is an append
// guarded by a compare-and-set on the pool's head revision (alone, or
// together with a proposal's approval: Proposals). That maps one-to-one onto a
// bbolt transaction (package boltstore, the embedded default) and onto an etcd
// transaction comparing the pool's head key (package etcdstore), so the
// service above never knows which one it runs on. Package storetest holds
// the conformance suite every implementation must pass.
//
// The push to nodes follows the store: WatchHeads tells its consumer (the
// control plane's registry) of every pool's new head, whoever committed it
// — this process, or another control-plane replica sharing the store — so
// the path from an apply to the nodes is the same for every store: apply
// → Append → WatchHeads → registry → nodes.
package store

import (
	"context"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// AnyRevision passed as the expected head to Append skips the
// compare-and-set: the revision is appended after whatever the head is.
const AnyRevision int64 = -1

// Store keeps immutable, numbered policy revisions per pool.
//
// Implementations are safe for concurrent use. Returned messages are owned by
// the caller (never shared with the store's internal state), and messages
// passed in are not retained.
type Store interface {
	// Head returns the pool's newest revision, or an error wrapping
	// ErrNotFound if the pool has no revision.
	Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error)

	// Get returns one revision of a pool, or an error wrapping ErrNotFound.
	Get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error)

	// Append stores rev as the next revision of rev.Pool (head+1; 1 for a new
	// pool) if the pool's head revision equals expected (0: the pool must
	// have no revision yet; AnyRevision: no check). The revision number is
	// set by the store: head+1, unless rev carries a higher number, which is
	// then used as it is (a jump, left as a gap in the history: recovery
	// numbers a revision above every revision the fleet runs, see
	// PolicyService.RecoverPolicy). The store sets StoreId to ID(); the
	// stored revision is returned.
	// On a head mismatch it returns a *ConflictError (errors.Is ErrConflict)
	// carrying the current head, and stores nothing. When Append returns nil
	// the revision is durable: it survives a crash of the process.
	Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error)

	// History returns up to limit revisions (limit <= 0: all) of a pool with
	// a number below before (before <= 0: starting at the head), newest
	// first. A pool with no revision gives an error wrapping ErrNotFound.
	History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error)

	// Pools returns the head revision of every pool, ordered by pool name.
	Pools(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error)

	// ID is the store's identity: created once, when the store is
	// initialised, kept in it and never changed. A store that was reset or
	// replaced has a new one, which is how nodes tell its revision 1 from
	// an older revision of the store they know. Every revision the store
	// returns carries it in StoreId.
	ID() string

	// WatchHeads delivers pool heads on the returned channel: first the
	// head of every pool that has one, then every later head, whoever
	// appended it (another process sharing the store included). Per pool
	// the revisions delivered only go up. The newest head of every pool is
	// always delivered, however slowly the consumer reads; intermediate
	// heads may be skipped (latest wins: what waits for a consumer is at
	// most one head per pool, never a backlog of commits, and a consumer
	// that does not read never holds up Append). When the backend's
	// notifications break or lose events (a dropped connection, a
	// compacted history), the watch re-reads every head and goes on; a
	// backend that is down delays heads, it does not end the watch. The
	// channel is closed when ctx is done or the store is closed, after the
	// goroutines the watch needed have finished. Delivered messages are
	// the consumer's.
	// WatchHeads fails with ErrClosed after Close, with ctx's error when
	// ctx is already done, and may fail when the first heads cannot be
	// read.
	WatchHeads(ctx context.Context) (<-chan *wsfleetv1.PolicyRevision, error)

	// Close releases the store and ends its watches. Calls after Close
	// return ErrClosed.
	Close() error

	// Proposals: changes waiting for a second admin, kept in the same
	// store so that approving one and appending its revision is one
	// transaction.
	Proposals

	// Stats counts damage the store found and skipped.
	Stats() Stats
}
