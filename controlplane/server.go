package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/console"
	"github.com/wsfleet/wsfleet/controlplane/impact"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
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

// Server is a running control plane.
type Server struct {
	cfg       Config
	log       *logrus.Logger
	store     store.Store
	auth      *auth.Authenticator
	grpc      *grpc.Server
	health    *health.Server
	http      *http.Server
	grpcLis   net.Listener
	httpLis   net.Listener
	prom      *prometheus.Registry
	policy    *policyserver.Server
	fleet     *registry.Registry
	events    *telemetry.Store
	telemetry *telemetry.Server
	publish   *publish.Server
	console   *console.Console
	// With the etcd store: this replica's membership, the sharing of node
	// status and the queries that ask every replica (replica.go).
	member  *replicas.Member
	status  *etcdstatus.Sync
	queries *fanout.Fleet
	// rollout decides the baking canaries (rollout.go).
	rollout *rollout.Evaluator

	closeOnce sync.Once
}

// New validates cfg, opens the store, bootstraps the default pool and binds
// the listeners. Call Run to serve, or Close to release everything unused.
func New(cfg Config) (_ *Server, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, prom: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	var tokens *auth.Tokens
	if cfg.TokensFile != "" {
		if tokens, err = auth.LoadTokensFile(cfg.TokensFile); err != nil {
			return nil, err
		}
	}
	if s.auth, err = auth.New(auth.Config{Tokens: tokens, Dev: cfg.Dev, CertPools: cfg.certPools}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}

	if err := s.buildPublish(); err != nil {
		return nil, err
	}

	st, err := openStore(&cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.store = st

	// Fleet is read when RecoverPolicy runs, by then s.fleet is set.
	if s.policy, err = policyserver.New(policyserver.Config{
		Store:      s.store,
		Log:        s.log,
		Registerer: s.prom,
		Fleet:      s.fleetRunning,
		ProposalLimits: store.ProposalLimits{
			MaxOpen:    cfg.MaxOpenProposals,
			KeepClosed: cfg.KeepClosedProposals,
		},
		Nodes:   s.poolNodes,
		Compare: s.compareRollout,
		// Read at each dry run: the telemetry (and, with replicas, the
		// fan-out) is built below.
		Impact: func(ctx context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
			return impact.Func(s.eventQueries(), time.Now)(ctx, pool, head, next)
		},
	}); err != nil {
		return nil, err
	}
	bootCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.policy.Bootstrap(bootCtx); err != nil {
		return nil, fmt.Errorf("controlplane: bootstrap default pool: %w", withStoreAdvice(err))
	}
	// The heads are read now so that a store that cannot give them stops
	// the start, and the registry serves them from the first node on; the
	// store's watch (Run) keeps them current.
	pools, err := s.store.Pools(bootCtx)
	if err != nil {
		return nil, fmt.Errorf("controlplane: read the pools' head revisions: %w", withStoreAdvice(err))
	}
	if s.fleet, err = registry.New(registry.Config{
		Heads:         pools,
		Shared:        cfg.Store == StoreEtcd,
		MaxNodes:      cfg.MaxNodes,
		MaxNodesBytes: cfg.MaxNodesBytes,
		Revision:      s.store.Get,
		Registerer:    s.prom,
		Log:           s.log,
	}); err != nil {
		return nil, err
	}
	if s.events, err = telemetry.New(telemetry.Config{
		Retention:           cfg.TelemetryRetention,
		MaxRaw:              cfg.TelemetryMaxEvents,
		MaxRawBytes:         cfg.TelemetryMaxBytes,
		MaxOriginsPerMinute: cfg.TelemetryMaxOriginsPerMinute,
		MaxKeysPerMinute:    cfg.TelemetryMaxKeysPerMinute,
		MaxAggregateBytes:   cfg.TelemetryMaxAggregateBytes,
		MaxReporters:        cfg.TelemetryMaxReporters,
		MaxReporterBytes:    cfg.TelemetryMaxReporterBytes,
		TrafficRetention:    cfg.TrafficRetention,
		MaxTrafficOrigins:   cfg.TrafficMaxOrigins,
		MaxTrafficBytes:     cfg.TrafficMaxBytes,
		MaxTails:            cfg.MaxTails,
		TailBuffer:          cfg.TailBuffer,
		OnBatch:             s.fleet.TelemetryBatch,
		Log:                 s.log,
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.telemetry = telemetry.NewServer(s.events, s.log)
	registerTelemetryMetrics(s.prom, s.events)
	registerStoreMetrics(s.prom, s.store)

	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("controlplane: listen gRPC: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("controlplane: listen HTTP: %w", err)
	}
	// After the listeners: a replica advertises the gRPC address as bound.
	if est, ok := s.store.(*etcdstore.Store); ok {
		if err := s.buildReplicas(est); err != nil {
			return nil, err
		}
	}

	if err := s.buildRollout(); err != nil {
		return nil, err
	}
	if err := s.buildGRPC(); err != nil {
		return nil, err
	}
	if err := s.buildHTTP(); err != nil {
		return nil, err
	}
	return s, nil
}

// GRPCAddr is the bound gRPC address (useful with port 0).
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the bound metrics/health address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// ReloadTokens re-reads the tokens file; the running token set is kept if
// the file is invalid.
func (s *Server) ReloadTokens() error {
	if s.cfg.TokensFile == "" {
		return nil
	}
	tokens, err := auth.LoadTokensFile(s.cfg.TokensFile)
	if err != nil {
		return err
	}
	if err := s.auth.Reload(tokens); err != nil {
		return err
	}
	s.log.WithField("tokens", tokens.Len()).Info("tokens reloaded")
	return nil
}

func (s *Server) buildGRPC() error {
	srvMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	s.prom.MustRegister(srvMetrics)

	logger := interceptorLogger(s.log)
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(codeToLevel),
	}
	streamLogOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(streamCodeToLevel),
	}
	recoveryOpts := []recovery.Option{
		recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
			method, _ := grpc.Method(ctx)
			s.log.WithFields(logrus.Fields{"grpc.method": method, "panic": fmt.Sprint(p), "stack": string(debug.Stack())}).
				Error("handler panicked")
			return status.Error(codes.Internal, "internal error")
		}),
	}
	// Health and reflection stay open so grpc-health-probe and grpcurl work
	// without a token; they reveal nothing but the API shape.
	needsAuth := selector.MatchFunc(func(_ context.Context, c interceptorsCallMeta) bool {
		return !isPublicService(c.Service)
	})

	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			srvMetrics.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(logger, logOpts...),
			selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(s.auth.AuthFunc), needsAuth),
			recovery.UnaryServerInterceptor(recoveryOpts...),
		),
		grpc.ChainStreamInterceptor(
			srvMetrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(logger, streamLogOpts...),
			selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(s.auth.AuthFunc), needsAuth),
			recovery.StreamServerInterceptor(recoveryOpts...),
		),
		grpc.MaxRecvMsgSize(s.cfg.MaxRecvMsgSize),
		// Nodes keep streams open for days; let them ping every 10s and
		// close connections that stop answering.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if s.cfg.TLSCert != "" {
		creds, err := s.serverTLS()
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(creds))
	}
	s.grpc = grpc.NewServer(opts...)
	wsfleetv1.RegisterPolicyServiceServer(s.grpc, s.policy)
	wsfleetv1.RegisterNodeServiceServer(s.grpc, &nodeService{fleet: s.fleet, telemetry: s.telemetry, publish: s.publish})
	wsfleetv1.RegisterPublishServiceServer(s.grpc, s.publish)
	wsfleetv1.RegisterFleetServiceServer(s.grpc, &fleetService{fleet: s.fleet, events: s.eventQueries(), degraded: s.degraded})

	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	reflection.Register(s.grpc)
	srvMetrics.InitializeMetrics(s.grpc)
	return nil
}

func isPublicService(service string) bool {
	return service == healthpb.Health_ServiceDesc.ServiceName ||
		service == "grpc.reflection.v1.ServerReflection" ||
		service == "grpc.reflection.v1alpha.ServerReflection"
}

func (s *Server) serverTLS() (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS key pair: %w", ErrConfig, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.cfg.ClientCA != "" {
		pem, err := os.ReadFile(s.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("%w: client CA: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: client CA %s holds no PEM certificate", ErrConfig, s.cfg.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(tc), nil
}

func (s *Server) buildHTTP() error {
	// The web console calls the same service implementations as gRPC,
	// with the logged-in caller's identity.
	ccfg := s.cfg.Console
	ccfg.Auth, ccfg.Policy, ccfg.Log = s.auth, s.policy, s.log
	ccfg.Fleet = &fleetService{fleet: s.fleet, events: s.eventQueries(), degraded: s.degraded}
	var err error
	if s.console, err = console.New(ccfg); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.prom.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.prom, promhttp.HandlerOpts{Registry: s.prom}))
	mux.Handle("POST "+publish.HTTPPath, s.publish.HTTPHandler(s.authorizePublishHTTP))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.store.Head(ctx, policy.DefaultPool); err != nil {
			http.Error(w, "store unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle(console.Prefix, s.console.Handler())
	mux.Handle("GET /ui", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return nil
}

// Run serves until ctx is cancelled, then stops gracefully and releases
// everything. It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	// The push follows the store: every head the store's watch delivers
	// (committed here or by another replica sharing the store) goes to the
	// registry, which pushes it to the nodes attached here.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	heads, err := s.store.WatchHeads(watchCtx)
	if err != nil {
		return fmt.Errorf("controlplane: watch the store's pool heads: %w", withStoreAdvice(err))
	}
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		s.fleet.Follow(heads)
	}()
	defer func() {
		stopWatch()
		<-followed
	}()
	// Deferred after the watch's end, so it runs before: the last node
	// statuses are written, then the lease revoked, then the store closed.
	defer s.runReplicas()()
	defer s.runRollout()()

	fields := logrus.Fields{
		"grpc_addr": s.GRPCAddr().String(),
		"http_addr": s.HTTPAddr().String(),
		"store":     s.cfg.Store,
		"store_id":  s.store.ID(),
		"dev":       s.cfg.Dev,
		"tls":       s.cfg.TLSCert != "",
		"mtls":      s.cfg.ClientCA != "",
		"publish":   s.publish.Route(),
	}
	if s.cfg.Store == StoreEtcd {
		fields["etcd_endpoints"] = strings.Join(s.cfg.Etcd.Endpoints, ",")
		fields["etcd_prefix"] = s.cfg.Etcd.Prefix
		fields["replica_id"] = s.member.ID()
		fields["advertise_addr"] = s.member.Addr()
	} else {
		fields["data_dir"] = s.cfg.DataDir
	}
	s.log.WithFields(fields).Info("control plane listening")
	if s.cfg.Dev {
		s.log.Warn("dev mode: authentication is off (loopback only)")
	}

	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() {
		if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()

	var runErr error
	collected := 0
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		// A serve goroutine ended first: with an error, or without one
		// when its server was stopped from elsewhere.
		collected = 1
		s.log.WithError(runErr).Error("server failed")
	}
	s.shutdown()
	// Collect both serve goroutines (one may already have been read above).
	for range 2 - collected {
		if err := <-errc; err != nil && runErr == nil && !errors.Is(err, grpc.ErrServerStopped) {
			runErr = err
		}
	}
	s.log.Info("control plane stopped")
	return runErr
}

// shutdown stops accepting, lets calls under way finish within the
// shutdown timeout, then cuts what is left.
func (s *Server) shutdown() {
	s.health.Shutdown()
	// Watch streams never end on their own; end them so nodes reconnect
	// and the graceful stop is not held up.
	s.fleet.Shutdown()
	s.publish.Shutdown()
	s.telemetry.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("graceful stop timed out; closing remaining streams")
		s.grpc.Stop()
		<-done
	}
	// Live tails of the console never end on their own either.
	s.console.Close()
	_ = s.http.Shutdown(ctx)
}

// Close releases the store and listeners. Run calls it; call it yourself
// only for a Server that never ran.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.grpc != nil {
			s.grpc.Stop()
		}
		for _, l := range []net.Listener{s.grpcLis, s.httpLis} {
			if l != nil {
				_ = l.Close()
			}
		}
		if s.store != nil {
			if err := s.store.Close(); err != nil {
				s.log.WithError(err).Warn("closing store")
			}
		}
		if s.publish != nil {
			s.publish.Close()
		}
		if s.queries != nil {
			s.queries.Close()
		}
	})
}
