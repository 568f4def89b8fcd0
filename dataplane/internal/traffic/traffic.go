package traffic

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// DefaultMaxOrigins is Config.MaxOrigins when it is zero.
const DefaultMaxOrigins = 256

// Config configures a Collector.
type Config struct {
	// MaxOrigins bounds the distinct origins counted per interval; the
	// handshakes of origins beyond it count in accepted_other (see the
	// package documentation). Default 256.
	MaxOrigins int
}

// Collector counts one node's accepted traffic; see the package
// documentation. A nil Collector counts nothing and cuts no sample (a Node
// built by hand in a test has none).
type Collector struct {
	maxOrigins int

	mu      sync.Mutex
	origins map[string]uint64
	other   uint64
	// sec is the unix second hsCount counts handshakes of.
	sec                  int64
	hsCount              uint32
	peakHS               uint32
	peakConns, peakPerIP uint32

	// Raised lock-free from the per-message path.
	peakMsgs, peakBytes atomic.Uint32
}

// New returns an empty Collector.
func New(cfg Config) (*Collector, error) {
	if cfg.MaxOrigins < 0 {
		return nil, fmt.Errorf("%w: MaxOrigins %d is negative", ErrConfig, cfg.MaxOrigins)
	}
	if cfg.MaxOrigins == 0 {
		cfg.MaxOrigins = DefaultMaxOrigins
	}
	return &Collector{maxOrigins: cfg.MaxOrigins, origins: map[string]uint64{}}, nil
}

// Accepted counts one accepted handshake from origin at now; open is the
// node's open connections and fromIP the client IP's, this one included.
func (c *Collector) Accepted(origin string, open int64, fromIP int32, now time.Time) {
	if c == nil {
		return
	}
	sec := now.Unix()
	c.mu.Lock()
	if n, ok := c.origins[origin]; ok {
		c.origins[origin] = n + 1
	} else if len(c.origins) < c.maxOrigins {
		c.origins[origin] = 1
	} else {
		c.other++
	}
	if sec != c.sec {
		c.sec, c.hsCount = sec, 0
	}
	c.hsCount++
	c.peakHS = max(c.peakHS, c.hsCount)
	c.peakConns = max(c.peakConns, clamp(open))
	c.peakPerIP = max(c.peakPerIP, clamp(int64(fromIP)))
	c.mu.Unlock()
}

// MessageRate counts one message read by a connection that has read
// perSecond messages (this one included) in the current second: the caller
// keeps that count per connection, unshared.
func (c *Collector) MessageRate(perSecond uint32) {
	if c != nil {
		raise(&c.peakMsgs, perSecond)
	}
}

// MessageBytes counts one client message of n payload bytes.
func (c *Collector) MessageBytes(n int) {
	if c != nil {
		raise(&c.peakBytes, clamp(int64(n)))
	}
}

// raise sets a to v if v is larger. The load is the fast path: the shared
// word is written only when a peak rises.
func raise(a *atomic.Uint32, v uint32) {
	if v > a.Load() {
		raiseSlow(a, v)
	}
}

func raiseSlow(a *atomic.Uint32, v uint32) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func clamp(v int64) uint32 {
	switch {
	case v < 0:
		return 0
	case v > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(v)
}

// Cut returns the interval's counts as a sample for minute (truncated to
// the minute) and the policy in force (pool, revision), and starts the
// next interval. open and maxFromIP are the connections open now, on the
// node and from its busiest client IP: the next interval's connection
// peaks start there, since those connections stay open into it. Cut
// returns nil for an interval without traffic: no handshake accepted, no
// message read and no connection open.
func (c *Collector) Cut(minute time.Time, pool string, revision, open int64, maxFromIP int32) *wsfleetv1.TrafficSample {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	origins, other := c.origins, c.other
	s := &wsfleetv1.TrafficSample{
		Minute:                  timestamppb.New(minute.UTC().Truncate(time.Minute)),
		PolicyPool:              pool,
		PolicyRevision:          revision,
		AcceptedOther:           other,
		PeakConnections:         c.peakConns,
		PeakConnectionsPerIp:    c.peakPerIP,
		PeakHandshakesPerSecond: c.peakHS,
	}
	c.origins = make(map[string]uint64, min(len(origins), c.maxOrigins))
	c.other, c.peakHS = 0, 0
	c.peakConns, c.peakPerIP = clamp(open), clamp(int64(maxFromIP))
	// Under the lock only to order the swap with the fields above; the
	// per-message path never takes it.
	s.PeakMessagesPerSecond = c.peakMsgs.Swap(0)
	s.PeakMessageBytes = c.peakBytes.Swap(0)
	c.mu.Unlock()

	// No handshake accepted: no origin counted, none beyond the cap.
	if len(origins) == 0 && other == 0 && s.PeakConnections == 0 && s.PeakMessagesPerSecond == 0 {
		return nil
	}
	s.Accepted = make([]*wsfleetv1.OriginCount, 0, len(origins))
	for o, n := range origins {
		s.Accepted = append(s.Accepted, &wsfleetv1.OriginCount{Origin: o, Count: n})
	}
	slices.SortFunc(s.Accepted, func(a, b *wsfleetv1.OriginCount) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), strings.Compare(a.GetOrigin(), b.GetOrigin()))
	})
	return s
}
