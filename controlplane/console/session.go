package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// session is one login. The token stays in the control plane's memory
// only (never in the browser after the login request), so that every
// request is re-authenticated with it: a token removed from the tokens
// file stops working in the console too.
type session struct {
	id      string
	csrf    string
	token   string
	created time.Time
	expires time.Time
	// ctx ends with the session (logout, expiry, eviction): live tails
	// follow it.
	ctx    context.Context
	cancel context.CancelFunc
	// tails counts the live tails open (Config.MaxTailsPerSession).
	tails atomic.Int64
}

// sessions is the bounded session table.
type sessions struct {
	mu   sync.Mutex
	max  int
	byID map[string]*session
}

func newSessions(max int) *sessions {
	return &sessions{max: max, byID: make(map[string]*session)}
}

// randomID is 256 random bits, base64url.
func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// add makes a session for token; a full table ends the expired sessions,
// then the oldest.
func (t *sessions) add(token string, now time.Time, ttl time.Duration) *session {
	// The context's timer runs on the real clock (ttl from now), whatever
	// Config.Now says; get checks the expiry against Config.Now.
	ctx, cancel := context.WithTimeout(context.Background(), ttl)
	s := &session{id: randomID(), csrf: randomID(), token: token, created: now, expires: now.Add(ttl), ctx: ctx, cancel: cancel}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byID) >= t.max {
		var oldest *session
		for id, o := range t.byID {
			if !now.Before(o.expires) {
				o.cancel()
				delete(t.byID, id)
				continue
			}
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		if len(t.byID) >= t.max && oldest != nil {
			oldest.cancel()
			delete(t.byID, oldest.id)
		}
	}
	t.byID[s.id] = s
	return s
}

// get is the live session of id; an expired one is removed.
func (t *sessions) get(id string, now time.Time) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byID[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		s.cancel()
		delete(t.byID, id)
		return nil
	}
	return s
}

// remove ends session id.
func (t *sessions) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byID[id]; s != nil {
		s.cancel()
		delete(t.byID, id)
	}
}

// len is the number of sessions held (expired ones not yet removed
// included).
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// closeAll ends every session.
func (t *sessions) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.byID {
		s.cancel()
		delete(t.byID, id)
	}
}

func (s *session) csrfOK(header string) bool {
	return header != "" && subtle.ConstantTimeCompare([]byte(header), []byte(s.csrf)) == 1
}

// loginLimiter limits login attempts per client address, in a bounded
// table.
type loginLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	max   int
	byIP  map[string]*rate.Limiter
	// swept is when a full table was last swept for idle addresses, and
	// sweeps how many times: a sweep walks the whole table under the
	// lock, so with it full of busy addresses (a flood from many
	// addresses) it runs at most once per sweepEvery, not per login.
	swept  time.Time
	sweeps int
}

// sweepEvery bounds how often a full login table is swept.
const sweepEvery = time.Second

func newLoginLimiter(limit rate.Limit, burst, max int) *loginLimiter {
	return &loginLimiter{limit: limit, burst: burst, max: max, byIP: make(map[string]*rate.Limiter)}
}

// allow takes an attempt for ip at now. With the table full it first
// forgets the addresses whose limiters are full again (no recent
// attempts: forgetting them changes nothing), at most once per
// sweepEvery; if none is, it refuses.
func (l *loginLimiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byIP[ip]
	if lim == nil {
		if len(l.byIP) >= l.max {
			if now.Sub(l.swept) < sweepEvery && !now.Before(l.swept) {
				return false
			}
			l.swept = now
			l.sweeps++
			for k, o := range l.byIP {
				if o.TokensAt(now) >= float64(l.burst) {
					delete(l.byIP, k)
				}
			}
			if len(l.byIP) >= l.max {
				return false
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.byIP[ip] = lim
	}
	return lim.AllowN(now, 1)
}
