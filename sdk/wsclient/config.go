package wsclient

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
)

// Defaults of Config, the same as the JS SDK's (sdk/js).
const (
	// DefaultMinBackoff and DefaultMaxBackoff bound the full-jitter wait
	// between attempts: random(0, min(max, min·2^attempt)).
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 20 * time.Second
	// DefaultStableAfter: see Config.StableAfter.
	DefaultStableAfter = 5 * time.Second
	// DefaultOpenTimeout bounds one attempt from the dial to the welcome
	// frame; past it the attempt fails as client_handshake_timeout.
	DefaultOpenTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds a publish's or a subscribe's wait for
	// the node's answer.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultExplainTimeout bounds one /ws/explain or /ws/client-report
	// request.
	DefaultExplainTimeout = 5 * time.Second
	// DefaultMaxQueuedReports bounds the client_* failures waiting to be
	// reported; the oldest is dropped (and counted) beyond it.
	DefaultMaxQueuedReports = 50
	// DefaultMaxMessageBytes bounds one frame from the node.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultHeartbeatInterval and DefaultHeartbeatTimeout apply when the
	// welcome frame carries none (a node older than the welcome frame has
	// no application heartbeat to announce; its WebSocket pings still
	// count as frames).
	DefaultHeartbeatInterval = 25 * time.Second
	DefaultHeartbeatTimeout  = 60 * time.Second
)

// Report bounds of the node's /ws/client-report (contract of issue 11):
// more reports go in more requests; longer strings are clipped here, so a
// report is never refused for its length.
const (
	maxReportsPerRequest = 32
	maxReportURLBytes    = 512
	maxReportDetailBytes = 256
)

// Config configures a Client. Only URL is required.
type Config struct {
	// URL is the node's WebSocket endpoint: ws://host:port/ws or wss://…
	// Its path with /explain and /client-report appended is where the
	// client asks why an attempt failed and reports failures the node never
	// saw (http or https to the same host). Each attempt adds its own
	// trace_id query parameter.
	URL string
	// Origin, if set, is sent as the Origin header of the handshake, the
	// explain and the report requests: a service standing in for a page of
	// that origin. The node's origin allowlist decides on it.
	Origin string
	// Header holds extra handshake headers (credentials for the node's
	// authorization hook). Origin and trace headers are the client's own.
	Header http.Header
	// TLSConfig is used for wss:// and https:// (explain, reports).
	TLSConfig *tls.Config

	// MinBackoff and MaxBackoff bound the wait between attempts (full
	// jitter). Defaults DefaultMinBackoff and DefaultMaxBackoff. The wait is
	// never shorter than the retry_after_s the node gave. The schedule
	// starts over once a connection has stayed up StableAfter past its
	// welcome frame.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a welcomed connection must last for the
	// backoff schedule to start over: a node that welcomes and drops at
	// once (a crash loop, a broken route behind it) is not redialled in a
	// tight loop. Default DefaultStableAfter; the JS SDK's stableAfterMs.
	StableAfter time.Duration
	// OpenTimeout bounds an attempt: dial, TLS, the 101 and the welcome
	// frame. Default DefaultOpenTimeout.
	OpenTimeout time.Duration
	// RequestTimeout bounds Publish's and Subscribe's wait for the node's
	// answer when their context has no earlier deadline. Default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// ExplainTimeout bounds each explain and client-report request.
	// Default DefaultExplainTimeout.
	ExplainTimeout time.Duration
	// MaxQueuedReports bounds the client_* failures waiting for a node to
	// report them to; beyond it the oldest is dropped and counted
	// (Stats.ReportsDropped). Default DefaultMaxQueuedReports.
	MaxQueuedReports int
	// MaxMessageBytes bounds one frame read from the node; a bigger one
	// closes the connection (1009). Default DefaultMaxMessageBytes.
	MaxMessageBytes int

	// Messages overrides the end-user message per class name
	// ("origin_rejected" → "…"), for translation; a class not in it gets
	// errclass's UserMessage, the node's own table.
	Messages map[string]string

	// OnEvent, if set, is called with every state change, in order, from
	// the client's own goroutine: it must return quickly and must not call
	// Close (hand over to another goroutine for anything slow).
	OnEvent func(Event)

	// Log receives a line per connect, disconnect and failure; attempts
	// and reports go to debug. Default: logrus's standard logger.
	Log logrus.FieldLogger

	// Jitter draws the wait before an attempt from its ceiling (see
	// MinBackoff). Default: uniform on [0, ceiling) (full jitter). A test
	// seam: returning the ceiling makes the schedule deterministic.
	Jitter func(ceiling time.Duration) time.Duration
	// Now is the clock of event and report times. Default time.Now.
	Now func() time.Time
	// HTTPClient makes the explain and report requests. Default: a client
	// with TLSConfig and ExplainTimeout.
	HTTPClient *http.Client
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.StableAfter, DefaultStableAfter)
	def(&c.OpenTimeout, DefaultOpenTimeout)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.ExplainTimeout, DefaultExplainTimeout)
	if c.MaxQueuedReports == 0 {
		c.MaxQueuedReports = DefaultMaxQueuedReports
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	if c.Jitter == nil {
		c.Jitter = backoff.FullJitter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.TLSConfig
		// One request at a time per client, and rarely: no idle
		// connection is worth keeping (or leaking a goroutine for).
		tr.DisableKeepAlives = true
		c.HTTPClient = &http.Client{Transport: tr, Timeout: c.ExplainTimeout}
	}
}

// validate checks c after setDefaults and returns the parsed URL.
func (c *Config) validate() (*url.URL, error) {
	if c.URL == "" {
		return nil, fmt.Errorf("%w: URL is required", ErrConfig)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %v", ErrConfig, c.URL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("%w: URL %q: scheme must be ws or wss", ErrConfig, c.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: URL %q has no host", ErrConfig, c.URL)
	}
	if u.Query().Has("trace_id") {
		return nil, fmt.Errorf("%w: URL %q: trace_id is the client's own, one per attempt", ErrConfig, c.URL)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MinBackoff", c.MinBackoff}, {"MaxBackoff", c.MaxBackoff}, {"OpenTimeout", c.OpenTimeout},
		{"RequestTimeout", c.RequestTimeout}, {"ExplainTimeout", c.ExplainTimeout}, {"StableAfter", c.StableAfter}} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: %s %s is negative", ErrConfig, d.name, d.v)
		}
	}
	if c.MinBackoff > c.MaxBackoff {
		return nil, fmt.Errorf("%w: MinBackoff %s is above MaxBackoff %s", ErrConfig, c.MinBackoff, c.MaxBackoff)
	}
	if c.MaxQueuedReports < 0 || c.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("%w: MaxQueuedReports and MaxMessageBytes must not be negative", ErrConfig)
	}
	return u, nil
}
