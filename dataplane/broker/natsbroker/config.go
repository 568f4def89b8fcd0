package natsbroker

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Defaults of Config.
const (
	DefaultName             = "wsfleet-node"
	DefaultWriteTimeout     = 500 * time.Millisecond
	DefaultSubscribeTimeout = time.Second
	DefaultConnectTimeout   = 2 * time.Second
	DefaultPingInterval     = 2 * time.Second
	DefaultMaxPingsOut      = 2
	DefaultReconnectWait    = time.Second
	DefaultQueueLen         = 8192
	DefaultQueueBytes       = 64 << 20
)

// Config configures a NATS broker. Zero values take the defaults above.
type Config struct {
	// URLs are the NATS servers, comma-separated:
	// nats://host:port[,nats://host:port…] (tls:// for TLS; user:password@
	// in a URL works too). The client picks one and fails over to the
	// others (and to servers the cluster announces). Required.
	URLs string
	// Pool scopes every subject (api/subject): nodes of different pools on
	// one NATS never see each other's channels. Required.
	Pool string
	// Name is the connection's name as the server shows it (connz).
	// Default "wsfleet-node".
	Name string

	// Credentials: at most one of CredsFile (a NATS .creds file: JWT and
	// nkey seed), User and Password, or Token.
	CredsFile      string
	User, Password string
	Token          string
	// CAFile verifies the server (TLS, implied by it); CertFile and KeyFile
	// are a client certificate for mutual TLS.
	CAFile, CertFile, KeyFile string

	// WriteTimeout bounds one write to the server: a publish (and a
	// subscribe) waits at most about this long for a stalled server, then
	// the connection is dropped and redialled. Default 500ms.
	WriteTimeout time.Duration
	// SubscribeTimeout bounds waiting for the server to confirm the node's
	// first subscription to a channel (one round trip), so a client's
	// "subscribed" means messages published anywhere from then on reach it.
	// While the server is unreachable nothing is waited for: the
	// subscription takes effect when the connection is back. Default 1s.
	SubscribeTimeout time.Duration
	// ConnectTimeout bounds one dial and handshake. Default 2s.
	ConnectTimeout time.Duration
	// PingInterval and MaxPingsOut detect a server that stopped answering
	// (a stopped process keeps its TCP connections open): after MaxPingsOut
	// unanswered pings, at most PingInterval × (MaxPingsOut+1) after the
	// last answer, the connection is dropped and redialled. Defaults 2s
	// and 2: a silent server is noticed within 6s.
	PingInterval time.Duration
	MaxPingsOut  int
	// ReconnectWait is the pause between redials of the same server, plus
	// up to as much random jitter so a fleet does not redial in step.
	// Redials never stop. Default 1s.
	ReconnectWait time.Duration

	// QueueLen and QueueBytes bound the messages received from NATS and
	// not yet handed to local subscribers (all dispatchers together, each
	// message counting its subject and payload): what arrives beyond either
	// is dropped (counted in wsfleet_node_nats_messages_dropped_total)
	// rather than stop reading the connection, and with it the pings that
	// keep it alive. A NATS publisher can send messages up to the server's
	// max_payload, so the bytes bound is what holds a flood of large ones.
	// Defaults 8192 messages, 64 MiB.
	QueueLen   int
	QueueBytes int64
	// Dispatchers is the number of goroutines handing received messages to
	// local subscribers; a channel always goes to the same one, so its
	// messages stay in order. Default GOMAXPROCS.
	Dispatchers int

	// Log receives connection state changes; default logrus's standard
	// logger.
	Log *logrus.Entry
	// Registerer receives the broker's metrics (wsfleet_node_nats_*), with
	// ConstLabels on each; default none.
	Registerer  prometheus.Registerer
	ConstLabels prometheus.Labels
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.SubscribeTimeout, DefaultSubscribeTimeout)
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	defInt(&c.MaxPingsOut, DefaultMaxPingsOut)
	def(&c.ReconnectWait, DefaultReconnectWait)
	defInt(&c.QueueLen, DefaultQueueLen)
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	defInt(&c.Dispatchers, runtime.GOMAXPROCS(0))
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
}

// Validate checks what can be checked before connecting: required fields,
// one kind of credentials, and that the credentials file holds a user
// seed (New loads the TLS files too, before dialling). So a typo is an
// error when the node starts, not a broker that never connects.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.URLs) == "" {
		return fmt.Errorf("%w: URLs is required (nats://host:port)", ErrConfig)
	}
	for _, u := range strings.Split(c.URLs, ",") {
		u = strings.TrimSpace(u)
		scheme, _, ok := strings.Cut(u, "://")
		if !ok {
			continue // host:port; the client assumes nats://
		}
		switch scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%w: URL %q: scheme %q is not nats, tls, ws or wss", ErrConfig, u, scheme)
		}
	}
	if c.Pool == "" {
		return fmt.Errorf("%w: Pool is required", ErrConfig)
	}
	kinds := 0
	for _, set := range []bool{c.CredsFile != "", c.User != "", c.Token != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return fmt.Errorf("%w: give one of a credentials file, a user and password, or a token", ErrConfig)
	case c.Password != "" && c.User == "":
		return fmt.Errorf("%w: a password needs a user", ErrConfig)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%w: a client certificate needs both CertFile and KeyFile", ErrConfig)
	}
	if c.CredsFile != "" {
		b, err := os.ReadFile(c.CredsFile)
		if err != nil {
			return fmt.Errorf("%w: credentials file: %w", ErrConfig, err)
		}
		if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
			return fmt.Errorf("%w: credentials file %s: no user nkey seed: %w", ErrConfig, c.CredsFile, err)
		}
	}
	return nil
}
