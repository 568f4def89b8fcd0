package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/policysource"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/deliveryclient"
	"github.com/wsfleet/wsfleet/sdk/policyclient"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// RunWithPolicyFile runs a standalone node whose policy comes from a file
// (see package policysource): loaded before the node is built (an invalid
// file is an error), then re-read when it changes and on every receive
// from reload (the binary forwards SIGHUP there; a library owns no process
// signals; nil: no reloads). An empty path runs the node on cfg.Policy or
// the built-in defaults.
func RunWithPolicyFile(ctx context.Context, cfg Config, path string, reload <-chan struct{}) error {
	cfg.setDefaults()
	if path == "" {
		return runNode(ctx, cfg)
	}
	// No Apply yet: the first revision is what the node is built with.
	source, err := policysource.NewFile(policysource.FileConfig{Path: path, Pool: cfg.Pool, Log: cfg.Log})
	if err != nil {
		return err
	}
	cfg.Policy = source.Current()
	n, err := New(cfg)
	if err != nil {
		return err
	}
	if err := n.Listen(); err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	srcCtx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		source.Watch(srcCtx, n.Apply, reload)
	}()
	err = n.Run(ctx)
	stop()
	<-watched
	return err
}

func runNode(ctx context.Context, cfg Config) error {
	n, err := New(cfg)
	if err != nil {
		return err
	}
	if err := n.Listen(); err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	return n.Run(ctx)
}

// ControlPlane connects a node to a wsfleet control plane.
type ControlPlane struct {
	// Dial says where the control plane is and how to authenticate (a
	// token with the node role, TLS).
	Dial admin.Config
	// CacheFile holds the last good policy; default
	// ./.wsfleet/node/policy-<pool>.json. Its directory is created.
	CacheFile string
	// BootstrapFile, if set, is the policy to start with when there is no
	// cache (read once, not watched).
	BootstrapFile string
	// MinBackoff and MaxBackoff bound redials (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// TelemetryBuffer bounds the events buffered for the control plane
	// (default 10,000), TelemetryBufferBytes their bytes (default 8 MiB):
	// over either, the oldest are dropped, counted and reported
	// (sdk/telemetry Config.MaxEvents, Config.MaxBytes).
	TelemetryBuffer      int
	TelemetryBufferBytes int
	// Labels and Build are reported in the node's hello.
	Labels map[string]string
	Build  string
}

// RunWithControlPlane runs a node that takes its policy from a control
// plane (latest wins; ACK, or NACK when Apply refuses it, keeping the last
// good policy), starts with the cached last good one, streams every error
// event to the control plane, and hands what backends publish to its pool
// through the control plane (NodeService.Deliveries, when the control
// plane has no NATS) to its own subscribers. A control plane that is down
// never stops the node: it serves with what it has and redials with
// backoff.
func RunWithControlPlane(ctx context.Context, cfg Config, cp ControlPlane) error {
	cfg.setDefaults()
	log := cfg.Log
	if cp.MinBackoff <= 0 {
		cp.MinBackoff = policyclient.DefaultMinBackoff
	}
	if cp.MaxBackoff <= 0 {
		cp.MaxBackoff = policyclient.DefaultMaxBackoff
	}
	if cp.CacheFile == "" {
		cp.CacheFile = filepath.Join(".wsfleet", "node", "policy-"+cfg.Pool+".json")
	}
	if err := os.MkdirAll(filepath.Dir(cp.CacheFile), 0o700); err != nil {
		return fmt.Errorf("dataplane: cache directory: %w", err)
	}
	cp.Dial.DialOptions = append(cp.Dial.DialOptions,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true,
		}),
		// gRPC's own reconnect backoff (up to 2 minutes by default) would
		// keep failing calls with the old error long after the control
		// plane is back; keep it within the node's redial bounds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cp.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cp.MaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	conn, err := admin.Dial(cp.Dial)
	if err != nil {
		return err
	}
	defer conn.Close()

	// The cache is the node's initial policy; the node is built with it,
	// and only then the client that applies pushes to it.
	// A cache that cannot be used is ignored (policyclient.New logs why).
	cached, _ := policyclient.ReadCache(cp.CacheFile, cfg.Pool)
	switch {
	case cached != nil:
		cfg.Policy = cached
		log.WithFields(logrus.Fields{"revision": cfg.Policy.GetRevision(), "cache_file": cp.CacheFile}).Info("starting with the cached policy")
	case cp.BootstrapFile != "":
		// Read once, not watched: the control plane's policy replaces it.
		boot, err := policysource.NewFile(policysource.FileConfig{Path: cp.BootstrapFile, Pool: cfg.Pool, Log: log})
		if err != nil {
			return err
		}
		cfg.Policy = boot.Current()
		log.WithField("policy_file", cp.BootstrapFile).Info("starting with the bootstrap policy file until the control plane answers")
	default:
		log.Info("no cached policy: starting with the built-in defaults until the control plane answers")
	}
	startedWithPolicy := cfg.Policy != nil

	reporter, err := telemetry.New(telemetry.Config{
		Conn: conn.Conn(), NodeID: cfg.NodeID, Pool: cfg.Pool, MaxEvents: cp.TelemetryBuffer, MaxBytes: cp.TelemetryBufferBytes,
		MinBackoff: cp.MinBackoff, MaxBackoff: cp.MaxBackoff, Log: log,
	})
	if err != nil {
		return err
	}
	cfg.Sink = reporter
	// Ready when the node started with a policy (cache or bootstrap file),
	// or once a push is applied: the built-in defaults alone are not a
	// policy anyone chose.
	var pushed atomic.Bool
	cfg.ReadyCheck = func() error {
		if !startedWithPolicy && !pushed.Load() {
			return errors.New("no policy from the control plane yet")
		}
		return nil
	}

	n, err := New(cfg)
	if err != nil {
		return err
	}
	client, err := policyclient.New(policyclient.Config{
		Conn:       conn.Conn(),
		NodeID:     cfg.NodeID,
		Pool:       cfg.Pool,
		Labels:     cp.Labels,
		Build:      cp.Build,
		Address:    cfg.ListenAddr,
		CacheFile:  cp.CacheFile,
		MinBackoff: cp.MinBackoff,
		MaxBackoff: cp.MaxBackoff,
		Log:        log,
		Apply: func(rev *wsfleetv1.PolicyRevision) error {
			if err := n.Apply(rev); err != nil {
				return err
			}
			pushed.Store(true)
			return nil
		},
	})
	if err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	deliveries, err := deliveryclient.New(deliveryclient.Config{
		Conn:       conn.Conn(),
		NodeID:     cfg.NodeID,
		Pool:       cfg.Pool,
		MinBackoff: cp.MinBackoff,
		MaxBackoff: cp.MaxBackoff,
		Log:        log,
		Deliver:    n.deliverBackend,
	})
	if err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	registerControlMetrics(cfg.Registry, cfg.NodeID, client, reporter, deliveries)
	if err := n.Listen(); err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	// The policy client and the reporter outlive the node's drain: the
	// reporter must still run to flush the drain's events. Backend
	// publishes stop when the drain starts: nobody is left to get them.
	bg, cancelBG := context.WithCancel(context.Background())
	dctx, cancelDeliveries := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = client.Run(bg) }()
	go func() { defer wg.Done(); _ = reporter.Run(bg) }()
	go func() { defer wg.Done(); _ = deliveries.Run(dctx) }()
	runErr := n.Run(ctx)
	cancelDeliveries()
	cancelBG()
	wg.Wait()
	return runErr
}

// deliverBackend hands a backend publish the control plane delivered
// (sdk/deliveryclient: a valid channel, one compact JSON value) to this
// node's own subscribers of the channel, as the message frame a client's
// publish makes. It must stay a fan-out to this node only: the control
// plane sends the message to every node of the pool itself, so a broker
// that spans nodes would hand it to each subscriber once per node.
func (n *Node) deliverBackend(ch string, data []byte) {
	if _, err := n.broker.PublishLocal(ch, data); err != nil && !errors.Is(err, broker.ErrClosed) && n.ctx.Err() == nil {
		n.log.WithError(err).WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "channel": ch}).Warn("backend publish not delivered to this node's subscribers")
	}
}

func registerControlMetrics(reg *prometheus.Registry, nodeID string, c *policyclient.Client, r *telemetry.Reporter, d *deliveryclient.Client) {
	labels := prometheus.Labels{"node_id": nodeID}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "node", Name: name, Help: help, ConstLabels: labels}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("control_connected", "1 while the policy watch stream to the control plane is up.")),
			func() float64 { return b2f(c.Status().Connected) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("control_dials_total", "Watch streams attempted.")),
			func() float64 { return float64(c.Status().Dials) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("policy_nacks_total", "Pushed policies this node refused.")),
			func() float64 { return float64(c.Status().Nacks) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("telemetry_recorded_total", "Error events recorded for the control plane.")),
			func() float64 { return float64(r.Stats().Recorded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("telemetry_dropped_total", "Error events dropped because the buffer was full (reported to the control plane).")),
			func() float64 { return float64(r.Stats().Dropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("telemetry_buffered", "Error events waiting to be sent or acknowledged.")),
			func() float64 { return float64(r.Stats().Buffered) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("telemetry_buffered_bytes", "Bytes of the error events waiting to be sent or acknowledged (proto size).")),
			func() float64 { return float64(r.Stats().BufferedBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("traffic_samples_total", "Traffic samples (accepted handshakes per origin and peaks, per minute) handed to the telemetry reporter.")),
			func() float64 { return float64(r.Stats().TrafficRecorded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("traffic_samples_dropped_total", "Traffic samples dropped, oldest first, because too many were waiting for the control plane.")),
			func() float64 { return float64(r.Stats().TrafficDropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("deliveries_connected", "1 while the control plane's stream of backend publishes is up.")),
			func() float64 { return b2f(d.Status().Connected) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("backend_publishes_total", "Backend publishes received from the control plane and handed to this node's subscribers.")),
			func() float64 { return float64(d.Status().Delivered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("backend_publishes_dropped_total", "Backend publishes from the control plane dropped as invalid.")),
			func() float64 { return float64(d.Status().Dropped) }),
	)
}
