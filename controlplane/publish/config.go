package publish

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/channel"
)

// Defaults of Config, and the ceiling of MaxBytes.
const (
	// DefaultMaxBytes is the default policy's max_message_bytes: a backend
	// message is no bigger than what a client may publish by default.
	DefaultMaxBytes = 64 << 10
	// MaxBytesCeiling bounds MaxBytes: api/channel.MaxDataBytes, 1 MiB
	// (NATS's default max_payload, far under what nodes take).
	MaxBytesCeiling = channel.MaxDataBytes
	// DefaultRate and DefaultBurst bound each credential's publishes.
	DefaultRate  = 1000
	DefaultBurst = 1000
	// DefaultTimeout bounds the wait for NATS to confirm a publish.
	DefaultTimeout = 2 * time.Second
	// DefaultNodeQueue is how many messages may wait for one node's
	// delivery stream.
	DefaultNodeQueue = 1024
	// DefaultMaxBufferedBytes bounds the messages waiting for every node's
	// delivery stream together.
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultMaxStreams is the registry's default bound on known nodes:
	// one delivery stream per node.
	DefaultMaxStreams = 50_000
)

// maxLimiters bounds the per-credential rate limiters kept; beyond, the
// table starts over (every credential gets a full bucket). Credentials
// come from the tokens file, so it is only ever reached by token churn
// over a long life.
const maxLimiters = 10_000

// Config configures the publish API. Zero values mean the defaults.
type Config struct {
	// MaxBytes bounds one message's data in bytes, at most MaxBytesCeiling.
	// Default 64 KiB. (--publish-max-bytes)
	MaxBytes int
	// Rate bounds each credential's publishes per second, with bursts of
	// Burst; a publish over it is refused with ResourceExhausted (HTTP 429
	// with Retry-After). Negative turns the limit off. Defaults 1000 and
	// 1000. (--publish-rate, --publish-burst)
	Rate  float64
	Burst int
	// Timeout bounds the wait for NATS to confirm a publish; past it the
	// answer is Unavailable, DELIVERY_UNCONFIRMED. Default 2s.
	// (--publish-timeout)
	Timeout time.Duration
	// NodeQueue bounds the messages waiting for one node's delivery
	// stream (without NATS); a node whose queue is full does not get the
	// message (nodes_skipped). Default 1024. (--publish-node-queue)
	NodeQueue int
	// MaxBufferedBytes bounds the data of every message waiting for any
	// delivery stream, each message counted once however many nodes it
	// waits for; a publish beyond it is refused with ResourceExhausted.
	// Default 64 MiB. (--publish-max-buffered-bytes)
	MaxBufferedBytes int
	// MaxStreams bounds the delivery streams attached at once (one per
	// node); more are refused with ResourceExhausted. Default 50,000.
	// (--max-nodes, as for the registry)
	MaxStreams int

	// NATS, when its URL is set, carries every publish instead of the
	// delivery streams.
	NATS NATSConfig

	// Registerer receives the metrics; default none.
	Registerer prometheus.Registerer
	// Log is the logger; default logrus's standard logger.
	Log *logrus.Logger
}

// NATSConfig says how to reach NATS. User and password (nats://u:p@host)
// or a token (nats://token@host) go in the URL.
type NATSConfig struct {
	// URL is one or more comma-separated nats:// (or tls://) URLs; empty
	// means no NATS. (--nats-url)
	URL string
	// Creds is a NATS credentials file (JWT and NKey seed). (--nats-creds)
	Creds string
	// CA verifies the NATS server (TLS). (--nats-ca)
	CA string
	// Cert and Key are a client certificate for mutual TLS; both or
	// neither. (--nats-cert, --nats-key)
	Cert, Key string
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBytes, DefaultMaxBytes)
	def(&c.Burst, DefaultBurst)
	def(&c.NodeQueue, DefaultNodeQueue)
	def(&c.MaxBufferedBytes, DefaultMaxBufferedBytes)
	def(&c.MaxStreams, DefaultMaxStreams)
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

func (c *Config) validate() error {
	for _, l := range []struct {
		flag string
		v    int
	}{
		{"--publish-max-bytes", c.MaxBytes},
		{"--publish-burst", c.Burst},
		{"--publish-node-queue", c.NodeQueue},
		{"--publish-max-buffered-bytes", c.MaxBufferedBytes},
		{"--max-nodes", c.MaxStreams},
	} {
		if l.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %d", ErrConfig, l.flag, l.v)
		}
	}
	switch {
	case c.MaxBytes > MaxBytesCeiling:
		return fmt.Errorf("%w: --publish-max-bytes is at most %d (NATS's default max_payload), got %d", ErrConfig, MaxBytesCeiling, c.MaxBytes)
	case c.MaxBufferedBytes < c.MaxBytes:
		return fmt.Errorf("%w: --publish-max-buffered-bytes (%d) must hold at least one message of --publish-max-bytes (%d)", ErrConfig, c.MaxBufferedBytes, c.MaxBytes)
	case c.Timeout < 0:
		return fmt.Errorf("%w: --publish-timeout must not be negative, got %s", ErrConfig, c.Timeout)
	case (c.NATS.Cert == "") != (c.NATS.Key == ""):
		return fmt.Errorf("%w: --nats-cert and --nats-key go together", ErrConfig)
	case c.NATS.URL == "" && (c.NATS.Creds != "" || c.NATS.CA != "" || c.NATS.Cert != ""):
		return fmt.Errorf("%w: --nats-creds, --nats-ca and --nats-cert need --nats-url", ErrConfig)
	}
	return nil
}
