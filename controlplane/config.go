package controlplane

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/console"
	"github.com/wsfleet/wsfleet/controlplane/publish"
	"github.com/wsfleet/wsfleet/controlplane/registry"
	"github.com/wsfleet/wsfleet/controlplane/registry/etcdstatus"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/rollout"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
	"github.com/wsfleet/wsfleet/controlplane/telemetry/fanout"
)

// The stores of Config.Store.
const (
	// StoreBolt is the embedded store, one file in DataDir: one control
	// plane's own.
	StoreBolt = "bolt"
	// StoreEtcd is an etcd cluster that any number of control-plane
	// replicas share.
	StoreEtcd = "etcd"
)

// Defaults of Config.
const (
	DefaultGRPCAddr        = "127.0.0.1:7400"
	DefaultHTTPAddr        = "127.0.0.1:7401"
	DefaultDataDir         = "./.wsfleet/control"
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxRecvMsgSize bounds one request; a policy is a few KiB, a
	// telemetry batch at most a few hundred KiB.
	DefaultMaxRecvMsgSize = 4 << 20

	// The etcd store's defaults, from package etcdstore.
	DefaultEtcdPrefix         = etcdstore.DefaultPrefix
	DefaultEtcdDialTimeout    = etcdstore.DefaultDialTimeout
	DefaultEtcdRequestTimeout = etcdstore.DefaultRequestTimeout

	// The defaults of the memory bounds, from the packages that apply them.
	DefaultTelemetryRetention           = telemetry.DefaultRetention
	DefaultTelemetryMaxEvents           = telemetry.DefaultMaxRaw
	DefaultTelemetryMaxBytes            = telemetry.DefaultMaxRawBytes
	DefaultTelemetryMaxOriginsPerMinute = telemetry.DefaultMaxOriginsPerMinute
	DefaultTelemetryMaxKeysPerMinute    = telemetry.DefaultMaxKeysPerMinute
	DefaultTelemetryMaxAggregateBytes   = telemetry.DefaultMaxAggregateBytes
	DefaultTelemetryMaxReporters        = telemetry.DefaultMaxReporters
	DefaultTelemetryMaxReporterBytes    = telemetry.DefaultMaxReporterBytes
	DefaultTrafficRetention             = telemetry.DefaultTrafficRetention
	DefaultTrafficMaxOrigins            = telemetry.DefaultMaxTrafficOrigins
	DefaultTrafficMaxBytes              = telemetry.DefaultMaxTrafficBytes
	DefaultMaxTails                     = telemetry.DefaultMaxTails
	DefaultTailBuffer                   = telemetry.DefaultTailBuffer
	DefaultMaxNodes                     = registry.DefaultMaxNodes
	DefaultMaxNodesBytes                = registry.DefaultMaxNodesBytes
	DefaultMaxOpenProposals             = store.DefaultMaxOpenProposals
	DefaultKeepClosedProposals          = store.DefaultKeepClosedProposals

	// The replicas' defaults (Store "etcd"), from the packages that apply
	// them.
	DefaultLeaseTTL            = replicas.DefaultLeaseTTL
	DefaultPeerTimeout         = fanout.DefaultTimeout
	DefaultStatusWriteInterval = etcdstatus.DefaultWriteInterval

	// DefaultRolloutInterval is how often a baking canary is evaluated.
	DefaultRolloutInterval = rollout.DefaultInterval
)

// Config configures a control plane.
type Config struct {
	// GRPCAddr is the gRPC listen address. Default 127.0.0.1:7400.
	GRPCAddr string
	// HTTPAddr serves /metrics and /healthz. Default 127.0.0.1:7401.
	HTTPAddr string
	// Store is where policy revisions are kept: StoreBolt ("bolt", the
	// default), the embedded file DataDir/policy.db, or StoreEtcd
	// ("etcd"), the etcd cluster Etcd names, shared by any number of
	// control-plane replicas. Either way the push to nodes follows the
	// store's watch of pool heads, so a change applied through any replica
	// reaches the nodes of every replica.
	Store string
	// DataDir holds the embedded store (policy.db). Default ./.wsfleet/control.
	// A missing policy.db is created (a new store, logged with its
	// identity); an existing one that is empty, damaged, not a wsfleet
	// store or locked by another process makes New fail: it is never
	// initialised over. InitStore creates one explicitly.
	DataDir string
	// Etcd is the etcd store (Store "etcd"): Endpoints (required), Prefix
	// (default "/wsfleet/"), CAFile/CertFile/KeyFile for TLS, Username and
	// Password, DialTimeout (bounds the start; default 5s) and
	// RequestTimeout (bounds every etcd call; default 5s); see
	// etcdstore.Config. An empty prefix becomes a new store (logged with
	// its identity); one with keys but no store identity, or another
	// program's keys, makes New fail. Its Log is Log.
	Etcd etcdstore.Config
	// EtcdPasswordFile, if set, holds Etcd.Password (a trailing newline
	// is dropped): a password in a flag would show in the process list.
	EtcdPasswordFile string

	// With Store "etcd" every replica answers for the whole fleet: each
	// writes the status of its nodes to etcd (under the store's prefix,
	// fleet/) and registers itself there under a lease; ListNodes reads
	// every replica's nodes from etcd, the event queries ask every
	// registered replica (see packages replicas, registry/etcdstatus and
	// telemetry/fanout).

	// AdvertiseAddr is the gRPC address the other replicas dial to reach
	// this one (host:port). Default GRPCAddr as bound; it must then not be
	// a wildcard (0.0.0.0, [::], an empty host): set it when GRPCAddr is
	// one. Without TLS it must be a loopback address: replicas forward
	// their callers' tokens to each other.
	AdvertiseAddr string
	// LeaseTTL is this replica's lease in etcd: a replica that dies is
	// gone, and its nodes are shown disconnected on the others, within it.
	// Default 10s, at least 2s; etcd counts it in whole seconds (rounded
	// up).
	LeaseTTL time.Duration
	// PeerTimeout bounds each call to another replica (a query's part, the
	// opening of a tail's); a replica that does not answer within it is
	// named in the answer as missing. Default 2s.
	PeerTimeout time.Duration
	// StatusWriteInterval is the least time between two etcd writes of one
	// node's status (changes in between are coalesced). Default 1s.
	StatusWriteInterval time.Duration
	// RolloutInterval is how often every replica evaluates the baking
	// canary rollouts (compares their error classes, promotes or rolls
	// back). Default 5s.
	RolloutInterval time.Duration
	// PeerTokenFile holds a bearer token (viewer is enough) that this
	// replica's rollout evaluator presents to the other replicas to read
	// their telemetry: its queries come from no caller whose token could
	// be forwarded. With --store etcd and --tokens-file; without it the
	// other replicas refuse the evaluator, their telemetry is missing, and
	// canaries are rolled back on the evidence there is but never promoted
	// automatically (GetRollout says so).
	PeerTokenFile string
	// PeerCA verifies the other replicas' certificates when they serve TLS
	// (TLSCert set); default the system's roots. PeerCert and PeerKey are
	// the client certificate shown to them when they require one
	// (ClientCA set); default TLSCert and TLSKey (which then need the
	// client authentication usage).
	PeerCA, PeerCert, PeerKey string

	// Dev turns authentication off. Allowed only when every listen address
	// is loopback.
	Dev bool
	// TokensFile maps bearer tokens to names and roles (see package auth).
	// Required unless Dev.
	TokensFile string

	// TLSCert and TLSKey enable TLS on the gRPC listener.
	TLSCert, TLSKey string
	// ClientCA, if set, requires clients to present a certificate signed by
	// it (mutual TLS). Requires TLSCert. A call with a bearer token is the
	// token's; a call without one is the node the certificate names (see
	// package auth): its SPIFFE ID spiffe://<trust-domain>/node/<ID> or
	// .../pool/<POOL>/node/<ID>, else its first DNS SAN, else its CN.
	ClientCA string
	// ClientCertPools are the pools a node identified by its client
	// certificate may act in when its SPIFFE ID names no pool: exact names,
	// "prefix-*" or "*". Default none: such a certificate acts in no pool.
	// Requires ClientCA.
	ClientCertPools []string

	// Memory the outside can fill is bounded in count and in bytes; zero
	// values mean the defaults. See the README's Limits for how the bounds
	// play together.

	// TelemetryRetention is how long per-minute error counts are kept.
	// Default 24h.
	TelemetryRetention time.Duration
	// TelemetryMaxEvents bounds the recent raw events kept for queries and
	// trace lookups. Default 100,000.
	TelemetryMaxEvents int
	// TelemetryMaxBytes bounds the same events in estimated bytes; the
	// oldest go first. Default 64 MiB.
	TelemetryMaxBytes int
	// TelemetryMaxOriginsPerMinute and TelemetryMaxKeysPerMinute bound the
	// distinct origins and (pool, node, class, origin) combinations counted
	// per minute; the rest count as "(other)". Defaults 1000 and 10,000.
	TelemetryMaxOriginsPerMinute int
	TelemetryMaxKeysPerMinute    int
	// TelemetryMaxAggregateBytes bounds all per-minute counts together in
	// estimated bytes. Default 1 GiB.
	TelemetryMaxAggregateBytes int
	// TelemetryMaxReporters and TelemetryMaxReporterBytes bound the table
	// of telemetry reporters remembered to drop resent batches. Defaults
	// 100,000 and 32 MiB.
	TelemetryMaxReporters     int
	TelemetryMaxReporterBytes int
	// TrafficRetention is how long the nodes' traffic samples are kept
	// for dry-run impact (which looks at the last hour); at least 65m.
	TrafficRetention time.Duration
	// TrafficMaxOrigins bounds the origins counted per pool and minute
	// from traffic samples, TrafficMaxBytes the whole table in estimated
	// bytes; beyond either, handshakes count as accepted_other.
	TrafficMaxOrigins int
	TrafficMaxBytes   int
	// MaxTails bounds the concurrent TailEvents streams; more get
	// ResourceExhausted. Default 64.
	MaxTails int
	// TailBuffer is how many events a tail may have waiting before it is
	// dropped for reading too slowly. Default 1024.
	TailBuffer int
	// MaxOpenProposals bounds the open policy proposals of one pool; more
	// are refused (ResourceExhausted). Default 100.
	MaxOpenProposals int
	// KeepClosedProposals is how many approved or rejected proposals the
	// store keeps; older ones are deleted (the revisions an approval made
	// keep the proposal id and approver). Default 1000.
	KeepClosedProposals int
	// MaxNodes bounds the nodes the registry knows, connected or not;
	// MaxNodesBytes their estimated memory. Beyond either the disconnected
	// node seen longest ago is forgotten, and a new node is refused with
	// ResourceExhausted when all are connected. Defaults 50,000 and
	// 256 MiB.
	MaxNodes      int
	MaxNodesBytes int

	// Publish configures the backend publish API: PublishService.Publish,
	// its HTTP/JSON form (POST /v1/publish on HTTPAddr, same tokens), the
	// nodes' delivery streams and NATS (see package publish for every
	// field and its default). Its MaxStreams defaults to MaxNodes.
	Publish publish.Config

	// Console configures the web console served at /ui/ on HTTPAddr (see
	// package console for every field and its default); its Auth, Policy
	// and Fleet are the control plane's own.
	Console console.Config

	// ShutdownTimeout bounds the graceful stop. Default 10s.
	ShutdownTimeout time.Duration
	// MaxRecvMsgSize bounds one gRPC message. Default 4 MiB.
	MaxRecvMsgSize int

	// Log is the logger; default logrus's standard logger.
	Log *logrus.Logger

	certPools auth.Patterns // ClientCertPools, checked
}

func (c *Config) setDefaults() {
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Store == "" {
		c.Store = StoreBolt
	}
	if c.Store == StoreEtcd && c.Etcd.Prefix == "" {
		c.Etcd.Prefix = DefaultEtcdPrefix
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxRecvMsgSize == 0 {
		c.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if c.RolloutInterval <= 0 {
		c.RolloutInterval = DefaultRolloutInterval
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
		{"--telemetry-max-events", c.TelemetryMaxEvents},
		{"--telemetry-max-bytes", c.TelemetryMaxBytes},
		{"--telemetry-max-origins-per-minute", c.TelemetryMaxOriginsPerMinute},
		{"--telemetry-max-keys-per-minute", c.TelemetryMaxKeysPerMinute},
		{"--telemetry-max-aggregate-bytes", c.TelemetryMaxAggregateBytes},
		{"--telemetry-max-reporters", c.TelemetryMaxReporters},
		{"--telemetry-max-reporter-bytes", c.TelemetryMaxReporterBytes},
		{"--traffic-max-origins", c.TrafficMaxOrigins},
		{"--traffic-max-bytes", c.TrafficMaxBytes},
		{"--max-tails", c.MaxTails},
		{"--tail-buffer", c.TailBuffer},
		{"--max-open-proposals", c.MaxOpenProposals},
		{"--keep-closed-proposals", c.KeepClosedProposals},
		{"--max-nodes", c.MaxNodes},
		{"--max-nodes-bytes", c.MaxNodesBytes},
		{"--max-recv-msg-size", c.MaxRecvMsgSize},
	} {
		if l.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %d", ErrConfig, l.flag, l.v)
		}
	}
	if c.TelemetryMaxBytes != 0 && c.TelemetryMaxBytes < telemetry.MinMaxRawBytes {
		return fmt.Errorf("%w: --telemetry-max-bytes must be at least %d, got %d", ErrConfig, telemetry.MinMaxRawBytes, c.TelemetryMaxBytes)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateReplicas(); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrConfig)
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		return fmt.Errorf("%w: --client-ca needs --tls-cert and --tls-key", ErrConfig)
	}
	if len(c.ClientCertPools) > 0 {
		if c.ClientCA == "" {
			return fmt.Errorf("%w: --client-cert-pools needs --client-ca", ErrConfig)
		}
		pools, err := auth.ParsePatterns("--client-cert-pools", c.ClientCertPools, true)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		c.certPools = pools
	}
	if c.Dev {
		if c.TokensFile != "" {
			return fmt.Errorf("%w: --dev turns auth off; drop --tokens-file or --dev", ErrConfig)
		}
		for _, a := range []string{c.GRPCAddr, c.HTTPAddr} {
			if !isLoopback(a) {
				return fmt.Errorf("%w: %q", ErrDevNotLoopback, a)
			}
		}
	} else if c.TokensFile == "" {
		return fmt.Errorf("%w: no tokens configured: pass --tokens-file (or --dev on loopback for local use)", ErrConfig)
	}
	return nil
}

// validateStore checks the store selection: etcd settings without
// --store etcd are a mistake to be loud about, not to ignore.
func (c *Config) validateStore() error {
	etcdSet := len(c.Etcd.Endpoints) > 0 || c.Etcd.CAFile != "" || c.Etcd.CertFile != "" || c.Etcd.KeyFile != "" ||
		c.Etcd.Username != "" || c.Etcd.Password != "" || c.EtcdPasswordFile != ""
	switch c.Store {
	case StoreBolt:
		if etcdSet {
			return fmt.Errorf("%w: --etcd-* flags need --store etcd", ErrConfig)
		}
	case StoreEtcd:
		if len(c.Etcd.Endpoints) == 0 {
			return fmt.Errorf("%w: --store etcd needs --etcd-endpoints", ErrConfig)
		}
		if c.EtcdPasswordFile != "" && c.Etcd.Password != "" {
			return fmt.Errorf("%w: give the etcd password in a file or in the config, not both", ErrConfig)
		}
		if c.Etcd.DialTimeout < 0 || c.Etcd.RequestTimeout < 0 {
			return fmt.Errorf("%w: --etcd-dial-timeout and --etcd-request-timeout must not be negative", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: --store must be %s or %s, got %q", ErrConfig, StoreBolt, StoreEtcd, c.Store)
	}
	return nil
}

// validateReplicas checks the replicas' settings: with the bolt store
// they would do nothing, which is a mistake to be loud about.
func (c *Config) validateReplicas() error {
	if c.Store != StoreEtcd {
		if c.AdvertiseAddr != "" || c.PeerCA != "" || c.PeerCert != "" || c.PeerKey != "" || c.PeerTokenFile != "" {
			return fmt.Errorf("%w: --advertise-addr and --peer-* need --store etcd", ErrConfig)
		}
		return nil
	}
	if c.LeaseTTL < 0 || c.PeerTimeout < 0 || c.StatusWriteInterval < 0 {
		return fmt.Errorf("%w: --lease-ttl, --peer-timeout and --status-write-interval must not be negative", ErrConfig)
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < replicas.MinLeaseTTL {
		return fmt.Errorf("%w: --lease-ttl must be at least %s, got %s", ErrConfig, replicas.MinLeaseTTL, c.LeaseTTL)
	}
	if c.PeerTokenFile != "" && c.TokensFile == "" {
		return fmt.Errorf("%w: --peer-token-file is for --tokens-file (in dev mode replicas need no token)", ErrConfig)
	}
	if (c.PeerCert == "") != (c.PeerKey == "") {
		return fmt.Errorf("%w: --peer-cert and --peer-key go together", ErrConfig)
	}
	if (c.PeerCA != "" || c.PeerCert != "") && c.TLSCert == "" {
		return fmt.Errorf("%w: --peer-ca, --peer-cert and --peer-key are for replicas serving TLS: they need --tls-cert and --tls-key", ErrConfig)
	}
	if c.AdvertiseAddr != "" {
		return c.checkAdvertised(c.AdvertiseAddr, "--advertise-addr")
	}
	host, _, err := net.SplitHostPort(c.GRPCAddr)
	if err == nil && isWildcard(host) {
		return fmt.Errorf("%w: --grpc-addr %s listens on every interface: with --store etcd give the address the other replicas reach this one at, --advertise-addr HOST:PORT", ErrConfig, c.GRPCAddr)
	}
	return nil
}

// checkAdvertised checks an address the other replicas are to dial.
func (c *Config) checkAdvertised(addr, flag string) error {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s %q is not HOST:PORT: %v", ErrConfig, flag, addr, err)
	case isWildcard(host):
		return fmt.Errorf("%w: %s %q is a wildcard address; the other replicas need one they can dial", ErrConfig, flag, addr)
	case port == "" || port == "0":
		return fmt.Errorf("%w: %s %q has no port", ErrConfig, flag, addr)
	case c.TLSCert == "" && !isLoopback(addr):
		return fmt.Errorf("%w: %s %s is not loopback and the gRPC port has no TLS: replicas forward their callers' tokens to each other, which must not cross the network in plaintext; use --tls-cert and --tls-key", ErrConfig, flag, addr)
	}
	return nil
}

// isWildcard reports whether a listen host binds every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// isLoopback reports whether a listen address binds loopback only. An empty
// host (":7400") binds every interface and is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) storePath() string { return filepath.Join(c.DataDir, "policy.db") }
