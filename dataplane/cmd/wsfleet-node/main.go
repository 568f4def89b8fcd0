// Command wsfleet-node runs a wsfleet data-plane node: the WebSocket
// gateway product apps connect to.
//
// Policy comes from the control plane (--control), with the last good one
// cached on disk so a node restarted while the control plane is down still
// serves; or, standalone, from a local file (--policy-file) that is
// re-read when it changes and on SIGHUP.
//
// Channels stop at the node unless --broker names NATS servers: then a
// publish on any node of the pool reaches every subscriber on every node.
//
// SIGINT and SIGTERM drain the node (close 1001 to every connection, a
// bounded telemetry flush) and exit 0; a drain that times out exits 1.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/dataplane"
	"github.com/wsfleet/wsfleet/dataplane/broker/natsbroker"
	"github.com/wsfleet/wsfleet/sdk/policyclient"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run()) }

func run() int {
	var (
		cfg        dataplane.Config
		cp         dataplane.ControlPlane
		policyFile string
		labels     labelsFlag
	)
	fs := flag.NewFlagSet("wsfleet-node", flag.ContinueOnError)
	fs.StringVar(&cfg.ListenAddr, "listen", dataplane.DefaultListenAddr, "WebSocket listen address (endpoint at /ws)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", dataplane.DefaultMetricsAddr, `address for /metrics, /healthz and /readyz ("-" to disable)`)
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof's profiles at /debug/pprof/ on --metrics-addr (go tool pprof http://ADDR/debug/pprof/profile); off by default")
	fs.StringVar(&cfg.NodeID, "node-id", "", "node id (default: host name plus a short random suffix)")
	fs.StringVar(&cfg.Pool, "pool", "default", "the node's pool")
	fs.Var(&labels, "label", "node label key=value, repeatable (shown by `wsctl nodes list`)")
	fs.StringVar(&policyFile, "policy-file", "", "policy file (YAML/JSON as `wsctl policy get -o yaml` prints): standalone, re-read on change and SIGHUP; with --control, the bootstrap policy when there is no cache")
	fs.StringVar(&cp.Dial.Addr, "control", "", "control plane gRPC address, or its replicas: host:port,host:port,... or a DNS name whose A/AAAA records are the replicas (host:port, dns:///host:port); the node takes its policy from one replica picked at random, reports errors to it, and moves to another when it dies")
	fs.StringVar(&cp.Dial.Token, "token", os.Getenv("WSFLEET_NODE_TOKEN"), "bearer token with the node role (env WSFLEET_NODE_TOKEN)")
	fs.BoolVar(&cp.Dial.TLS, "tls", false, "use TLS to the control plane (system roots unless --ca-file)")
	fs.StringVar(&cp.Dial.CAFile, "ca-file", "", "CA bundle to verify the control plane")
	fs.StringVar(&cp.Dial.CertFile, "cert-file", "", "client certificate for mutual TLS")
	fs.StringVar(&cp.Dial.KeyFile, "key-file", "", "client key for mutual TLS")
	fs.StringVar(&cp.Dial.ServerName, "server-name", "", "name every replica's TLS certificate is checked against (default: each replica's host as --control gives it)")
	fs.StringVar(&cp.CacheFile, "cache-file", "", "last good policy from the control plane (default ./.wsfleet/node/policy-<pool>.json)")
	fs.DurationVar(&cp.MinBackoff, "control-backoff-min", policyclient.DefaultMinBackoff, "first redial delay after losing the control plane (full jitter, doubling)")
	fs.DurationVar(&cp.MaxBackoff, "control-backoff-max", policyclient.DefaultMaxBackoff, "longest redial delay")
	fs.IntVar(&cp.TelemetryBuffer, "telemetry-buffer", 0, "error events buffered for the control plane before the oldest are dropped (default 10000)")
	fs.IntVar(&cp.TelemetryBufferBytes, "telemetry-buffer-bytes", 0, "bytes of error events buffered for the control plane before the oldest are dropped (default 8 MiB)")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", dataplane.DefaultMaxHeaderBytes, "bound on a handshake's request line and headers")
	fs.IntVar(&cfg.MaxOriginBytes, "max-origin-bytes", dataplane.DefaultMaxOriginBytes, "cap on a client's Origin as the node keeps it (events, log lines, connections); longer is cut and marked")
	fs.IntVar(&cfg.MaxUserAgentBytes, "max-user-agent-bytes", dataplane.DefaultMaxUserAgentBytes, "cap on a client's User-Agent as the node keeps it")
	fs.IntVar(&cfg.MaxErrorBytes, "max-error-bytes", dataplane.DefaultMaxErrorBytes, "cap on an event's error text (a close reason is the client's)")
	fs.IntVar(&cfg.MaxRemoteBytes, "max-remote-bytes", dataplane.DefaultMaxRemoteBytes, "cap on a client's remote address as the node keeps it")
	fs.DurationVar(&cfg.FoldWindow, "fold-window", dataplane.DefaultFoldWindow, "rejected handshakes of one class, origin and client network within this window are one event with a count after the first (negative: one event per rejection)")
	fs.IntVar(&cfg.FoldMaxKeys, "fold-max-keys", dataplane.DefaultFoldMaxKeys, "most (class, origin, network) keys folding at once; beyond it rejections fold into their class's overflow key, origin \"(other)\"")
	fs.DurationVar(&cfg.TrafficInterval, "traffic-interval", dataplane.DefaultTrafficInterval, "how often a traffic sample (accepted handshakes per origin, peaks) is cut and sent, at most 1m; samples never span two minutes. Shorter only for tests and demos")
	fs.IntVar(&cfg.TrafficMaxOrigins, "traffic-max-origins", dataplane.DefaultTrafficMaxOrigins, "distinct origins a traffic sample counts per interval, first come first counted; the rest count as accepted_other")
	fs.BoolVar(&cfg.DisableTraffic, "disable-traffic", false, "count no accepted traffic and send no traffic samples (dry runs then see nothing of this node); for measuring what counting costs")
	fs.DurationVar(&cfg.ExplainWindow, "explain-window", dataplane.DefaultExplainWindow, "how long GET /ws/explain answers for a rejected handshake or a closed connection")
	fs.IntVar(&cfg.ExplainMaxRecords, "explain-max-records", dataplane.DefaultExplainMaxRecords, "most attempts kept for /ws/explain; beyond it the oldest goes first")
	fs.IntVar(&cfg.ExplainMaxBytes, "explain-max-bytes", dataplane.DefaultExplainMaxBytes, "most bytes kept for /ws/explain; beyond it the oldest goes first")
	fs.Float64Var(&cfg.ExplainRate, "explain-rate", dataplane.DefaultExplainRate, "/ws/explain requests per second per client address (IPv6: per /64); beyond it 429")
	fs.IntVar(&cfg.ExplainBurst, "explain-burst", dataplane.DefaultExplainBurst, "/ws/explain requests a client may make at once above --explain-rate")
	fs.IntVar(&cfg.ClientReportMaxBodyBytes, "client-report-max-body-bytes", dataplane.DefaultClientReportMaxBodyBytes, "largest POST /ws/client-report body (413 beyond it)")
	fs.IntVar(&cfg.ClientReportMaxReports, "client-report-max-reports", dataplane.DefaultClientReportMaxReports, "most reports in one /ws/client-report request (400 beyond it)")
	fs.IntVar(&cfg.ClientReportMaxURLBytes, "client-report-max-url-bytes", dataplane.DefaultClientReportMaxURLBytes, "a client report's url is clipped to this many bytes")
	fs.IntVar(&cfg.ClientReportMaxDetailBytes, "client-report-max-detail-bytes", dataplane.DefaultClientReportMaxDetailBytes, "a client report's detail is clipped to this many bytes")
	fs.Float64Var(&cfg.ClientReportRate, "client-report-rate", dataplane.DefaultClientReportRate, "/ws/client-report requests per second per client address (IPv6: per /64); beyond it 429")
	fs.IntVar(&cfg.ClientReportBurst, "client-report-burst", dataplane.DefaultClientReportBurst, "/ws/client-report requests a client may make at once above --client-report-rate")
	fs.IntVar(&cfg.EndpointMaxClients, "endpoint-max-clients", dataplane.DefaultEndpointMaxClients, "client addresses whose rate /ws/explain and /ws/client-report each track; beyond it the least recently seen is forgotten")
	fs.IntVar(&cfg.FoldIPv4Prefix, "fold-ipv4-prefix", dataplane.DefaultFoldIPv4Prefix, "prefix length of an IPv4 client network for folding")
	fs.IntVar(&cfg.FoldIPv6Prefix, "fold-ipv6-prefix", dataplane.DefaultFoldIPv6Prefix, "prefix length of an IPv6 client network for folding")
	fs.IntVar(&cfg.MaxMessageBytesCap, "max-message-bytes", 0, "this node's ceiling on the policy's max_message_bytes; a policy above it is refused (0: no ceiling of its own)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", dataplane.DefaultDrainTimeout, "how long shutdown may take to close every connection")
	fs.DurationVar(&cfg.FlushTimeout, "flush-timeout", dataplane.DefaultFlushTimeout, "how long shutdown may then take to hand buffered error events to the control plane (not waited for when it is unreachable; the rest is counted in the last log line)")
	fs.StringVar(&cfg.AuthURL, "auth-url", "", "optional connect-authorization endpoint called before each upgrade")
	fs.DurationVar(&cfg.AuthTimeout, "auth-timeout", 0, "timeout of one --auth-url call (default 2s)")
	brokerURL := fs.String("broker", "inprocess", `channel fan-out: "inprocess" (channels stop at this node) or nats://HOST:PORT[,nats://HOST:PORT…] (tls:// for TLS): every node of the pool on that NATS shares its channels`)
	fs.StringVar(&cfg.NATS.CredsFile, "nats-creds", "", "NATS credentials file (user JWT and nkey seed)")
	fs.StringVar(&cfg.NATS.User, "nats-user", "", "NATS user (with --nats-password)")
	fs.StringVar(&cfg.NATS.Password, "nats-password", os.Getenv("WSFLEET_NATS_PASSWORD"), "NATS password (env WSFLEET_NATS_PASSWORD)")
	fs.StringVar(&cfg.NATS.Token, "nats-token", os.Getenv("WSFLEET_NATS_TOKEN"), "NATS token (env WSFLEET_NATS_TOKEN)")
	fs.StringVar(&cfg.NATS.CAFile, "nats-ca", "", "CA bundle to verify the NATS server (implies TLS)")
	fs.StringVar(&cfg.NATS.CertFile, "nats-cert", "", "client certificate for mutual TLS to NATS")
	fs.StringVar(&cfg.NATS.KeyFile, "nats-key", "", "client key for mutual TLS to NATS")
	fs.DurationVar(&cfg.NATS.WriteTimeout, "nats-write-timeout", natsbroker.DefaultWriteTimeout, "longest a publish waits for a stalled NATS server; then the connection is redialled and publishes are answered unavailable")
	fs.DurationVar(&cfg.NATS.SubscribeTimeout, "nats-subscribe-timeout", natsbroker.DefaultSubscribeTimeout, "longest a channel's first subscriber on this node waits for NATS to confirm the subscription")
	fs.DurationVar(&cfg.NATS.ConnectTimeout, "nats-connect-timeout", natsbroker.DefaultConnectTimeout, "bound on one dial and handshake to a NATS server")
	fs.DurationVar(&cfg.NATS.PingInterval, "nats-ping-interval", natsbroker.DefaultPingInterval, "ping interval to NATS; a server silent for (--nats-max-pings-out + 1) intervals is dropped and redialled")
	fs.IntVar(&cfg.NATS.MaxPingsOut, "nats-max-pings-out", natsbroker.DefaultMaxPingsOut, "unanswered pings before the NATS connection counts as dead")
	fs.DurationVar(&cfg.NATS.ReconnectWait, "nats-reconnect-wait", natsbroker.DefaultReconnectWait, "pause between redials of a NATS server, plus up to as much jitter (redials never stop)")
	fs.IntVar(&cfg.NATS.QueueLen, "nats-queue", natsbroker.DefaultQueueLen, "messages from NATS waiting for local delivery before new ones are dropped (counted)")
	fs.Int64Var(&cfg.NATS.QueueBytes, "nats-queue-bytes", natsbroker.DefaultQueueBytes, "bytes of messages from NATS waiting for local delivery before new ones are dropped (counted)")
	fs.IntVar(&cfg.NATS.Dispatchers, "nats-dispatchers", 0, "goroutines handing messages from NATS to local subscribers (default GOMAXPROCS)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wsfleet-node: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}
	if err := setBroker(fs, &cfg, *brokerURL); err != nil {
		fmt.Fprintf(os.Stderr, "wsfleet-node: %v\n", err)
		return 2
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsfleet-node: %v\n", err)
		return 2
	}
	cfg.Log = log
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	cp.Labels, cp.Build, cp.BootstrapFile = labels.m, version, policyFile

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case cp.Dial.Addr != "":
		err = dataplane.RunWithControlPlane(ctx, cfg, cp)
	case policyFile != "":
		err = dataplane.RunWithPolicyFile(ctx, cfg, policyFile, reloadOnSIGHUP(ctx))
	default:
		err = dataplane.RunWithPolicyFile(ctx, cfg, "", nil)
	}
	if err != nil {
		log.WithError(err).Error("node stopped with an error")
		return 1
	}
	return 0
}

// setBroker reads --broker: in process, or NATS at the given URLs. A
// --nats-* flag without NATS is a mistake worth stopping for: the node would
// otherwise run with channels that silently stop at it.
func setBroker(fs *flag.FlagSet, cfg *dataplane.Config, url string) error {
	switch {
	case url == "inprocess" || url == "":
		var natsFlags []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "nats-") {
				natsFlags = append(natsFlags, "--"+f.Name)
			}
		})
		if len(natsFlags) > 0 {
			return fmt.Errorf("%s given without --broker nats://HOST:PORT", strings.Join(natsFlags, ", "))
		}
		cfg.NATS = natsbroker.Config{}
		return nil
	case strings.HasPrefix(url, "nats://") || strings.HasPrefix(url, "tls://"):
		cfg.NATS.URLs = url
		return nil
	}
	return fmt.Errorf(`--broker %q: want "inprocess" or nats://HOST:PORT[,…] (tls:// for TLS)`, url)
}

// reloadOnSIGHUP turns SIGHUP into reload requests for the policy file
// until ctx ends. A SIGHUP while a request is pending joins it: one re-read
// covers both.
func reloadOnSIGHUP(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	return reload
}

// labelsFlag collects --label key=value.
type labelsFlag struct{ m map[string]string }

func (l *labelsFlag) String() string { return fmt.Sprint(l.m) }

func (l *labelsFlag) Set(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			if l.m == nil {
				l.m = map[string]string{}
			}
			l.m[s[:i]] = s[i+1:]
			return nil
		}
	}
	return fmt.Errorf("want key=value, got %q", s)
}

func newLogger(level, format string) (*logrus.Logger, error) {
	log := logrus.New()
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	log.SetLevel(lvl)
	switch format {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		return nil, fmt.Errorf("--log-format must be json or text")
	}
	return log, nil
}

func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
