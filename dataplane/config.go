package dataplane

import (
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/broker/natsbroker"
	"github.com/wsfleet/wsfleet/dataplane/internal/traffic"
)

// Defaults of Config. Every limit the node enforces on its own (as opposed
// to the policy's) is here.
const (
	DefaultListenAddr        = "127.0.0.1:8080"
	DefaultMetricsAddr       = "127.0.0.1:8081"
	DefaultPath              = "/ws"
	DefaultDrainTimeout      = 30 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultMaxQueueMessages  = 1024
	DefaultMaxQueueBytes     = 4 << 20
	DefaultMaxSubscriptions  = 128
	DefaultMaxChannelLength  = 128
	DefaultAbuseWindow       = 10 * time.Second
	DefaultCloseConcurrency  = 256
	DefaultShutdownRetry     = 5 * time.Second
	DefaultFlushTimeout      = 2 * time.Second
	DefaultMaxOriginBytes    = 512
	DefaultMaxUserAgentBytes = 512
	DefaultMaxErrorBytes     = 1024
	DefaultMaxRemoteBytes    = 128
	DefaultFoldWindow        = 10 * time.Second
	DefaultFoldMaxKeys       = 4096
	DefaultFoldIPv4Prefix    = 24
	DefaultFoldIPv6Prefix    = 64

	DefaultExplainWindow     = 60 * time.Second
	DefaultExplainMaxRecords = 65_536
	DefaultExplainMaxBytes   = 16 << 20
	DefaultExplainRate       = 2.0
	DefaultExplainBurst      = 10

	DefaultClientReportMaxBodyBytes   = 16 << 10
	DefaultClientReportMaxReports     = 32
	DefaultClientReportMaxURLBytes    = 512
	DefaultClientReportMaxDetailBytes = 256
	DefaultClientReportRate           = 1.0
	DefaultClientReportBurst          = 5

	DefaultEndpointMaxClients = 16_384

	DefaultTrafficInterval   = time.Minute
	DefaultTrafficMaxOrigins = traffic.DefaultMaxOrigins
	// MinTrafficInterval bounds Config.TrafficInterval from below: a sample
	// per 100ms is already a test setting.
	MinTrafficInterval = 100 * time.Millisecond
)

// Config configures a Node. Zero values take the defaults above.
type Config struct {
	// NodeID names the node in events, logs and metrics. Required.
	NodeID string
	// Pool is the node's pool; default "default".
	Pool string

	// ListenAddr serves WebSocket at Path (Run only). Default 127.0.0.1:8080.
	ListenAddr string
	// MetricsAddr serves /metrics, /healthz and /readyz (Run only); "-"
	// disables it. Default 127.0.0.1:8081.
	MetricsAddr string
	// Path is the WebSocket endpoint. Default /ws.
	Path string
	// Pprof serves net/http/pprof's profiles at /debug/pprof/ on
	// MetricsAddr, so the node can be profiled under load. Off by default:
	// a profile shows the node's code and data, and some profiles cost CPU
	// while they are taken, so only an operator who reaches the metrics
	// address on purpose should have them.
	Pprof bool

	// ReadHeaderTimeout cuts a client that trickles its request headers.
	// gws's own server has none. Default 5s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds the request headers. Default 16 KiB.
	MaxHeaderBytes int
	// HandshakeTimeout bounds writing the 101 response. Default 5s.
	HandshakeTimeout time.Duration

	// WriteTimeout bounds every write to a client that has to wait for
	// its socket; a client that does not take a write within it is closed
	// as slow_consumer. Default 10s.
	WriteTimeout time.Duration
	// MaxQueueMessages and MaxQueueBytes bound each connection's outgoing
	// queue, the frames being written included; overflowing either closes
	// it as slow_consumer. Defaults 1024 messages, 4 MiB.
	MaxQueueMessages int
	MaxQueueBytes    int
	// Writers is the number of goroutines writing queued frames to the
	// node's connections, shared by all of them (no goroutine per message
	// or per connection). A writer writes everything a connection has
	// queued with one system call and never waits for a client: a
	// connection whose socket is full gets a goroutine of its own until
	// that write is done (see WriteTimeout). Default GOMAXPROCS.
	Writers int

	// MaxMessageBytesCap, if set, is this node's own ceiling on the
	// policy's max_message_bytes (gws buffers a whole frame): a policy above
	// it is refused, and the node keeps running the previous one. 0: the
	// policy's documented bound applies.
	MaxMessageBytesCap int

	// MaxSubscriptions bounds the channels one connection may subscribe to.
	// Default 128.
	MaxSubscriptions int
	// MaxChannelLength bounds channel names. Default 128.
	MaxChannelLength int

	// AbuseWindow: a client paced continuously (every message over the
	// policy's rate) for this long is closed with 1008 policy_violation.
	// Default 10s.
	AbuseWindow time.Duration

	// DrainTimeout bounds Shutdown. Default 30s.
	DrainTimeout time.Duration
	// CloseConcurrency bounds how many connections Shutdown closes at once.
	// Default 256.
	CloseConcurrency int
	// ShutdownRetry is the Retry-After of a handshake refused while the
	// node drains (node_draining): other nodes take the client meanwhile.
	// Default 5s.
	ShutdownRetry time.Duration
	// FlushTimeout bounds the telemetry flush at the end of Shutdown, after
	// the last connection closed (on top of DrainTimeout). A sink that
	// cannot deliver at all (its control plane is unreachable) does not
	// wait for it; what is not delivered within it is logged as a count and
	// dropped: the node still exits cleanly. Default 2s.
	FlushTimeout time.Duration

	// MaxOriginBytes, MaxUserAgentBytes, MaxErrorBytes and MaxRemoteBytes
	// cap what a client supplies and the node keeps: a connection's origin,
	// user agent and remote address, and the same fields and the error text
	// of every event and its log line. A longer value is cut on a rune
	// boundary and ends with clip.Mark; invalid UTF-8 (a raw header may hold
	// any byte, and protobuf refuses to marshal it) is replaced with U+FFFD.
	// Each cut and each repair is counted in
	// wsfleet_node_event_fields_truncated_total{field} and
	// wsfleet_node_event_fields_invalid_utf8_total{field}. Defaults 512,
	// 512, 1024 and 128 bytes: no real origin (a DNS name is at most 253
	// bytes) or address is cut. The trace id needs no cap of its own:
	// admission.TraceID takes at most 128 bytes from the client.
	MaxOriginBytes    int
	MaxUserAgentBytes int
	MaxErrorBytes     int
	MaxRemoteBytes    int

	// FoldWindow: rejected handshakes of one class and HTTP status, from one
	// origin and client network, fold into one event with a count within
	// this window (see package dataplane/internal/fold): the first is
	// recorded at once, the rest as one event with repeat = their number
	// when the window ends. Metrics stay exact per rejection. Default 10s;
	// negative: every rejection is its own event.
	FoldWindow time.Duration
	// FoldMaxKeys bounds the keys (class, status, origin, network) folding
	// at once; when it is full, a new key's rejections fold into its class's
	// overflow key (origin "(other)"). Each key holds at most one event
	// (its capped fields: about 2.5 KiB with the default caps), so the
	// table stays within ~10 MiB. Default 4096.
	FoldMaxKeys int
	// FoldIPv4Prefix and FoldIPv6Prefix are the client network of a remote
	// address: its IPv4 /24 and IPv6 /64 by default.
	FoldIPv4Prefix int
	FoldIPv6Prefix int

	// ExplainWindow is how long GET <Path>/explain?trace_id= answers for a
	// rejected handshake or a closed connection (package
	// dataplane/internal/explain). Default 60s.
	ExplainWindow time.Duration
	// ExplainMaxRecords and ExplainMaxBytes bound what the node keeps for
	// it; over either the oldest record goes first. Each record is about
	// 160 bytes plus its trace id. Defaults 65,536 and 16 MiB.
	ExplainMaxRecords int
	ExplainMaxBytes   int
	// ExplainRate and ExplainBurst bound explain requests per client
	// address (IPv6: per /64); over them a client gets 429 with
	// Retry-After. Defaults 2/s, burst 10: a client asks once per failed
	// attempt, and attempts back off.
	ExplainRate  float64
	ExplainBurst int

	// ClientReportMaxBodyBytes bounds a POST <Path>/client-report body
	// (413 beyond it, without reading the rest). Default 16 KiB.
	ClientReportMaxBodyBytes int
	// ClientReportMaxReports bounds the reports of one request (400
	// beyond it). Default 32.
	ClientReportMaxReports int
	// ClientReportMaxURLBytes and ClientReportMaxDetailBytes cap a report's
	// url and detail: a longer one is clipped (api/clip), never refused.
	// Defaults 512 and 256 bytes.
	ClientReportMaxURLBytes    int
	ClientReportMaxDetailBytes int
	// ClientReportRate and ClientReportBurst bound report requests per
	// client address (IPv6: per /64); over them a client gets 429 with
	// Retry-After. Defaults 1/s, burst 5.
	ClientReportRate  float64
	ClientReportBurst int

	// EndpointMaxClients bounds the client addresses whose rate the
	// explain and client-report endpoints each track; beyond it the least
	// recently seen is forgotten (package dataplane/internal/iplimit).
	// Default 16,384.
	EndpointMaxClients int

	// Now is the clock of the explain window and the endpoints' rate
	// limits; default time.Now. Tests set it.
	Now func() time.Time

	// AuthURL, if set, is called before each upgrade (see package admission).
	AuthURL string
	// AuthTimeout bounds one AuthURL call. Default 2s.
	AuthTimeout time.Duration

	// Policy is the initial policy. Default: api/policy.Default() as
	// revision 0 of Pool.
	Policy *wsfleetv1.PolicyRevision

	// Broker fans publishes out. Default: NATS when NATS.URLs is set, an
	// in-process broker (channels stop at the node) otherwise. A Broker
	// given here is the caller's: the node does not close it. Any broker
	// but the in-process one sits behind a breaker with the policy's
	// breaker thresholds (broker.Guard).
	Broker broker.Broker
	// NATS, when NATS.URLs is set, makes the node's broker NATS (package
	// dataplane/broker/natsbroker): a publish on any node of the pool
	// reaches every subscriber on every node. The node fills in Pool, Log,
	// Registerer and ConstLabels, and Name ("wsfleet-node <NodeID>") when
	// empty; every other field is natsbroker's, with its defaults.
	NATS natsbroker.Config
	// Hooks let an embedding service take part in channel operations.
	Hooks Hooks
	// Sink receives every event besides the log and metrics; optional. A
	// sink that is also a TrafficSink gets the traffic samples.
	Sink EventSink

	// TrafficInterval is how often the node cuts a traffic sample (what it
	// accepted: handshakes per origin, peaks; package
	// dataplane/internal/traffic) and hands it to the sink. A sample never
	// spans two minutes: it is also cut at every minute boundary, and
	// carries the minute it belongs to; the control plane adds up the
	// samples of a node's minute. Shorter than a minute only for tests and
	// demos (a dry run then sees traffic seconds after it happened).
	// Default 1m, at least MinTrafficInterval, at most 1m.
	TrafficInterval time.Duration
	// TrafficMaxOrigins bounds the distinct origins a sample counts; the
	// handshakes of origins beyond it (first come first counted) count as
	// accepted_other. Default 256.
	TrafficMaxOrigins int
	// DisableTraffic turns the traffic counting off: no handshake or
	// message is counted and no sample is cut, so a dry run sees nothing
	// of this node. It exists to measure what counting costs (make bench
	// compares a node with and without it); a fleet needs it on.
	DisableTraffic bool

	// ReadyCheck, if set, is an extra /readyz condition (e.g. "a policy
	// from the control plane or its cache is applied").
	ReadyCheck func() error

	// Log is the logger; default logrus's standard logger.
	Log *logrus.Logger
	// Registry receives the node's metrics and is served on MetricsAddr;
	// default a new registry.
	Registry *prometheus.Registry
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
	if c.Pool == "" {
		c.Pool = "default"
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = DefaultMetricsAddr
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defInt(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	defInt(&c.MaxQueueMessages, DefaultMaxQueueMessages)
	defInt(&c.MaxQueueBytes, DefaultMaxQueueBytes)
	defInt(&c.Writers, runtime.GOMAXPROCS(0))
	defInt(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	defInt(&c.MaxChannelLength, DefaultMaxChannelLength)
	def(&c.AbuseWindow, DefaultAbuseWindow)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	defInt(&c.CloseConcurrency, DefaultCloseConcurrency)
	def(&c.ShutdownRetry, DefaultShutdownRetry)
	def(&c.FlushTimeout, DefaultFlushTimeout)
	defInt(&c.MaxOriginBytes, DefaultMaxOriginBytes)
	defInt(&c.MaxUserAgentBytes, DefaultMaxUserAgentBytes)
	defInt(&c.MaxErrorBytes, DefaultMaxErrorBytes)
	defInt(&c.MaxRemoteBytes, DefaultMaxRemoteBytes)
	if c.FoldWindow == 0 {
		c.FoldWindow = DefaultFoldWindow
	}
	defInt(&c.FoldMaxKeys, DefaultFoldMaxKeys)
	defInt(&c.FoldIPv4Prefix, DefaultFoldIPv4Prefix)
	defInt(&c.FoldIPv6Prefix, DefaultFoldIPv6Prefix)
	def(&c.ExplainWindow, DefaultExplainWindow)
	defInt(&c.ExplainMaxRecords, DefaultExplainMaxRecords)
	defInt(&c.ExplainMaxBytes, DefaultExplainMaxBytes)
	if c.ExplainRate <= 0 {
		c.ExplainRate = DefaultExplainRate
	}
	defInt(&c.ExplainBurst, DefaultExplainBurst)
	defInt(&c.ClientReportMaxBodyBytes, DefaultClientReportMaxBodyBytes)
	defInt(&c.ClientReportMaxReports, DefaultClientReportMaxReports)
	defInt(&c.ClientReportMaxURLBytes, DefaultClientReportMaxURLBytes)
	defInt(&c.ClientReportMaxDetailBytes, DefaultClientReportMaxDetailBytes)
	if c.ClientReportRate <= 0 {
		c.ClientReportRate = DefaultClientReportRate
	}
	defInt(&c.ClientReportBurst, DefaultClientReportBurst)
	defInt(&c.EndpointMaxClients, DefaultEndpointMaxClients)
	def(&c.TrafficInterval, DefaultTrafficInterval)
	defInt(&c.TrafficMaxOrigins, DefaultTrafficMaxOrigins)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

func (c *Config) validate() error {
	if c.NodeID == "" {
		return fmt.Errorf("%w: NodeID is required", ErrConfig)
	}
	if len(c.Path) == 0 || c.Path[0] != '/' {
		return fmt.Errorf("%w: Path %q must start with /", ErrConfig, c.Path)
	}
	if c.FoldIPv4Prefix > 32 || c.FoldIPv6Prefix > 128 {
		return fmt.Errorf("%w: FoldIPv4Prefix %d / FoldIPv6Prefix %d: at most 32 / 128 bits", ErrConfig, c.FoldIPv4Prefix, c.FoldIPv6Prefix)
	}
	if c.TrafficInterval < MinTrafficInterval || c.TrafficInterval > time.Minute {
		return fmt.Errorf("%w: TrafficInterval %v: between %v and 1m", ErrConfig, c.TrafficInterval, MinTrafficInterval)
	}
	if c.Broker != nil && c.NATS.URLs != "" {
		return fmt.Errorf("%w: Broker and NATS.URLs are both set; give one", ErrConfig)
	}
	for _, a := range []string{c.ListenAddr, c.MetricsAddr} {
		if a == "-" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: listen address %q: %w", ErrConfig, a, err)
		}
	}
	return nil
}
