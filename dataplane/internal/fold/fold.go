package fold

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// OverflowOrigin is the origin of an overflow fold: rejections of keys the
// full table could not hold, from any origin and network. The control
// plane's aggregates spell their overflow origin the same way.
const OverflowOrigin = "(other)"

// overflowError replaces the error text of an overflow fold: the counted
// rejections had various origins, networks and reasons.
const overflowError = "rejections of this class from origins and networks the node's fold table had no room for (--fold-max-keys)"

// Key says which rejections fold together.
type Key struct {
	Class   wsfleetv1.ErrorClass
	Status  int32
	Origin  string
	Network Network
}

// Network is a client network: the remote address's prefix, or, when the
// remote address is not an IP address (a Unix socket, an embedder's own
// notion), the address itself.
type Network struct {
	Prefix netip.Prefix
	Other  string
}

// NetworkOf is the network of a remote address ("ip:port" as net/http
// gives it, or a bare IP): an IPv4 address (an IPv4-mapped IPv6 one too)
// masked to v4Bits, an IPv6 address to v6Bits (its zone dropped). The
// caller bounds remote: it is kept as it is when it is not an IP.
func NetworkOf(remote string, v4Bits, v6Bits int) Network {
	addr, err := netip.ParseAddrPort(remote)
	ip := addr.Addr()
	if err != nil {
		if ip, err = netip.ParseAddr(remote); err != nil {
			return Network{Other: remote}
		}
	}
	ip = ip.Unmap().WithZone("")
	bits := v6Bits
	if ip.Is4() {
		bits = v4Bits
	}
	p, err := ip.Prefix(bits)
	if err != nil { // bits out of range: the whole address
		p = netip.PrefixFrom(ip, ip.BitLen())
	}
	return Network{Prefix: p}
}

// Config configures a Table.
type Config struct {
	// Window is how long a key's rejections fold into one count, from the
	// first one. Zero or negative: nothing is folded.
	Window time.Duration
	// MaxKeys bounds the keys held; at least 1.
	MaxKeys int
}

// Table is the fold table. The zero value is not usable: call New.
type Table struct {
	window  time.Duration
	maxKeys int

	mu     sync.Mutex
	m      map[Key]*entry
	keys   int // entries that are not overflow keys
	closed bool
}

// entry is one key's open window.
type entry struct {
	start    time.Time // the rejection recorded at once
	overflow bool
	count    uint32                // rejections counted after it
	ev       *wsfleetv1.ErrorEvent // the first counted one's event
	last     time.Time
}

// New returns an empty Table.
func New(cfg Config) *Table {
	return &Table{window: cfg.Window, maxKeys: max(cfg.MaxKeys, 1), m: map[Key]*entry{}}
}

// Outcome is what Add did with a rejection. Record the non-nil events in
// this order: Ended, then Now.
type Outcome struct {
	// Ended is the key's fold whose window had ended, if it counted any.
	Ended *wsfleetv1.ErrorEvent
	// Now is the rejection's own event when it is recorded at once: the
	// first of its key in a window, or folding is off or closed. Nil when
	// it was counted.
	Now *wsfleetv1.ErrorEvent
	// Overflow: the table was full, so the rejection went to its class's
	// overflow key.
	Overflow bool
}

// Add takes one rejection, its key and its event (which becomes the
// Table's unless returned in Outcome.Now), at time now.
func (t *Table) Add(k Key, ev *wsfleetv1.ErrorEvent, now time.Time) Outcome {
	if t.window <= 0 {
		return Outcome{Now: ev}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return Outcome{Now: ev}
	}
	var out Outcome
	e := t.m[k]
	if e == nil && t.keys >= t.maxKeys {
		k = Key{Class: k.Class, Status: k.Status, Origin: OverflowOrigin}
		e = t.m[k]
		out.Overflow = true
	}
	// A repeat count that would wrap ends the window early.
	if e != nil && (now.Sub(e.start) >= t.window || e.count == math.MaxUint32) {
		out.Ended = t.removeLocked(k, e)
		e = nil
	}
	if e == nil {
		t.m[k] = &entry{start: now, overflow: out.Overflow}
		if !out.Overflow {
			t.keys++
		}
		out.Now = ev
		return out
	}
	if e.count == 0 {
		e.ev = ev
	}
	e.count++
	e.last = now
	return out
}

// removeLocked deletes k's entry and returns its fold, nil if it counted
// nothing.
func (t *Table) removeLocked(k Key, e *entry) *wsfleetv1.ErrorEvent {
	delete(t.m, k)
	if !e.overflow {
		t.keys--
	}
	if e.count == 0 {
		return nil
	}
	ev := e.ev
	if e.count > 1 {
		ev.Repeat = e.count
		ev.FirstTime = ev.GetTime()
		ev.Time = timestamppb.New(e.last)
	}
	if e.overflow {
		ev.Origin = OverflowOrigin
		ev.RemoteAddr = ""
		ev.Error = overflowError
	}
	return ev
}

// Sweep ends every window that has ended by now and returns their folds.
func (t *Table) Sweep(now time.Time) []*wsfleetv1.ErrorEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*wsfleetv1.ErrorEvent
	for k, e := range t.m {
		if now.Sub(e.start) >= t.window {
			if ev := t.removeLocked(k, e); ev != nil {
				out = append(out, ev)
			}
		}
	}
	return out
}

// Close ends every window and returns their folds; from then on Add
// returns every rejection's event to be recorded at once.
func (t *Table) Close() []*wsfleetv1.ErrorEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	var out []*wsfleetv1.ErrorEvent
	for k, e := range t.m {
		if ev := t.removeLocked(k, e); ev != nil {
			out = append(out, ev)
		}
	}
	return out
}

// Len is the number of keys held, overflow keys included.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
