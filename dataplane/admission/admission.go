package admission

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Defaults for the Config fields left zero.
const (
	DefaultAuthTimeout        = 2 * time.Second
	DefaultCapacityRetryAfter = 5 * time.Second
)

// DefaultAuthHeaders are the handshake headers forwarded to the
// connect-authorization endpoint when Config.AuthHeaders is nil: what
// identifies the user (Authorization, Cookie), the client (User-Agent,
// X-Forwarded-For) and what it asked for (Sec-WebSocket-Protocol, where
// browsers often smuggle a token).
func DefaultAuthHeaders() []string {
	return []string{"Authorization", "Cookie", "User-Agent", "Sec-WebSocket-Protocol", "X-Forwarded-For"}
}

// Config configures an Admitter. The zero value is valid: no connect
// authorization, defaults everywhere else.
type Config struct {
	// AuthURL enables connect authorization: the node POSTs JSON
	// {"trace_id","origin","remote","path","query","headers":{...}} to it.
	// It must be an absolute http or https URL. "headers" maps Go's
	// canonical header names ("Sec-Websocket-Protocol") to the values, with
	// absent headers left out; "remote" is r.RemoteAddr and "query" the raw
	// query string. The request also carries X-Trace-ID. 2xx admits, 401/403
	// rejects as unauthorized, anything else fails closed and counts against
	// the breaker.
	AuthURL     string
	AuthTimeout time.Duration // default 2s
	// AuthHeaders are the request headers forwarded; nil means
	// DefaultAuthHeaders (Authorization, Cookie, User-Agent,
	// Sec-WebSocket-Protocol, X-Forwarded-For), an empty non-nil slice
	// forwards none. Names are case-insensitive.
	AuthHeaders []string
	// HTTPClient calls AuthURL; default: a client with sane transport limits
	// (up to 256 idle keep-alive connections and 1024 connections to the
	// endpoint, 64 KiB of response headers, redirects not followed — a 3xx
	// is a failure). Its own Timeout, if any, applies on top of AuthTimeout.
	// The Admitter does not close a client passed in.
	HTTPClient *http.Client
	// CapacityRetryAfter is the Retry-After for capacity rejections; default 5s.
	CapacityRetryAfter time.Duration
	// Now is the clock (tests); default time.Now. It drives the handshake
	// rate limiter. The breaker's open time is gobreaker's own clock
	// (time.Now), which cannot be replaced.
	Now func() time.Time
	// OnBreakerState is told of every breaker state change (metrics); must
	// not block. It runs with the breaker's lock held, so it must not call
	// back into the Admitter either. When Update rebuilds the breaker from
	// a non-closed state it is told of the move to closed.
	OnBreakerState func(from, to gobreaker.State)
}

// withDefaults validates c and returns a copy with defaults filled.
func (c Config) withDefaults() (Config, error) {
	if c.AuthURL != "" {
		u, err := url.Parse(c.AuthURL)
		if err != nil {
			return c, fmt.Errorf("%w: AuthURL: %w", ErrInvalidConfig, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("%w: AuthURL %q: want an absolute http or https URL", ErrInvalidConfig, c.AuthURL)
		}
	}
	switch {
	case c.AuthTimeout < 0:
		return c, fmt.Errorf("%w: AuthTimeout %s is negative", ErrInvalidConfig, c.AuthTimeout)
	case c.AuthTimeout == 0:
		c.AuthTimeout = DefaultAuthTimeout
	}
	switch {
	case c.CapacityRetryAfter < 0:
		return c, fmt.Errorf("%w: CapacityRetryAfter %s is negative", ErrInvalidConfig, c.CapacityRetryAfter)
	case c.CapacityRetryAfter == 0:
		c.CapacityRetryAfter = DefaultCapacityRetryAfter
	}
	names := c.AuthHeaders
	if names == nil {
		names = DefaultAuthHeaders()
	}
	// Canonical names index http.Header directly; duplicates would only
	// repeat a map write.
	c.AuthHeaders = make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if n == "" {
			return c, fmt.Errorf("%w: AuthHeaders[%d] is empty", ErrInvalidConfig, i)
		}
		cn := textproto.CanonicalMIMEHeaderKey(n)
		if !seen[cn] {
			seen[cn] = true
			c.AuthHeaders = append(c.AuthHeaders, cn)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Admitter runs the handshake checks before the WebSocket upgrade. It is
// safe for concurrent use; see the package doc for what may block.
type Admitter struct {
	cfg       Config
	client    *http.Client
	ownClient bool

	// snap is everything Admit reads, swapped whole by Update.
	snap atomic.Pointer[snapshot]
	// active and ips are connection state that outlives policies.
	active atomic.Int64
	ips    ipTable

	// updateMu serializes Update; Admit never takes it.
	updateMu sync.Mutex
}

// snapshot is one policy's admission state. It is never modified after
// Store; the limiter and breaker it points to are shared with the snapshot
// before it when their settings did not change.
type snapshot struct {
	origins     *policy.OriginMatcher
	maxConns    int64
	maxConnsIP  int32
	rate        rate.Limit
	burst       int
	limiter     *rate.Limiter
	breaker     *breaker // nil without AuthURL
	rateSummary string   // for the rate_limited Reason
}

// New builds an Admitter for a policy that already passed policy.Validate.
// It checks the policy again (cheap, and a cached file may be stale) and
// refuses it with an error wrapping ErrInvalidPolicy.
func New(cfg Config, p *wsfleetv1.Policy) (*Admitter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Admitter{cfg: cfg, client: cfg.HTTPClient}
	if a.client == nil && cfg.AuthURL != "" {
		a.client = newAuthClient(cfg.AuthTimeout)
		a.ownClient = true
	}
	if err := a.Update(p); err != nil {
		return nil, err
	}
	return a, nil
}

// Update applies a new validated policy without losing state that still
// holds ("reload per field, keep state where it still holds"): the origin
// matcher is rebuilt; the handshake limiter (golang.org/x/time/rate, reject
// style) keeps its tokens when rate and burst are unchanged and is adjusted in
// place with SetLimit/SetBurst otherwise; the breaker is rebuilt only when its
// settings changed (keeping its state otherwise); new caps apply to the next
// handshake (existing connections above a lowered cap are not cut).
// Everything the per-handshake path reads comes from one immutable snapshot
// behind an atomic.Pointer — no mutex on the hot path except the per-IP shard lock.
//
// A policy that fails policy.Check is refused whole with an error wrapping
// ErrInvalidPolicy, and the running one stays. A rebuilt breaker starts
// closed with empty counts: the thresholds it tripped on are gone.
func (a *Admitter) Update(p *wsfleetv1.Policy) error {
	if err := policy.Check(p); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	// Everything that can fail happens before anything is changed, so a
	// refused policy is never half-applied.
	origins, err := policy.NewOriginMatcher(p.GetOrigins().GetAllow(), p.GetOrigins().GetAllowMissing())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}

	a.updateMu.Lock()
	defer a.updateMu.Unlock()
	old := a.snap.Load()
	lim := p.GetLimits()
	next := &snapshot{
		origins:    origins,
		maxConns:   int64(lim.GetMaxConnections()),
		maxConnsIP: lim.GetMaxConnectionsPerIp(),
		rate:       rate.Limit(lim.GetHandshakesPerSecond()),
		burst:      int(lim.GetHandshakeBurst()),
		rateSummary: fmt.Sprintf("limits.handshakes_per_second %d (burst %d)",
			lim.GetHandshakesPerSecond(), lim.GetHandshakeBurst()),
	}

	if old == nil {
		next.limiter = rate.NewLimiter(next.rate, next.burst)
	} else {
		next.limiter = old.limiter
		now := a.cfg.Now()
		if next.rate != old.rate {
			next.limiter.SetLimitAt(now, next.rate)
		}
		if next.burst != old.burst {
			next.limiter.SetBurstAt(now, next.burst)
		}
	}

	var replaced *breaker
	if a.cfg.AuthURL != "" {
		settings := breakerSettingsOf(p.GetBreaker())
		if old != nil && old.breaker != nil && old.breaker.settings == settings {
			next.breaker = old.breaker
		} else {
			next.breaker = newBreaker(settings, a.breakerChanged)
			if old != nil {
				replaced = old.breaker
			}
		}
	}

	var replacedState gobreaker.State
	if replaced != nil {
		replacedState = replaced.cb.State()
	}
	a.snap.Store(next)
	if replaced != nil && replacedState != gobreaker.StateClosed && a.cfg.OnBreakerState != nil {
		a.cfg.OnBreakerState(replacedState, gobreaker.StateClosed)
	}
	return nil
}

// breakerChanged forwards state changes of the current breaker only: a
// breaker replaced by Update may still see the last calls of handshakes
// that loaded the old snapshot, and its moves no longer describe the node.
func (a *Admitter) breakerChanged(b *breaker, from, to gobreaker.State) {
	if a.cfg.OnBreakerState == nil {
		return
	}
	if s := a.snap.Load(); s != nil && s.breaker == b {
		a.cfg.OnBreakerState(from, to)
	}
}

// Admit runs origin → capacity → handshake rate → connect authorization in
// this order and stops at the first rejection. On success it returns a
// Ticket holding one node-wide and one per-client-IP connection slot; the
// caller must call Release exactly once when the connection ends or the
// upgrade fails (Release is idempotent-safe: a second call is a no-op). On
// rejection the slots are already released.
//
// Capacity comes before the rate so that a full node does not spend
// handshake tokens on clients it turns away anyway; authorization comes last
// because it is the only step that leaves the process. Admit blocks only
// during authorization, for at most Config.AuthTimeout; ctx (the request's
// context) ends that call early when the client goes away.
func (a *Admitter) Admit(ctx context.Context, r *http.Request, traceID string) (*Ticket, *Rejection) {
	s := a.snap.Load()

	var origin string
	if vs := r.Header["Origin"]; len(vs) > 0 {
		origin = vs[0]
	}
	if !s.origins.Allow(origin) {
		return nil, originRejection(origin)
	}

	addr, _ := clientAddr(r.RemoteAddr)
	// Reserve, then check: two racing handshakes cannot both see the last
	// free slot.
	open := a.active.Add(1)
	if open > s.maxConns {
		a.active.Add(-1)
		rej := NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY,
			fmt.Sprintf("node at max_connections %d", s.maxConns))
		rej.RetryAfter = a.cfg.CapacityRetryAfter
		return nil, rej
	}
	fromIP, ok := a.ips.acquire(addr, s.maxConnsIP)
	if !ok {
		a.active.Add(-1)
		rej := NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY,
			fmt.Sprintf("client %s at max_connections_per_ip %d", clientIPText(addr, r.RemoteAddr), s.maxConnsIP))
		rej.RetryAfter = a.cfg.CapacityRetryAfter
		return nil, rej
	}

	if rej := a.checkRate(s); rej != nil {
		a.release(addr)
		return nil, rej
	}

	if s.breaker != nil {
		if rej := a.authorize(ctx, r, traceID, origin, s.breaker); rej != nil {
			a.release(addr)
			return nil, rej
		}
	}
	t := &Ticket{a: a, addr: addr, open: open, fromIP: fromIP}
	if !addr.IsValid() {
		t.remote = r.RemoteAddr
	}
	return t, nil
}

func originRejection(origin string) *Rejection {
	reason := "no Origin header and origins.allow_missing is false"
	if origin != "" {
		reason = fmt.Sprintf("origin %q is not in the allowlist", clipQuoted(origin))
	}
	return NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, reason)
}

// checkRate takes a handshake token, or says how long until one is free.
// AllowN is the allocation-free fast path; only a refused handshake pays
// for a Reservation, made to learn the delay and cancelled at once so the
// refusal costs no token.
func (a *Admitter) checkRate(s *snapshot) *Rejection {
	now := a.cfg.Now()
	if s.limiter.AllowN(now, 1) {
		return nil
	}
	res := s.limiter.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if res.OK() && delay == 0 {
		// A token came free between the two calls; the reservation took it.
		return nil
	}
	res.CancelAt(now)
	rej := NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, "handshake rate over "+s.rateSummary)
	rej.RetryAfter = roundRetryAfter(delay)
	return rej
}

func (a *Admitter) release(addr netip.Addr) {
	a.ips.release(addr)
	a.active.Add(-1)
}

// OriginAllowed reports whether the policy in force admits origin, with
// the handshake's matcher: the node's other endpoints (client reports)
// take requests from exactly the pages that may connect.
func (a *Admitter) OriginAllowed(origin string) bool { return a.snap.Load().origins.Allow(origin) }

// MaxFromIP returns the most connections one client IP holds open now. It
// walks every client IP: call it once a minute, not per handshake.
func (a *Admitter) MaxFromIP() int32 { return a.ips.max() }

// Active returns the open connections: slots held by unreleased Tickets.
func (a *Admitter) Active() int64 { return a.active.Load() }

// BreakerState returns the connect-authorization breaker's state;
// StateClosed when there is no AuthURL.
func (a *Admitter) BreakerState() gobreaker.State {
	if b := a.snap.Load().breaker; b != nil {
		return b.cb.State()
	}
	return gobreaker.StateClosed
}

// Close releases the idle connections of the default HTTP client. A client
// passed in Config.HTTPClient belongs to the caller and is left alone.
// Admit still works after Close (a call reopens a connection).
func (a *Admitter) Close() {
	if a.ownClient {
		a.client.CloseIdleConnections()
	}
}
