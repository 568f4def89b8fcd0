// Command wsfleet-node runs a wsfleet data-plane node: the WebSocket
// gateway product apps connect to.
//
// Policy comes from the control plane (--control), with the last good one
// cached on disk so a node restarted while the control plane is down still
// serves; or, standalone, from a local file (--policy-file) that is
// re-read when it changes.
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
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane"
	"github.com/wsfleet/wsfleet/dataplane/policysource"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/policyclient"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type flags struct {
	cfg        dataplane.Config
	policyFile string
	control    admin.Config
	cacheFile  string
	labels     labelsFlag
	backoffMin time.Duration
	backoffMax time.Duration
	// telemetryBuffer bounds the reporter's buffer in events.
	telemetryBuffer int
	logLevel        string
	logFormat       string
	version         bool
}

func main() { os.Exit(run()) }

func run() int {
	var f flags
	fs := flag.NewFlagSet("wsfleet-node", flag.ContinueOnError)
	fs.StringVar(&f.cfg.ListenAddr, "listen", dataplane.DefaultListenAddr, "WebSocket listen address (endpoint at /ws)")
	fs.StringVar(&f.cfg.MetricsAddr, "metrics-addr", dataplane.DefaultMetricsAddr, `address for /metrics, /healthz and /readyz ("-" to disable)`)
	fs.StringVar(&f.cfg.NodeID, "node-id", "", "node id (default: host name plus a short random suffix)")
	fs.StringVar(&f.cfg.Pool, "pool", "default", "the node's pool")
	fs.Var(&f.labels, "label", "node label key=value, repeatable (shown by `wsctl nodes list`)")
	fs.StringVar(&f.policyFile, "policy-file", "", "policy file (YAML/JSON as `wsctl policy get -o yaml` prints): standalone, re-read on change and SIGHUP; with --control, the bootstrap policy when there is no cache")
	fs.StringVar(&f.control.Addr, "control", "", "control plane gRPC address; the node takes its policy from it and reports errors to it")
	fs.StringVar(&f.control.Token, "token", os.Getenv("WSFLEET_NODE_TOKEN"), "bearer token with the node role (env WSFLEET_NODE_TOKEN)")
	fs.BoolVar(&f.control.TLS, "tls", false, "use TLS to the control plane (system roots unless --ca-file)")
	fs.StringVar(&f.control.CAFile, "ca-file", "", "CA bundle to verify the control plane")
	fs.StringVar(&f.control.CertFile, "cert-file", "", "client certificate for mutual TLS")
	fs.StringVar(&f.control.KeyFile, "key-file", "", "client key for mutual TLS")
	fs.StringVar(&f.control.ServerName, "server-name", "", "override the TLS server name")
	fs.StringVar(&f.cacheFile, "cache-file", "", "last good policy from the control plane (default ./.wsfleet/node/policy-<pool>.json)")
	fs.IntVar(&f.cfg.MaxMessageBytesCap, "max-message-bytes", 0, "this node's ceiling on the policy's max_message_bytes; a policy above it is refused (0: no ceiling of its own)")
	fs.DurationVar(&f.backoffMin, "control-backoff-min", policyclient.DefaultMinBackoff, "first redial delay after losing the control plane (full jitter, doubling)")
	fs.DurationVar(&f.backoffMax, "control-backoff-max", policyclient.DefaultMaxBackoff, "longest redial delay")
	fs.IntVar(&f.telemetryBuffer, "telemetry-buffer", 0, "error events buffered for the control plane before the oldest are dropped (default 10000)")
	fs.DurationVar(&f.cfg.DrainTimeout, "drain-timeout", dataplane.DefaultDrainTimeout, "how long shutdown may take to close every connection")
	fs.StringVar(&f.cfg.AuthURL, "auth-url", "", "optional connect-authorization endpoint called before each upgrade")
	fs.DurationVar(&f.cfg.AuthTimeout, "auth-timeout", 0, "timeout of one --auth-url call (default 2s)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
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
	if f.version {
		fmt.Println(version)
		return 0
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsfleet-node: %v\n", err)
		return 2
	}
	f.cfg.Log = log
	if f.cfg.NodeID == "" {
		f.cfg.NodeID = defaultNodeID()
	}
	if f.cfg.Pool == "" {
		f.cfg.Pool = "default"
	}
	f.cfg.Registry = prometheus.NewRegistry()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.control.Addr != "" {
		return runControlled(ctx, &f, log)
	}
	return runStandalone(ctx, &f, log)
}

// runStandalone takes the policy from --policy-file (or the built-in
// defaults) and reloads it on change and SIGHUP.
func runStandalone(ctx context.Context, f *flags, log *logrus.Logger) int {
	var node *dataplane.Node
	var source *policysource.File
	if f.policyFile != "" {
		var err error
		source, err = policysource.NewFile(policysource.FileConfig{
			Path: f.policyFile,
			Pool: f.cfg.Pool,
			Log:  log,
			Apply: func(rev *wsfleetv1.PolicyRevision) error {
				if node == nil { // the initial load, before the node exists
					f.cfg.Policy = rev
					return nil
				}
				return node.Apply(rev)
			},
		})
		if err != nil {
			log.WithError(err).Error("cannot load the policy file")
			return 1
		}
	}
	node, err := dataplane.New(f.cfg)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	if err := node.Listen(); err != nil {
		log.WithError(err).Error("cannot listen")
		return 1
	}
	if source != nil {
		go source.Run(ctx)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					// policysource logs a refused file itself, once per content.
					_ = source.Reload()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if err := node.Run(ctx); err != nil {
		log.WithError(err).Error("node stopped with an error")
		return 1
	}
	return 0
}

// runControlled takes the policy from the control plane (latest wins, ACK
// or NACK), starts with the cached last good one, and streams every error
// event to the control plane. A control plane that is down never stops the
// node: it serves with what it has and redials with backoff.
func runControlled(ctx context.Context, f *flags, log *logrus.Logger) int {
	if f.cacheFile == "" {
		f.cacheFile = filepath.Join(".wsfleet", "node", "policy-"+f.cfg.Pool+".json")
	}
	if err := os.MkdirAll(filepath.Dir(f.cacheFile), 0o700); err != nil {
		log.WithError(err).Error("cannot create the cache directory")
		return 1
	}
	f.control.DialOptions = append(f.control.DialOptions,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true,
		}),
		// gRPC's own reconnect backoff (up to 2 minutes by default) would
		// keep failing calls with the old error long after the control
		// plane is back; keep it within the node's redial bounds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: f.backoffMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: f.backoffMax},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	conn, err := admin.Dial(f.control)
	if err != nil {
		log.WithError(err).Error("cannot dial the control plane")
		return 1
	}
	defer conn.Close()

	var (
		mu   sync.Mutex
		node *dataplane.Node
	)
	client, err := policyclient.New(policyclient.Config{
		Conn:       conn.Conn(),
		NodeID:     f.cfg.NodeID,
		Pool:       f.cfg.Pool,
		Labels:     f.labels.m,
		Build:      version,
		Address:    f.cfg.ListenAddr,
		CacheFile:  f.cacheFile,
		MinBackoff: f.backoffMin,
		MaxBackoff: f.backoffMax,
		Log:        log,
		Apply: func(rev *wsfleetv1.PolicyRevision) error {
			mu.Lock()
			n := node
			mu.Unlock()
			if n == nil {
				return errors.New("node not started yet")
			}
			return n.Apply(rev)
		},
	})
	if err != nil {
		log.WithError(err).Error("cannot start the policy client")
		return 1
	}
	switch {
	case client.Cached() != nil:
		f.cfg.Policy = client.Cached()
		log.WithFields(logrus.Fields{"revision": f.cfg.Policy.GetRevision(), "cache_file": f.cacheFile}).Info("starting with the cached policy")
	case f.policyFile != "":
		src, err := policysource.NewFile(policysource.FileConfig{Path: f.policyFile, Pool: f.cfg.Pool, Log: log,
			Apply: func(rev *wsfleetv1.PolicyRevision) error { f.cfg.Policy = rev; return nil }})
		if err != nil {
			log.WithError(err).Error("cannot load the bootstrap policy file")
			return 1
		}
		_ = src
		log.WithField("policy_file", f.policyFile).Info("starting with the bootstrap policy file until the control plane answers")
	default:
		log.Info("no cached policy: starting with the built-in defaults until the control plane answers")
	}

	reporter, err := telemetry.New(telemetry.Config{
		Conn: conn.Conn(), NodeID: f.cfg.NodeID, Pool: f.cfg.Pool, MaxEvents: f.telemetryBuffer,
		MinBackoff: f.backoffMin, MaxBackoff: f.backoffMax, Log: log,
	})
	if err != nil {
		log.WithError(err).Error("cannot start the telemetry reporter")
		return 1
	}
	f.cfg.Sink = reporter
	f.cfg.ReadyCheck = func() error {
		if !client.Ready() && f.cfg.Policy == nil {
			return errors.New("no policy from the control plane yet")
		}
		return nil
	}
	registerClientMetrics(f.cfg.Registry, f.cfg.NodeID, client, reporter)

	n, err := dataplane.New(f.cfg)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	mu.Lock()
	node = n
	mu.Unlock()
	if err := n.Listen(); err != nil {
		log.WithError(err).Error("cannot listen")
		return 1
	}

	// The policy client and the reporter outlive the node's drain: the
	// reporter must still be running to flush the drain's events.
	bg, cancelBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = client.Run(bg) }()
	go func() { defer wg.Done(); _ = reporter.Run(bg) }()
	runErr := n.Run(ctx)
	cancelBG()
	wg.Wait()
	if runErr != nil {
		log.WithError(runErr).Error("node stopped with an error")
		return 1
	}
	return 0
}

func registerClientMetrics(reg *prometheus.Registry, nodeID string, c *policyclient.Client, r *telemetry.Reporter) {
	labels := prometheus.Labels{"node_id": nodeID}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsfleet", Subsystem: "node", Name: "control_connected",
			Help: "1 while the policy watch stream to the control plane is up.", ConstLabels: labels},
			func() float64 { return b2f(c.Status().Connected) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsfleet", Subsystem: "node", Name: "control_dials_total",
			Help: "Watch streams attempted.", ConstLabels: labels},
			func() float64 { return float64(c.Status().Dials) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsfleet", Subsystem: "node", Name: "policy_nacks_total",
			Help: "Pushed policies this node refused.", ConstLabels: labels},
			func() float64 { return float64(c.Status().Nacks) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsfleet", Subsystem: "node", Name: "telemetry_recorded_total",
			Help: "Error events recorded for the control plane.", ConstLabels: labels},
			func() float64 { return float64(r.Stats().Recorded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsfleet", Subsystem: "node", Name: "telemetry_dropped_total",
			Help: "Error events dropped because the buffer was full (reported to the control plane).", ConstLabels: labels},
			func() float64 { return float64(r.Stats().Dropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsfleet", Subsystem: "node", Name: "telemetry_buffered",
			Help: "Error events waiting to be sent or acknowledged.", ConstLabels: labels},
			func() float64 { return float64(r.Stats().Buffered) }),
	)
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
