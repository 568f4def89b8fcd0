// Package iplimit rate-limits requests per client address with token
// buckets (golang.org/x/time/rate) kept in a bounded table: the node's
// small HTTP endpoints next to the WebSocket path (/ws/explain,
// /ws/client-report) take at most a few requests per second from one
// client, whatever the number of clients.
//
// An IPv4 address is its own key; an IPv6 address is keyed by its /64,
// which one host or one customer usually holds whole, so hopping addresses
// within it gains nothing. The table holds at most MaxKeys buckets; a new
// key when it is full evicts the least recently used bucket, whose client
// then starts again with a full bucket: memory stays bounded and a client
// that keeps asking keeps its (empty) bucket.
//
// A Limiter is safe for concurrent use: Allow takes one short mutex and
// never blocks otherwise. It starts no goroutines.
package iplimit

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the bucket of each client and the table's bound.
type Config struct {
	// PerSecond and Burst are each client's token bucket.
	PerSecond float64
	Burst     int
	// MaxKeys bounds the table.
	MaxKeys int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Limiter is a bounded table of per-client token buckets.
type Limiter struct {
	cfg Config

	mu  sync.Mutex
	m   map[netip.Addr]*list.Element // of *entry
	lru *list.List                   // most recently used first
}

type entry struct {
	key netip.Addr
	lim *rate.Limiter
}

// New returns a Limiter; cfg's rate, burst and bound must be positive.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, m: make(map[netip.Addr]*list.Element), lru: list.New()}
}

// Key is the table key of a client address: the address itself for IPv4
// (IPv4-mapped IPv6 included), its /64 for IPv6.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// Allow takes a token from client's bucket. When there is none it returns
// false and how long until there is one (at least a second, as a
// Retry-After header counts).
func (l *Limiter) Allow(client netip.Addr) (ok bool, retryAfter time.Duration) {
	key := Key(client)
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lim *rate.Limiter
	if el, found := l.m[key]; found {
		l.lru.MoveToFront(el)
		lim = el.Value.(*entry).lim
	} else {
		for l.lru.Len() >= l.cfg.MaxKeys && l.lru.Len() > 0 {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.m, oldest.Value.(*entry).key)
		}
		lim = rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)
		l.m[key] = l.lru.PushFront(&entry{key: key, lim: lim})
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, max(wait, time.Second)
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
