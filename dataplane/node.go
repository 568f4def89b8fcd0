package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/broker/natsbroker"
	"github.com/wsfleet/wsfleet/dataplane/internal/explain"
	"github.com/wsfleet/wsfleet/dataplane/internal/fold"
	"github.com/wsfleet/wsfleet/dataplane/internal/iplimit"
	"github.com/wsfleet/wsfleet/dataplane/internal/traffic"
)

// snapshot is everything the data path reads from the policy, derived once
// per Apply. Immutable.
type snapshot struct {
	rev             *wsfleetv1.PolicyRevision
	interval        time.Duration
	timeout         time.Duration
	msgRate         int32
	msgBurst        int32
	maxMessageBytes int
	// throttleThreshold: a Take that waits at least this long means the
	// client is over the rate (shorter waits are clock noise).
	throttleThreshold time.Duration
	upgrader          *gws.Upgrader
	// rejectClose: the policy's handshake.reject_with is close.
	rejectClose bool
}

// Node is a running wsfleet node.
type Node struct {
	cfg      Config
	log      *logrus.Logger
	metrics  *metrics
	admitter *admission.Admitter
	broker   broker.Broker
	// guard is the breaker in front of broker (nil in process).
	guard  *broker.Guard
	events *eventHandler
	folds  *fold.Table
	// foldDone is closed when the fold sweeper has stopped.
	foldDone chan struct{}
	// traffic counts what the node accepts (traffic.go); trafficDone is
	// closed when the sampling goroutine has stopped.
	traffic     *traffic.Collector
	trafficDone chan struct{}

	applyMu sync.Mutex // serializes Apply; never taken on the data path
	snap    atomic.Pointer[snapshot]

	sessions sessionSet
	// loops counts read loops; drainMu orders loops.Add (under RLock, only
	// while not draining) before Shutdown's Wait.
	loops    sync.WaitGroup
	drainMu  sync.RWMutex
	nextConn atomic.Uint64
	draining atomic.Bool
	// rejects counts connections being answered with a reject close frame
	// (rejectclose.go); rejectsDone (under drainMu) stops new ones once
	// Shutdown waits for them.
	rejects     sync.WaitGroup
	rejectsDone bool

	ctx    context.Context
	cancel context.CancelFunc

	heartbeatNudge chan struct{}
	heartbeatDone  chan struct{}

	// writers write every connection's queued frames (writer.go).
	writers *writerPool

	// explains keeps recent decisions for <Path>/explain (explain.go);
	// explainLimit and reportLimit rate-limit that endpoint and
	// <Path>/client-report per client address.
	explains     *explain.Store
	explainLimit *iplimit.Limiter
	reportLimit  *iplimit.Limiter
	explainAbuse abuseLog
	reportAbuse  abuseLog

	wsServer, metricsServer *http.Server
	wsLis, metricsLis       net.Listener
}

// New validates cfg, applies its initial policy and returns a Node. It does
// not listen: call Run, or mount the Node (an http.Handler) yourself on a
// net/http.Server with ReadHeaderTimeout and MaxHeaderBytes set.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rev := cfg.Policy
	if rev == nil {
		rev = &wsfleetv1.PolicyRevision{Pool: cfg.Pool, Author: "builtin", Message: "api/policy.Default", Policy: policy.Default()}
	}
	if err := cfg.check(rev.GetPolicy()); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log, broker: cfg.Broker}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.events = &eventHandler{node: n}
	n.metrics = newMetrics(cfg.Registry, cfg.NodeID, cfg.Pool)
	n.folds = fold.New(fold.Config{Window: cfg.FoldWindow, MaxKeys: cfg.FoldMaxKeys})
	n.explains = explain.New(explain.Config{Window: cfg.ExplainWindow, MaxRecords: cfg.ExplainMaxRecords, MaxBytes: cfg.ExplainMaxBytes, Now: cfg.Now})
	n.explainLimit = iplimit.New(iplimit.Config{PerSecond: cfg.ExplainRate, Burst: cfg.ExplainBurst, MaxKeys: cfg.EndpointMaxClients, Now: cfg.Now})
	n.reportLimit = iplimit.New(iplimit.Config{PerSecond: cfg.ClientReportRate, Burst: cfg.ClientReportBurst, MaxKeys: cfg.EndpointMaxClients, Now: cfg.Now})
	n.metrics.registerFoldKeys(cfg.Registry, cfg.NodeID, cfg.Pool, n.folds.Len)
	var err error
	// Without traffic counting n.traffic stays nil: a nil Collector
	// counts nothing and cuts no sample.
	if !cfg.DisableTraffic {
		if n.traffic, err = traffic.New(traffic.Config{MaxOrigins: cfg.TrafficMaxOrigins}); err != nil {
			n.cancel()
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	n.admitter, err = admission.New(admission.Config{
		AuthURL:     cfg.AuthURL,
		AuthTimeout: cfg.AuthTimeout,
		OnBreakerState: func(_, to gobreaker.State) {
			n.metrics.breaker.Set(float64(to))
			n.log.WithFields(logrus.Fields{"node_id": cfg.NodeID, "state": to.String()}).Warn("connect-authorization breaker changed state")
		},
	}, rev.GetPolicy())
	if err != nil {
		n.cancel()
		return nil, err
	}
	if err := n.buildBroker(rev.GetPolicy()); err != nil {
		n.admitter.Close()
		n.cancel()
		return nil, err
	}
	n.snap.Store(n.buildSnapshot(rev, nil))
	n.metrics.revision.Set(float64(rev.GetRevision()))
	n.writers = newWriterPool(cfg.Writers)
	n.heartbeatNudge = make(chan struct{}, 1)
	n.heartbeatDone = make(chan struct{})
	go n.runHeartbeats()
	n.foldDone = make(chan struct{})
	go n.sweepFolds()
	n.trafficDone = make(chan struct{})
	if n.traffic != nil {
		go n.cutTraffic()
	} else {
		close(n.trafficDone)
	}
	return n, nil
}

// buildBroker sets the node's broker: Config.Broker, NATS or in process;
// a broker that can fail goes behind a breaker with the policy's
// thresholds.
func (n *Node) buildBroker(p *wsfleetv1.Policy) error {
	cfg := n.cfg
	switch {
	case cfg.Broker != nil:
		n.broker = cfg.Broker
	case cfg.NATS.URLs != "":
		nc := cfg.NATS
		nc.Pool = cfg.Pool
		if nc.Name == "" {
			nc.Name = "wsfleet-node " + cfg.NodeID
		}
		nc.Log = n.log.WithFields(logrus.Fields{"node_id": cfg.NodeID, "pool": cfg.Pool})
		nc.Registerer = cfg.Registry
		nc.ConstLabels = prometheus.Labels{"node_id": cfg.NodeID, "pool": cfg.Pool}
		nb, err := natsbroker.New(nc)
		if err != nil {
			return fmt.Errorf("%w: NATS: %w", ErrConfig, err)
		}
		n.broker = nb
	default:
		n.broker = broker.NewInProcess()
		return nil
	}
	if _, local := n.broker.(*broker.InProcess); local {
		return nil
	}
	n.guard = broker.NewGuard(n.broker, p.GetBreaker(), func(_, to gobreaker.State) {
		n.metrics.brokerBreaker.Set(float64(to))
		n.log.WithFields(logrus.Fields{"node_id": cfg.NodeID, "state": to.String()}).Warn("broker breaker changed state")
	})
	n.broker = n.guard
	return nil
}

// sweepFolds hands out every fold whose window has ended, a few times per
// window, until the node stops; Shutdown then closes the table and hands
// out the rest.
func (n *Node) sweepFolds() {
	defer close(n.foldDone)
	if n.cfg.FoldWindow <= 0 {
		return
	}
	tick := time.NewTicker(max(n.cfg.FoldWindow/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-tick.C:
			for _, ev := range n.folds.Sweep(now) {
				n.emit(ev)
			}
		}
	}
}

func (n *Node) snapshot() *snapshot { return n.snap.Load() }

// Revision is the applied policy revision.
func (n *Node) Revision() *wsfleetv1.PolicyRevision { return n.snapshot().rev }

// Active is the number of open connections.
func (n *Node) Active() int64 { return n.admitter.Active() }

// Ready reports whether the node admits connections: it is not draining
// and Config.ReadyCheck (if any) passes. A broker that is down (NATS
// unreachable) does not make the node unready: every node of the pool
// shares that NATS, so taking them all out of the load balancer would turn
// refused publishes (an "unavailable" frame a client can retry) into a
// fleet that accepts no connections at all; subscriptions, heartbeats and
// policy keep working meanwhile.
func (n *Node) Ready() error {
	if n.draining.Load() {
		return ErrDraining
	}
	if n.cfg.ReadyCheck != nil {
		return n.cfg.ReadyCheck()
	}
	return nil
}

func (n *Node) buildSnapshot(rev *wsfleetv1.PolicyRevision, prev *snapshot) *snapshot {
	p := rev.GetPolicy()
	s := &snapshot{
		rev:             rev,
		interval:        p.GetHeartbeat().GetInterval().AsDuration(),
		timeout:         p.GetHeartbeat().GetTimeout().AsDuration(),
		msgRate:         p.GetLimits().GetMessagesPerSecond(),
		msgBurst:        p.GetLimits().GetMessageBurst(),
		maxMessageBytes: int(p.GetLimits().GetMaxMessageBytes()),
		rejectClose:     policy.RejectWith(p) == wsfleetv1.RejectMode_REJECT_MODE_CLOSE,
	}
	s.throttleThreshold = max(time.Second/time.Duration(s.msgRate)/2, 100*time.Microsecond)
	if prev != nil && prev.maxMessageBytes == s.maxMessageBytes {
		s.upgrader = prev.upgrader
	} else {
		// gws bounds a frame (and the buffer it allocates for it) per
		// Upgrader, so a new limit gets a new Upgrader: connections opened
		// after it get the new bound from gws itself.
		s.upgrader = gws.NewUpgrader(n.events, &gws.ServerOption{
			ReadMaxPayloadSize: s.maxMessageBytes,
			CheckUtf8Enabled:   true,
			HandshakeTimeout:   n.cfg.HandshakeTimeout,
			NewSession:         func() gws.SessionStorage { return new(session) },
			Logger:             gwsLogger{n.log},
			Recovery:           n.recoverCallback,
		})
	}
	return s
}

// Apply swaps in a new policy for every connection without reconnecting
// any. A change never closes a connection that behaves under the new policy
// (DESIGN.md, "Invariants of runtime change"); field by field:
//
//   - origins (allow, allow_missing): the next handshake. Open connections
//     stay, including those from an origin no longer allowed; operators
//     drain or restart a node to evict them.
//   - max_connections, max_connections_per_ip: the next handshake. Nobody is
//     cut when the count is above a lowered cap; new handshakes get 503
//     until enough connections end.
//   - handshakes_per_second, handshake_burst: the next handshake. The bucket
//     keeps its tokens (at most the new burst); a change that keeps both
//     leaves it untouched.
//   - breaker: the next handshake, and the next publish through a
//     distributed broker (each has its own breaker). Changed thresholds
//     rebuild a breaker closed with empty counts; unchanged ones keep it
//     and its state.
//   - heartbeat: the wheel takes a new interval at once. A peer is closed
//     only after a ping actually written to it went unanswered for the
//     timeout in force: a longer timeout extends a pending wait, a shorter
//     one closes a peer whose ping has already been unanswered that long.
//   - messages_per_second, message_burst: each connection's next message.
//     A changed rate or burst starts a new limiter and a new abuse window;
//     a change that keeps both keeps the limiter's state.
//   - handshake.reject_with: the next refused handshake is answered the
//     new way (HTTP status, or 101 then a 4xxx close frame); open
//     connections are not concerned.
//   - max_message_bytes: a lower limit applies to every connection's next
//     message (a larger frame closes it with 1009); a higher one only to
//     connections opened after it, because gws bounds (and buffers) a frame
//     per connection at the upgrade.
//
// An invalid policy is refused whole with every violation named, and the
// running one stays.
func (n *Node) Apply(rev *wsfleetv1.PolicyRevision) error {
	if err := n.cfg.check(rev.GetPolicy()); err != nil {
		return err
	}
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	prev := n.snapshot()
	if err := n.admitter.Update(rev.GetPolicy()); err != nil {
		return err
	}
	if n.guard != nil {
		n.guard.Update(rev.GetPolicy().GetBreaker())
	}
	next := n.buildSnapshot(rev, prev)
	n.snap.Store(next)
	n.metrics.revision.Set(float64(rev.GetRevision()))
	if next.interval != prev.interval {
		n.heartbeatReset()
	}
	changes := policy.Diff(prev.rev.GetPolicy(), rev.GetPolicy())
	fields := make([]string, 0, len(changes))
	for _, c := range changes {
		fields = append(fields, c.GetField())
	}
	n.log.WithFields(logrus.Fields{
		"node_id":      n.cfg.NodeID,
		"pool":         rev.GetPool(),
		"old_revision": prev.rev.GetRevision(),
		"new_revision": rev.GetRevision(),
		"changed":      strings.Join(fields, ","),
		"same_content": proto.Equal(prev.rev.GetPolicy(), rev.GetPolicy()),
	}).Info("policy applied")
	return nil
}

// check validates a policy and checks it against the node's own limits.
func (c *Config) check(p *wsfleetv1.Policy) error {
	if err := policy.Check(p); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	if m := p.GetLimits().GetMaxMessageBytes(); c.MaxMessageBytesCap > 0 && int(m) > c.MaxMessageBytesCap {
		return fmt.Errorf("%w: limits.max_message_bytes %d is over this node's cap of %d (--max-message-bytes)", ErrInvalidPolicy, m, c.MaxMessageBytesCap)
	}
	return nil
}

// recoverCallback is gws's recovery for callbacks other than OnMessage
// (which recovers itself, per connection, with a 1011 close).
func (n *Node) recoverCallback(gws.Logger) {
	if p := recover(); p != nil {
		n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "panic": fmt.Sprint(p)}).Error("gws callback panicked")
	}
}

type gwsLogger struct{ log *logrus.Logger }

func (l gwsLogger) Error(v ...any) { l.log.Error(v...) }

// Handler is the node's HTTP surface: the WebSocket endpoint at
// Config.Path, and next to it <Path>/explain (explain.go) and
// <Path>/client-report (clientreport.go); everything else is 404.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(n.cfg.Path, n)
	base := strings.TrimSuffix(n.cfg.Path, "/")
	mux.HandleFunc(base+"/explain", n.serveExplain)
	mux.HandleFunc(base+"/client-report", n.serveClientReport)
	return mux
}

// AdminHandler serves /metrics, /healthz and /readyz, and with
// Config.Pprof the profiles at /debug/pprof/.
func (n *Node) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	if n.cfg.Pprof {
		// Registered on this mux only: importing net/http/pprof also
		// registers on http.DefaultServeMux, which the node never serves.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.cfg.Registry, promhttp.HandlerOpts{Registry: n.cfg.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Listen binds the WebSocket and metrics listeners (so a port in use fails
// at once and tests may bind port 0). Run calls it if needed.
func (n *Node) Listen() error {
	if n.wsLis != nil {
		return nil
	}
	var err error
	if n.wsLis, err = net.Listen("tcp", n.cfg.ListenAddr); err != nil {
		return fmt.Errorf("dataplane: listen %s: %w", n.cfg.ListenAddr, err)
	}
	if n.cfg.MetricsAddr != "-" {
		if n.metricsLis, err = net.Listen("tcp", n.cfg.MetricsAddr); err != nil {
			_ = n.wsLis.Close()
			n.wsLis = nil
			return fmt.Errorf("dataplane: listen %s: %w", n.cfg.MetricsAddr, err)
		}
	}
	return nil
}

// Addr is the bound WebSocket address (after Listen).
func (n *Node) Addr() net.Addr { return n.wsLis.Addr() }

// MetricsAddr is the bound metrics address (after Listen), nil if disabled.
func (n *Node) MetricsAddr() net.Addr {
	if n.metricsLis == nil {
		return nil
	}
	return n.metricsLis.Addr()
}

// Run serves until ctx is cancelled, then shuts down gracefully within
// Config.DrainTimeout. It returns nil after a clean drain.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Listen(); err != nil {
		return err
	}
	registerRuntimeCollectors(n.cfg.Registry)
	n.wsServer = &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: n.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    n.cfg.MaxHeaderBytes,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 2)
	go func() { errc <- serve(n.wsServer, n.wsLis) }()
	servers := 1
	if n.metricsLis != nil {
		n.metricsServer = &http.Server{Handler: n.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { errc <- serve(n.metricsServer, n.metricsLis) }()
		servers++
	}
	fields := logrus.Fields{"node_id": n.cfg.NodeID, "pool": n.cfg.Pool, "ws_addr": n.Addr().String(), "path": n.cfg.Path, "revision": n.snapshot().rev.GetRevision()}
	if a := n.MetricsAddr(); a != nil {
		fields["metrics_addr"] = a.String()
	}
	n.log.WithFields(fields).Info("node listening")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		servers--
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil && runErr == nil {
		runErr = err
	}
	for range servers {
		if err := <-errc; err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

func serve(s *http.Server, l net.Listener) error {
	if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown drains the node: /readyz fails and new handshakes get 503
// (node_draining); listeners close; every connection gets close 1001
// (server_shutdown), at most CloseConcurrency at a time; Shutdown waits for
// their read loops, then flushes the sink within FlushTimeout (a sink that
// cannot deliver is not waited for; what it could not deliver is counted in
// the last log line, not returned as an error). Connections still open
// when ctx ends are cut, and that is the error returned.
func (n *Node) Shutdown(ctx context.Context) error {
	n.drainMu.Lock()
	already := n.draining.Swap(true)
	n.drainMu.Unlock()
	if already {
		return ErrDraining
	}
	n.metrics.draining.Set(1)
	n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "connections": n.Active()}).Info("draining")
	if n.wsServer != nil {
		// Stops accepting; hijacked WebSocket connections are ours to close.
		_ = n.wsServer.Shutdown(ctx)
	}

	sem := make(chan struct{}, n.cfg.CloseConcurrency)
	var closers sync.WaitGroup
	n.sessions.each(func(s *session) {
		sem <- struct{}{}
		closers.Add(1)
		go func() {
			defer func() { <-sem; closers.Done() }()
			s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, "server shutdown")
		}()
	})
	closers.Wait()

	done := make(chan struct{})
	go func() { n.loops.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("dataplane: drain timed out with %d connections open; cutting them", n.Active())
		n.sessions.each(func(s *session) { s.abort() })
		<-done
	}
	n.waitRejects()
	n.cancel()
	n.writers.stop()
	<-n.heartbeatDone
	<-n.foldDone
	<-n.trafficDone
	// The last sample goes out with the last events.
	n.cutSample(n.cfg.Now())
	// Every count still folding goes out before the sink's last flush;
	// a rejection after this (a node mounted on another server still
	// answers) is recorded on its own.
	for _, ev := range n.folds.Close() {
		n.emit(ev)
	}
	undelivered := n.flushSink()
	if n.metricsServer != nil {
		_ = n.metricsServer.Shutdown(ctx)
	}
	if n.cfg.Broker == nil {
		_ = n.broker.Close()
	}
	n.admitter.Close()
	// The last line: a drain that could not hand every event over still
	// ends cleanly, and says how many were lost.
	n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "undelivered_events": undelivered}).Info("drained")
	return err
}

// flushSink hands the sink's buffered events over within FlushTimeout and
// returns how many it could not deliver. A flush that falls short is not a
// failed shutdown: the connections are drained, and a control plane that
// is down must not make the node wait or exit with an error.
func (n *Node) flushSink() (undelivered int) {
	f, ok := n.cfg.Sink.(Flusher)
	if !ok {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.FlushTimeout)
	defer cancel()
	undelivered, err := f.FinalFlush(ctx)
	n.metrics.undelivered.Set(float64(undelivered))
	if err != nil {
		n.log.WithError(err).WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "undelivered_events": undelivered}).
			Warn("telemetry not flushed: the events still buffered are dropped")
	}
	return undelivered
}
