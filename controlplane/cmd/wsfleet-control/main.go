// Command wsfleet-control runs the wsfleet control plane.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	"github.com/wsfleet/wsfleet/controlplane"
	"github.com/wsfleet/wsfleet/controlplane/console"
	"github.com/wsfleet/wsfleet/controlplane/publish"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("wsfleet-control", flag.ContinueOnError)
	var cfg controlplane.Config
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", controlplane.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", controlplane.DefaultHTTPAddr, "listen address for /metrics and /healthz")
	fs.StringVar(&cfg.Store, "store", controlplane.StoreBolt, "policy store: bolt (embedded, in --data-dir) or etcd (shared by control-plane replicas, --etcd-*)")
	fs.StringVar(&cfg.DataDir, "data-dir", controlplane.DefaultDataDir, "directory of the embedded store (policy.db, created if missing)")
	initStore := fs.Bool("init", false, "create a new, empty store (in --data-dir, or under --etcd-prefix), print its id and exit; refused if a store is there")
	fs.Func("etcd-endpoints", "with --store etcd: comma-separated etcd client addresses (host:port or URLs)", func(v string) error {
		for _, ep := range strings.Split(v, ",") {
			cfg.Etcd.Endpoints = append(cfg.Etcd.Endpoints, strings.TrimSpace(ep))
		}
		return nil
	})
	fs.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", controlplane.DefaultEtcdPrefix, "with --store etcd: the key prefix the store lives under (one per fleet)")
	fs.StringVar(&cfg.Etcd.CAFile, "etcd-ca", "", "with --store etcd: CA bundle (PEM) that signed etcd's server certificates; turns TLS on")
	fs.StringVar(&cfg.Etcd.CertFile, "etcd-cert", "", "with --store etcd: client certificate (PEM) for etcd; turns TLS on")
	fs.StringVar(&cfg.Etcd.KeyFile, "etcd-key", "", "with --store etcd: the client certificate's key (PEM)")
	fs.StringVar(&cfg.Etcd.Username, "etcd-username", "", "with --store etcd: etcd user, when etcd's authentication is on (with --etcd-password-file)")
	fs.StringVar(&cfg.EtcdPasswordFile, "etcd-password-file", "", "with --store etcd: file holding the etcd user's password")
	fs.DurationVar(&cfg.Etcd.DialTimeout, "etcd-dial-timeout", controlplane.DefaultEtcdDialTimeout, "with --store etcd: how long the start waits for etcd before giving up")
	fs.DurationVar(&cfg.Etcd.RequestTimeout, "etcd-request-timeout", controlplane.DefaultEtcdRequestTimeout, "with --store etcd: bound of every etcd read and write")
	// Replicas on one etcd store (README, Control-plane replicas).
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "with --store etcd: the gRPC address the other replicas reach this one at (default --grpc-addr as bound; required when that is a wildcard)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", controlplane.DefaultLeaseTTL, "with --store etcd: this replica's lease in etcd; a replica that dies is gone, and its nodes shown disconnected, within it")
	fs.DurationVar(&cfg.PeerTimeout, "peer-timeout", controlplane.DefaultPeerTimeout, "with --store etcd: how long a query waits for each other replica's part; a replica that does not answer is named in the answer as missing")
	fs.DurationVar(&cfg.RolloutInterval, "rollout-interval", controlplane.DefaultRolloutInterval, "how often the baking canary rollouts are evaluated (error classes on canary nodes against the rest; promote or roll back)")
	fs.DurationVar(&cfg.StatusWriteInterval, "status-write-interval", controlplane.DefaultStatusWriteInterval, "with --store etcd: least time between two etcd writes of one node's status")
	fs.StringVar(&cfg.PeerCA, "peer-ca", "", "with --store etcd and --tls-cert: CA bundle (PEM) verifying the other replicas' certificates (default the system's roots)")
	fs.StringVar(&cfg.PeerCert, "peer-cert", "", "with --store etcd and --client-ca: client certificate (PEM) shown to the other replicas (default --tls-cert)")
	fs.StringVar(&cfg.PeerKey, "peer-key", "", "the key of --peer-cert (default --tls-key)")
	fs.StringVar(&cfg.PeerTokenFile, "peer-token-file", "", "with --store etcd and --tokens-file: file holding a bearer token (viewer is enough) the rollout evaluator shows the other replicas to read their telemetry; without it canaries are never promoted automatically")
	fs.BoolVar(&cfg.Dev, "dev", false, "turn authentication off (allowed only on loopback addresses)")
	fs.StringVar(&cfg.TokensFile, "tokens-file", "", "YAML file of bearer tokens with names and roles (admin, viewer, node, publisher; a node token lists the nodes and pools it may act as, a publisher token the pools it may publish to); re-read on SIGHUP")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&cfg.ClientCA, "client-ca", "", "CA bundle (PEM) for client certificates; turns on mutual TLS (a call without a token is then the node its certificate names)")
	fs.Func("client-cert-pools", `comma-separated pools ("edge-*", "*" for any) a node identified by its client certificate may act in when its SPIFFE ID names no pool (default none)`, func(v string) error {
		for _, p := range strings.Split(v, ",") {
			cfg.ClientCertPools = append(cfg.ClientCertPools, strings.TrimSpace(p))
		}
		return nil
	})
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", controlplane.DefaultShutdownTimeout, "how long a graceful stop may take")
	// Memory bounds: every buffer nodes and clients can fill is bounded in
	// count and in bytes (README, Security model, Limits).
	fs.IntVar(&cfg.MaxRecvMsgSize, "max-recv-msg-size", controlplane.DefaultMaxRecvMsgSize, "largest gRPC request in bytes (a telemetry batch, a policy)")
	fs.DurationVar(&cfg.TelemetryRetention, "telemetry-retention", controlplane.DefaultTelemetryRetention, "how long per-minute error counts are kept (errors top)")
	fs.IntVar(&cfg.TelemetryMaxEvents, "telemetry-max-events", controlplane.DefaultTelemetryMaxEvents, "raw error events kept for errors tail and trace; the oldest go first")
	fs.IntVar(&cfg.TelemetryMaxBytes, "telemetry-max-bytes", controlplane.DefaultTelemetryMaxBytes, "the same raw events' estimated bytes; the oldest go first")
	fs.IntVar(&cfg.TelemetryMaxOriginsPerMinute, "telemetry-max-origins-per-minute", controlplane.DefaultTelemetryMaxOriginsPerMinute, `distinct origins counted per minute; the rest count as "(other)"`)
	fs.IntVar(&cfg.TelemetryMaxKeysPerMinute, "telemetry-max-keys-per-minute", controlplane.DefaultTelemetryMaxKeysPerMinute, `distinct (pool, node, class, origin) counted per minute; the rest count as "(other)"`)
	fs.IntVar(&cfg.TelemetryMaxAggregateBytes, "telemetry-max-aggregate-bytes", controlplane.DefaultTelemetryMaxAggregateBytes, `estimated bytes of all per-minute counts; beyond, new origins and combinations count as "(other)"`)
	fs.IntVar(&cfg.TelemetryMaxReporters, "telemetry-max-reporters", controlplane.DefaultTelemetryMaxReporters, "telemetry reporters remembered to drop resent batches")
	fs.IntVar(&cfg.TelemetryMaxReporterBytes, "telemetry-max-reporter-bytes", controlplane.DefaultTelemetryMaxReporterBytes, "the same reporters' estimated bytes")
	fs.DurationVar(&cfg.TrafficRetention, "traffic-retention", controlplane.DefaultTrafficRetention, "how long the nodes' traffic samples are kept for dry-run impact (the last hour); at least 65m")
	fs.IntVar(&cfg.TrafficMaxOrigins, "traffic-max-origins", controlplane.DefaultTrafficMaxOrigins, "distinct origins counted per pool and minute from traffic samples; the rest count as unattributed")
	fs.IntVar(&cfg.TrafficMaxBytes, "traffic-max-bytes", controlplane.DefaultTrafficMaxBytes, "estimated bytes of the traffic samples kept; beyond, new origins count as unattributed until old minutes expire")
	fs.IntVar(&cfg.MaxTails, "max-tails", controlplane.DefaultMaxTails, "concurrent errors tail --follow streams; more are refused (ResourceExhausted)")
	fs.IntVar(&cfg.MaxOpenProposals, "max-open-proposals", controlplane.DefaultMaxOpenProposals, "open policy proposals per pool; more are refused (ResourceExhausted)")
	fs.IntVar(&cfg.KeepClosedProposals, "keep-closed-proposals", controlplane.DefaultKeepClosedProposals, "approved or rejected proposals kept in the store; older ones are deleted")
	fs.IntVar(&cfg.TailBuffer, "tail-buffer", controlplane.DefaultTailBuffer, "events a tail may have waiting before it is dropped for reading too slowly")
	fs.IntVar(&cfg.MaxNodes, "max-nodes", controlplane.DefaultMaxNodes, "nodes known at once; beyond, the disconnected node seen longest ago is forgotten, else a new node is refused")
	fs.IntVar(&cfg.MaxNodesBytes, "max-nodes-bytes", controlplane.DefaultMaxNodesBytes, "the known nodes' estimated bytes, bounded the same way")
	// Backend publish: PublishService.Publish and POST /v1/publish on
	// --http-addr (README, Backend publish).
	fs.IntVar(&cfg.Publish.MaxBytes, "publish-max-bytes", publish.DefaultMaxBytes, fmt.Sprintf("largest message a backend may publish, in bytes of its JSON data (at most %d)", publish.MaxBytesCeiling))
	fs.Float64Var(&cfg.Publish.Rate, "publish-rate", publish.DefaultRate, "publishes per second per credential; more are refused (ResourceExhausted, HTTP 429); negative: no limit")
	fs.IntVar(&cfg.Publish.Burst, "publish-burst", publish.DefaultBurst, "publishes a credential may make at once above --publish-rate")
	fs.DurationVar(&cfg.Publish.Timeout, "publish-timeout", publish.DefaultTimeout, "how long a publish waits for NATS to confirm it")
	fs.IntVar(&cfg.Publish.NodeQueue, "publish-node-queue", publish.DefaultNodeQueue, "messages waiting for one node's delivery stream (without NATS); a node whose queue is full misses the message")
	fs.IntVar(&cfg.Publish.MaxBufferedBytes, "publish-max-buffered-bytes", publish.DefaultMaxBufferedBytes, "bytes of messages waiting for all nodes' delivery streams together; beyond, publishes are refused")
	fs.StringVar(&cfg.Publish.NATS.URL, "nats-url", "", "NATS server(s), nats://HOST:PORT[,...] (user:password@ or token@ in the URL); publishes then go through NATS instead of the nodes' delivery streams")
	fs.StringVar(&cfg.Publish.NATS.Creds, "nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&cfg.Publish.NATS.CA, "nats-ca", "", "CA bundle (PEM) to verify the NATS server (TLS)")
	fs.StringVar(&cfg.Publish.NATS.Cert, "nats-cert", "", "client certificate (PEM) for NATS mutual TLS")
	fs.StringVar(&cfg.Publish.NATS.Key, "nats-key", "", "client key (PEM) for NATS mutual TLS")
	// Web console on --http-addr at /ui/ (README, Web console).
	fs.DurationVar(&cfg.Console.SessionTTL, "console-session-ttl", console.DefaultSessionTTL, "how long a web console login lasts")
	fs.IntVar(&cfg.Console.MaxSessions, "console-max-sessions", console.DefaultMaxSessions, "web console sessions held at once; a login beyond ends the oldest")
	fs.Func("console-login-rate", fmt.Sprintf("web console login attempts per second per client address (default %v)", float64(console.DefaultLoginRate)), func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("want a positive number, got %q", v)
		}
		cfg.Console.LoginRate = rate.Limit(f)
		return nil
	})
	fs.IntVar(&cfg.Console.LoginBurst, "console-login-burst", console.DefaultLoginBurst, "web console login attempts a client address may make at once")
	fs.IntVar(&cfg.Console.MaxLoginIPs, "console-max-login-ips", console.DefaultMaxLoginIPs, "client addresses whose login attempts are tracked; beyond, new ones are refused until one is idle")
	fs.IntVar(&cfg.Console.MaxTails, "console-max-tails", console.DefaultMaxTails, "web console live tails open at once")
	fs.IntVar(&cfg.Console.MaxTailsPerSession, "console-max-tails-per-session", console.DefaultMaxTailsPerSession, "web console live tails one session may hold")
	fs.DurationVar(&cfg.Console.TailWriteTimeout, "console-tail-write-timeout", console.DefaultTailWriteTimeout, "how long one write to a web console live tail may block before the tail is ended (a browser that stopped reading)")
	fs.DurationVar(&cfg.Console.TailKeepalive, "console-tail-keepalive", console.DefaultTailKeepalive, "how often an idle web console live tail sends a keepalive and re-authenticates its token")
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
		fmt.Fprintf(os.Stderr, "wsfleet-control: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}

	log := logrus.New()
	lvl, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsfleet-control: %v\n", err)
		return 2
	}
	log.SetLevel(lvl)
	switch *logFormat {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		fmt.Fprintf(os.Stderr, "wsfleet-control: --log-format must be json or text\n")
		return 2
	}
	cfg.Log = log

	if *initStore {
		id, where, err := controlplane.InitStore(cfg)
		if err != nil {
			log.WithError(err).Error("cannot create a store")
			return 1
		}
		fmt.Printf("created a new store %s in %s\n", id, where)
		return 0
	}

	srv, err := controlplane.New(cfg)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				if err := srv.ReloadTokens(); err != nil {
					log.WithError(err).Error("tokens not reloaded; keeping the running set")
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	if err := srv.Run(ctx); err != nil {
		log.WithError(err).Error("control plane failed")
		return 1
	}
	return 0
}
