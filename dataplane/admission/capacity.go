package admission

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// ipShardCount spreads per-IP counters over independently locked maps so
// that concurrent handshakes from different clients rarely contend. A power
// of two, so the shard is a shift of the hash.
const (
	ipShardBits  = 5
	ipShardCount = 1 << ipShardBits
)

// shrinkAbove: a shard map that once held this many clients and is empty
// again is replaced, because Go maps never give back their buckets and a
// one-off flood of distinct IPs would otherwise pin that memory forever.
const shrinkAbove = 1024

// ipTable counts open connections per client IP. An entry exists only while
// its count is positive, so the table holds at most one entry per open
// connection.
type ipTable struct {
	shards [ipShardCount]ipShard
}

type ipShard struct {
	mu   sync.Mutex
	m    map[netip.Addr]int32
	peak int
	// Keeps neighbouring shards' locks off one cache line.
	_ [64 - 8 - 8 - 8]byte
}

func (t *ipTable) shard(a netip.Addr) *ipShard {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	// Fibonacci hashing: the top bits of the product mix every input bit.
	h *= 0x9e3779b97f4a7c15
	return &t.shards[h>>(64-ipShardBits)]
}

// acquire takes one slot for a unless it already holds limit, and returns
// the slots a holds then.
func (t *ipTable) acquire(a netip.Addr, limit int32) (int32, bool) {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[netip.Addr]int32)
	}
	n := s.m[a]
	if n >= limit {
		return n, false
	}
	s.m[a] = n + 1
	if len(s.m) > s.peak {
		s.peak = len(s.m)
	}
	return n + 1, true
}

func (t *ipTable) release(a netip.Addr) {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[a]
	switch {
	case !ok:
		// Unreachable while Ticket.Release runs once; counting below zero
		// would hide a leak instead of exposing it.
	case n > 1:
		s.m[a] = n - 1
	default:
		delete(s.m, a)
		if len(s.m) == 0 && s.peak >= shrinkAbove {
			s.m, s.peak = nil, 0
		}
	}
}

// count returns the slots a holds.
func (t *ipTable) count(a netip.Addr) int32 {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a]
}

// max returns the most slots one client IP holds. It walks every entry,
// shard by shard: for a once-a-minute traffic sample, not per handshake.
func (t *ipTable) max() int32 {
	var top int32
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, n := range s.m {
			top = max(top, n)
		}
		s.mu.Unlock()
	}
	return top
}

// len returns the number of client IPs holding slots.
func (t *ipTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// clientAddr extracts the client IP from r.RemoteAddr ("ip:port" as
// net/http sets it), without its IPv6 zone and with IPv4-mapped IPv6
// unmapped, so one client has one key however it connected. The bool is
// false when RemoteAddr holds no IP (a Unix socket, a hand-built request):
// such clients then share the zero Addr's slots.
func clientAddr(remote string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return normalizeAddr(a), true
	}
	return netip.Addr{}, false
}

func normalizeAddr(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// Ticket is an admitted handshake's hold on one node-wide and one
// per-client-IP connection slot.
type Ticket struct {
	a      *Admitter
	addr   netip.Addr
	remote string
	// open and fromIP are the connections open on the node and from the
	// client IP when the slots were taken, this one included.
	open     int64
	fromIP   int32
	released atomic.Bool
}

// Counts returns the connections open on the node and from the client IP
// when the handshake was admitted, this one included: the node's traffic
// sample takes its connection peaks from them.
func (t *Ticket) Counts() (open int64, fromIP int32) { return t.open, t.fromIP }

// Release returns both slots. Call it exactly once when the connection ends
// or the upgrade fails; a second call is a no-op, so a defer next to an
// explicit call is safe. It never blocks beyond one shard lock.
func (t *Ticket) Release() {
	if t == nil || t.a == nil || !t.released.CompareAndSwap(false, true) {
		return
	}
	t.a.release(t.addr)
}

// ClientIP returns the client IP the per-IP cap counted the connection
// under ("10.0.0.1", "2001:db8::1"), or r.RemoteAddr unchanged when it held
// no IP. It allocates; call it once per connection, not per message.
func (t *Ticket) ClientIP() string {
	return clientIPText(t.addr, t.remote)
}

func clientIPText(a netip.Addr, remote string) string {
	if a.IsValid() {
		return a.String()
	}
	return remote
}
