package publish

import (
	"context"
	"net"
	"testing"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	adminToken     = "admin-token-0123456789"
	viewerToken    = "viewer-token-0123456789"
	edgeToken      = "edge-node-token-0123456789"
	coreToken      = "core-node-token-0123456789"
	shopPublisher  = "shop-publisher-token-0123456789"
	otherPublisher = "other-publisher-token-0123456789"
)

// testTokens: an admin, a viewer, two node tokens (edge-* and core-* in
// pools shop and blog) and two publishers of pool shop.
const testTokens = `
tokens:
  - {name: alice, role: admin, token: ` + adminToken + `}
  - {name: grafana, role: viewer, token: ` + viewerToken + `}
  - {name: edge, role: node, token: ` + edgeToken + `, nodes: [edge-*], pools: [shop, blog]}
  - {name: core, role: node, token: ` + coreToken + `, nodes: [edge-*, core-*], pools: [shop]}
  - {name: orders, role: publisher, token: ` + shopPublisher + `, pools: [shop]}
  - {name: billing, role: publisher, token: ` + otherPublisher + `, pools: [shop]}
`

// harness is a Server behind the control plane's auth interceptors on a
// loopback gRPC listener.
type harness struct {
	srv   *Server
	reg   *prometheus.Registry
	auth  *auth.Authenticator
	conn  *grpc.ClientConn
	pub   wsfleetv1.PublishServiceClient
	nodes wsfleetv1.NodeServiceClient
}

// nodeService serves Deliveries only, as the control plane's does.
type nodeService struct {
	wsfleetv1.UnimplementedNodeServiceServer
	srv *Server
}

func (n nodeService) Deliveries(req *wsfleetv1.DeliveriesRequest, st wsfleetv1.NodeService_DeliveriesServer) error {
	return n.srv.Deliveries(req, st)
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	tokens, err := auth.ParseTokens([]byte(testTokens))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Log == nil {
		log := logrus.New()
		log.SetLevel(logrus.WarnLevel)
		cfg.Log = log
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcauth.UnaryServerInterceptor(a.AuthFunc)),
		grpc.ChainStreamInterceptor(grpcauth.StreamServerInterceptor(a.AuthFunc)),
	)
	wsfleetv1.RegisterPublishServiceServer(gs, srv)
	wsfleetv1.RegisterNodeServiceServer(gs, nodeService{srv: srv})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Shutdown()
		gs.Stop()
		<-served
		srv.Close()
	})
	return &harness{srv: srv, reg: reg, auth: a, conn: conn,
		pub: wsfleetv1.NewPublishServiceClient(conn), nodes: wsfleetv1.NewNodeServiceClient(conn)}
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// published reads wsfleet_control_publishes_total{result}.
func (h *harness) published(result string) float64 {
	return testutil.ToFloat64(h.srv.metrics.publishes.WithLabelValues(result))
}
