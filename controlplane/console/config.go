package console

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Defaults of Config.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultMaxSessions = 1000
	// DefaultLoginRate and DefaultLoginBurst: one login attempt per second
	// per client address, five at once.
	DefaultLoginRate   = rate.Limit(1)
	DefaultLoginBurst  = 5
	DefaultMaxLoginIPs = 10_000
	DefaultMaxTails    = 16
	// DefaultMaxTailsPerSession: a page opens one; a few tabs, a few.
	DefaultMaxTailsPerSession = 4
	// DefaultTailKeepalive: see Config.TailKeepalive.
	DefaultTailKeepalive = 15 * time.Second
	// DefaultTailWriteTimeout: see Config.TailWriteTimeout.
	DefaultTailWriteTimeout = 30 * time.Second
	// DefaultMaxBodyBytes bounds a JSON request: a policy is a few KiB.
	DefaultMaxBodyBytes = 1 << 20
)

// Config configures a Console.
type Config struct {
	// Auth authenticates the login tokens: the control plane's own
	// Authenticator, so a console login is worth exactly what the token is
	// worth over gRPC (and a token removed by a reload stops working in
	// the console at the next request).
	Auth *auth.Authenticator
	// Policy and Fleet are the control plane's service implementations;
	// the console calls them in-process with the logged-in identity.
	Policy wsfleetv1.PolicyServiceServer
	Fleet  wsfleetv1.FleetServiceServer
	// SessionTTL is how long a login lasts (absolute, not sliding).
	// Default 8h.
	SessionTTL time.Duration
	// MaxSessions bounds the session table; a login beyond it ends the
	// oldest session. Default 1000.
	MaxSessions int
	// LoginRate and LoginBurst limit login attempts per client address
	// (token guessing). Defaults 1/s, 5.
	LoginRate  rate.Limit
	LoginBurst int
	// MaxLoginIPs bounds the table of per-address login limiters; when it
	// is full of addresses still limited, logins from new addresses are
	// refused (429) until one frees up. Default 10,000.
	MaxLoginIPs int
	// MaxTails bounds the live tails (server-sent events) open at once
	// across sessions; each also holds one of the telemetry store's
	// MaxTails. Default 16.
	MaxTails int
	// MaxTailsPerSession bounds the live tails one session may hold, so
	// that one browser (or one script with a viewer's cookie) cannot take
	// every one of MaxTails. Default 4.
	MaxTailsPerSession int
	// TailKeepalive is how often an idle live tail sends a comment, so
	// that proxies keep it open and a gone browser is noticed; each time,
	// the session's token is authenticated again, so that a token removed
	// from the tokens file ends a tail (one long request) within it too.
	// Default 15s.
	TailKeepalive time.Duration
	// TailWriteTimeout bounds one write to a live tail's browser (set per
	// write, replacing the HTTP server's own write timeout, which would end
	// every tail after its first 30 s): a browser that stops reading ends
	// its tail, its slot and its stream on the control plane within it.
	// Default 30s.
	TailWriteTimeout time.Duration
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives one line per API call (the audit the gRPC interceptors
	// write for gRPC calls). Default logrus's standard logger.
	Log logrus.FieldLogger
}

func (c *Config) setDefaults() {
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.LoginRate == 0 {
		c.LoginRate = DefaultLoginRate
	}
	if c.LoginBurst == 0 {
		c.LoginBurst = DefaultLoginBurst
	}
	if c.MaxLoginIPs == 0 {
		c.MaxLoginIPs = DefaultMaxLoginIPs
	}
	if c.MaxTails == 0 {
		c.MaxTails = DefaultMaxTails
	}
	if c.MaxTailsPerSession == 0 {
		c.MaxTailsPerSession = DefaultMaxTailsPerSession
	}
	if c.TailWriteTimeout == 0 {
		c.TailWriteTimeout = DefaultTailWriteTimeout
	}
	if c.TailKeepalive == 0 {
		c.TailKeepalive = DefaultTailKeepalive
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Auth == nil || c.Policy == nil || c.Fleet == nil:
		return fmt.Errorf("%w: Auth, Policy and Fleet are required", ErrConfig)
	case c.SessionTTL < time.Minute:
		return fmt.Errorf("%w: SessionTTL %v is under a minute", ErrConfig, c.SessionTTL)
	case c.MaxSessions < 1 || c.MaxLoginIPs < 1 || c.MaxTails < 0 || c.MaxTailsPerSession < 0:
		return fmt.Errorf("%w: MaxSessions and MaxLoginIPs must be positive, MaxTails and MaxTailsPerSession not negative", ErrConfig)
	case c.LoginRate < 0 || c.LoginBurst < 1:
		return fmt.Errorf("%w: LoginRate must not be negative, LoginBurst must be positive", ErrConfig)
	case c.TailWriteTimeout < 0:
		return fmt.Errorf("%w: TailWriteTimeout %v is negative", ErrConfig, c.TailWriteTimeout)
	case c.TailKeepalive < 0:
		return fmt.Errorf("%w: TailKeepalive %v is negative", ErrConfig, c.TailKeepalive)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("%w: MaxBodyBytes %d is under 1 KiB", ErrConfig, c.MaxBodyBytes)
	}
	return nil
}
