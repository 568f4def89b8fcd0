// Package fold folds repeated handshake rejections into one event with a
// count, so a flood of bad handshakes — anonymous, arriving before any rate
// limit — costs the node, its log and the control plane bounded work.
//
// A rejection's Key is its class, HTTP status, origin and client network
// (the remote address's prefix, see NetworkOf). The first rejection of a key
// opens a window and is recorded at once, with its own trace id; later ones
// of the key within the window are only counted. When the window ends
// (Sweep, or the key's next rejection after it), the count becomes one
// event: the first counted rejection's event with repeat = the count,
// first_time its time and time the last one's. Close hands out every fold
// still open, and afterwards every rejection is recorded on its own: no
// count is ever lost.
//
// The table holds at most MaxKeys keys. A rejection of a new key when it is
// full goes to its class's overflow key (origin OverflowOrigin, no network),
// which behaves like any other key: the first is recorded at once, the rest
// counted. So the events per window are at most 2×(MaxKeys + overflow keys)
// whatever the clients send.
//
// # Concurrency
//
// A Table is safe for concurrent use; every method takes one short mutex
// and never blocks otherwise. It starts no goroutines: the caller sweeps
// (the node runs a ticker) and records what Add, Sweep and Close return,
// outside the lock.
package fold
