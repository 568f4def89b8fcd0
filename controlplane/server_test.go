package controlplane

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBinaries() }))
}

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
	nodeToken   = "node-token-0123456789ab"
)

// startServer runs a control plane on loopback ports chosen by the kernel
// and stops it when the test ends.
func startServer(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := Config{
		GRPCAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		DataDir:  t.TempDir(),
		Dev:      true,
		Log:      log,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

func dial(t testing.TB, srv *Server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func withToken(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func writeTokens(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	data := "tokens:\n" +
		"  - {name: alice, role: admin, token: " + adminToken + "}\n" +
		"  - {name: grafana, role: viewer, token: " + viewerToken + "}\n" +
		"  - {name: node-1, role: node, token: " + nodeToken + ", nodes: [node-1], pools: [default]}\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthOverTheWire(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Dev = false; c.TokensFile = writeTokens(t) })
	pc := wsfleetv1.NewPolicyServiceClient(dial(t, srv))
	apply := &wsfleetv1.ApplyPolicyRequest{Policy: policy.Default(), Message: "m"}
	apply.Policy.Limits.MaxConnections = 5000

	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"no token is unauthenticated", func() error {
			_, err := pc.GetPolicy(context.Background(), &wsfleetv1.GetPolicyRequest{})
			return err
		}, codes.Unauthenticated},
		{"viewer can get", func() error {
			_, err := pc.GetPolicy(withToken(viewerToken), &wsfleetv1.GetPolicyRequest{})
			return err
		}, codes.OK},
		{"viewer cannot apply", func() error {
			_, err := pc.ApplyPolicy(withToken(viewerToken), apply)
			return err
		}, codes.PermissionDenied},
		{"node token cannot read the admin API", func() error {
			_, err := pc.GetPolicy(withToken(nodeToken), &wsfleetv1.GetPolicyRequest{})
			return err
		}, codes.PermissionDenied},
		{"node token cannot list history", func() error {
			_, err := pc.ListPolicyRevisions(withToken(nodeToken), &wsfleetv1.ListPolicyRevisionsRequest{})
			return err
		}, codes.PermissionDenied},
		{"viewer cannot recover the fleet's policy", func() error {
			_, err := pc.RecoverPolicy(withToken(viewerToken), &wsfleetv1.RecoverPolicyRequest{})
			return err
		}, codes.PermissionDenied},
		{"node token cannot recover the fleet's policy", func() error {
			_, err := pc.RecoverPolicy(withToken(nodeToken), &wsfleetv1.RecoverPolicyRequest{})
			return err
		}, codes.PermissionDenied},
		{"admin can apply", func() error {
			_, err := pc.ApplyPolicy(withToken(adminToken), apply)
			return err
		}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.code {
				t.Fatalf("code = %v, want %v", got, tt.code)
			}
		})
	}

	resp, err := pc.GetPolicy(withToken(adminToken), &wsfleetv1.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetRevision(); r.GetRevision() != 2 || r.GetAuthor() != "alice" {
		t.Fatalf("head = %d by %q, want 2 by alice", r.GetRevision(), r.GetAuthor())
	}
}

func TestHealthAndReflectionNeedNoToken(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Dev = false; c.TokensFile = writeTokens(t) })
	cc := dial(t, srv)
	for _, service := range []string{"", "wsfleet.v1.PolicyService"} {
		resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health(%q) = %v", service, resp.GetStatus())
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	joined := strings.Join(names, " ")
	for _, want := range []string{"wsfleet.v1.PolicyService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestMetricsAndHealthz(t *testing.T) {
	srv := startServer(t, nil)
	pc := wsfleetv1.NewPolicyServiceClient(dial(t, srv))
	if _, err := pc.GetPolicy(context.Background(), &wsfleetv1.GetPolicyRequest{}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.HTTPAddr().String()
	body := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`wsfleet_control_policy_revision{pool="default"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="GetPolicy",grpc_service="wsfleet.v1.PolicyService",grpc_type="unary"} 1`,
		`wsfleet_control_telemetry_truncated_total{field="origin"} 0`,
		`wsfleet_control_telemetry_raw_bytes 0`,
		`wsfleet_control_telemetry_tails 0`,
		`wsfleet_control_nodes_known 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := httpGet(t, base+"/healthz"); got != "ok\n" {
		t.Fatalf("/healthz = %q", got)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func TestConfigIsChecked(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"dev on every interface is refused", Config{Dev: true, GRPCAddr: ":7400", DataDir: dir}, ErrDevNotLoopback},
		{"dev on a public address is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "0.0.0.0:0", DataDir: dir}, ErrDevNotLoopback},
		{"no tokens and no dev is refused", Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir}, ErrConfig},
		{"a TLS cert without key is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", TLSCert: "c.pem", DataDir: dir}, ErrConfig},
		{"a client CA without TLS is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClientCA: "ca.pem", DataDir: dir}, ErrConfig},
		{"a negative node bound is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, MaxNodes: -1}, ErrConfig},
		{"a negative tail bound is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, MaxTails: -1}, ErrConfig},
		{"a negative message size is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, MaxRecvMsgSize: -1}, ErrConfig},
		{"a raw-event byte bound under a MiB is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, TelemetryMaxBytes: 1000}, ErrConfig},
		{"client certificate pools without a client CA are refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClientCertPools: []string{"default"}, DataDir: dir}, ErrConfig},
		{"a client certificate pool that cannot exist is refused", Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", TLSCert: "c.pem", TLSKey: "k.pem", ClientCA: "ca.pem", ClientCertPools: []string{"De*fault"}, DataDir: dir}, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(tt.cfg)
			if err == nil {
				srv.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("a missing tokens file is refused", func(t *testing.T) {
		_, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, TokensFile: filepath.Join(dir, "none.yaml")})
		if err == nil || !strings.Contains(err.Error(), "tokens file") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAReloadWithAnUnscopedNodeTokenKeepsTheRunningSet(t *testing.T) {
	tokens := writeTokens(t)
	srv := startServer(t, func(c *Config) { c.Dev = false; c.TokensFile = tokens })
	pc := wsfleetv1.NewPolicyServiceClient(dial(t, srv))
	// The new file drops the viewer and forgets the node token's scope.
	next := "tokens:\n" +
		"  - {name: alice, role: admin, token: " + adminToken + "}\n" +
		"  - {name: node-1, role: node, token: " + nodeToken + "}\n"
	if err := os.WriteFile(tokens, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	err := srv.ReloadTokens()
	if err == nil || !strings.Contains(err.Error(), `node token "node-1" names no node ids`) || !strings.Contains(err.Error(), `node token "node-1" names no pools`) {
		t.Fatalf("reload: %v", err)
	}
	if _, err := pc.GetPolicy(withToken(viewerToken), &wsfleetv1.GetPolicyRequest{}); err != nil {
		t.Fatalf("the running token set was replaced: %v", err)
	}
}
