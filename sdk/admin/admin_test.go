package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDialChecksConfig(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  admin.Config
		want error // nil: Dial succeeds
	}{
		{"the zero config dials the default address", admin.Config{}, nil},
		{"a token to localhost in plaintext is fine", admin.Config{Addr: "localhost:7400", Token: "t"}, nil},
		{"a token to 127.0.0.1 in plaintext is fine", admin.Config{Addr: "127.0.0.1:7400", Token: "t"}, nil},
		{"a token to another loopback IP in plaintext is fine", admin.Config{Addr: "127.0.0.2:7400", Token: "t"}, nil},
		{"a token to IPv6 loopback in plaintext is fine", admin.Config{Addr: "[::1]:7400", Token: "t"}, nil},
		{"a token to a dns target naming localhost in plaintext is fine", admin.Config{Addr: "dns:///localhost:7400", Token: "t"}, nil},
		{"a token over a unix socket is fine", admin.Config{Addr: "unix:///tmp/wsfleet.sock", Token: "t"}, nil},
		{"a token to a remote host over TLS is fine", admin.Config{Addr: "cp.example.com:7400", Token: "t", TLS: true}, nil},
		{"no token to a remote host in plaintext is fine", admin.Config{Addr: "10.0.0.1:7400"}, nil},
		{"a token to a remote IP in plaintext is refused", admin.Config{Addr: "10.0.0.1:7400", Token: "t"}, admin.ErrInsecureToken},
		{"a token to a remote name in plaintext is refused", admin.Config{Addr: "cp.example.com:7400", Token: "t"}, admin.ErrInsecureToken},
		{"a token to a dns target naming a remote host in plaintext is refused", admin.Config{Addr: "dns:///cp.example.com:7400", Token: "t"}, admin.ErrInsecureToken},
		{"a certificate without its key is refused", admin.Config{CertFile: "c.pem"}, admin.ErrConfig},
		{"a key without its certificate is refused", admin.Config{KeyFile: "k.pem"}, admin.ErrConfig},
		{"a token with a trailing newline is refused", admin.Config{Token: "t\n"}, admin.ErrConfig},
		{"a missing CA file is refused", admin.Config{CAFile: filepath.Join(dir, "missing.pem")}, admin.ErrTLS},
		{"a CA file without certificates is refused", admin.Config{CAFile: garbage}, admin.ErrTLS},
		{"an unloadable client certificate is refused", admin.Config{CertFile: garbage, KeyFile: garbage}, admin.ErrTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := admin.Dial(tt.cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				_ = c.Close()
				t.Fatalf("Dial succeeded, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInsecureTokenErrorNamesTheFix(t *testing.T) {
	_, err := admin.Dial(admin.Config{Addr: "10.0.0.1:7400", Token: "secret"})
	if err == nil || !strings.Contains(err.Error(), "--tls") || !strings.Contains(err.Error(), "10.0.0.1:7400") {
		t.Errorf("got %v, want an error naming the address and --tls", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the token", err)
	}
}

// recorder is a PolicyService that answers GetPolicy with the metadata it
// saw and ApplyPolicy with whatever error the test sets.
type recorder struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	mu       sync.Mutex
	md       metadata.MD
	applyErr error
}

func (r *recorder) GetPolicy(ctx context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.md = md
	r.mu.Unlock()
	return &wsfleetv1.GetPolicyResponse{Revision: &wsfleetv1.PolicyRevision{Pool: req.GetPool(), Revision: 1}}, nil
}

func (r *recorder) ApplyPolicy(context.Context, *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	return nil, r.applyErr
}

func (r *recorder) metadata() metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.md
}

func serve(t *testing.T, srv wsfleetv1.PolicyServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	wsfleetv1.RegisterPolicyServiceServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

func call(t *testing.T, cfg admin.Config) (*wsfleetv1.GetPolicyResponse, error) {
	t.Helper()
	c, err := admin.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Policy().GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: "default"})
}

func TestCallsCarryTokenAndUser(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		user     string
		wantAuth []string
		wantUser []string
	}{
		{"a token is sent as a bearer authorization", "s3cret", "alice", []string{"Bearer s3cret"}, []string{"alice"}},
		{"no token sends no authorization", "", "bob", nil, []string{"bob"}},
		{"a non-ASCII user name is escaped rather than failing the call", "", "zoë", nil, []string{"zo%C3%AB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			addr := serve(t, rec)
			if _, err := call(t, admin.Config{Addr: addr, Token: tt.token, User: tt.user}); err != nil {
				t.Fatal(err)
			}
			md := rec.metadata()
			if got := md.Get("authorization"); !equal(got, tt.wantAuth) {
				t.Errorf("authorization = %q, want %q", got, tt.wantAuth)
			}
			if got := md.Get("x-wsfleet-user"); !equal(got, tt.wantUser) {
				t.Errorf("x-wsfleet-user = %q, want %q", got, tt.wantUser)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStructuredErrorsSurviveTheWire(t *testing.T) {
	invalid, err := status.New(codes.InvalidArgument, "policy has 2 invalid fields").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "origins.allow[1]", Description: `"https://*.*.example.com": wildcard only as the leftmost label`},
			{Field: "heartbeat.timeout", Description: "must be greater than heartbeat.interval"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conflict := conflictStatus(t, "3")
	rec := &recorder{}
	addr := serve(t, rec)
	c, err := admin.Dial(admin.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rec.applyErr = invalid.Err()
	_, err = c.Policy().ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{})
	want := []*wsfleetv1.FieldViolation{
		{Field: "origins.allow[1]", Description: `"https://*.*.example.com": wildcard only as the leftmost label`},
		{Field: "heartbeat.timeout", Description: "must be greater than heartbeat.interval"},
	}
	got := admin.FieldViolations(err)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("violation %d: got %v, want %v", i, got[i], want[i])
		}
	}

	rec.applyErr = conflict.Err()
	_, err = c.Policy().ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{})
	if cur, ok := admin.Conflict(err); !ok || cur != 3 {
		t.Errorf("Conflict = %d, %v; want 3, true", cur, ok)
	}
}

func conflictStatus(t *testing.T, current string) *status.Status {
	t.Helper()
	st, err := status.New(codes.FailedPrecondition, `pool "default" is at revision 3, not 2`).WithDetails(&errdetails.ErrorInfo{
		Reason: admin.ReasonRevisionConflict,
		Domain: admin.ErrorDomain,
		Metadata: map[string]string{
			admin.ConflictPoolKey:     "default",
			admin.ConflictCurrentKey:  current,
			admin.ConflictExpectedKey: "2",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConflict(t *testing.T) {
	otherInfo, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{
		Reason: "SOMETHING_ELSE", Domain: admin.ErrorDomain, Metadata: map[string]string{"current_revision": "3"},
	})
	otherDomain, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{
		Reason: admin.ReasonRevisionConflict, Domain: "example.com", Metadata: map[string]string{"current_revision": "3"},
	})
	wrongCode, _ := status.New(codes.Aborted, "x").WithDetails(&errdetails.ErrorInfo{
		Reason: admin.ReasonRevisionConflict, Domain: admin.ErrorDomain, Metadata: map[string]string{"current_revision": "3"},
	})
	tests := []struct {
		name   string
		err    error
		want   int64
		wantOK bool
	}{
		{"a revision conflict gives the current revision", conflictStatus(t, "3").Err(), 3, true},
		{"a conflict with the pool not existing yet gives revision 0", conflictStatus(t, "0").Err(), 0, true},
		{"a conflict without a readable revision is not a conflict", conflictStatus(t, "three").Err(), 0, false},
		{"another ErrorInfo reason is not a conflict", otherInfo.Err(), 0, false},
		{"another ErrorInfo domain is not a conflict", otherDomain.Err(), 0, false},
		{"another code is not a conflict", wrongCode.Err(), 0, false},
		{"a bare FailedPrecondition is not a conflict", status.Error(codes.FailedPrecondition, "x"), 0, false},
		{"a plain error is not a conflict", errors.New("x"), 0, false},
		{"nil is not a conflict", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := admin.Conflict(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Conflict = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFieldViolationsWithoutDetails(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"nil has none", nil},
		{"a plain error has none", errors.New("x")},
		{"a status without details has none", status.Error(codes.InvalidArgument, "bad")},
		{"a conflict has none", conflictStatus(t, "3").Err()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := admin.FieldViolations(tt.err); got != nil {
				t.Errorf("got %v, want nil", got)
			}
		})
	}
}

// pki is a throwaway CA with a server and a client certificate, written to
// PEM files the way an operator would hand them to wsctl.
type pki struct {
	caFile, clientCert, clientKey string
	server                        tls.Certificate
	pool                          *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsfleet test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			DNSNames:     []string{name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	p := &pki{
		caFile:     filepath.Join(dir, "ca.pem"),
		clientCert: filepath.Join(dir, "client.pem"),
		clientKey:  filepath.Join(dir, "client-key.pem"),
		pool:       x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	certPEM, keyPEM := issue(2, "cp.wsfleet.test", x509.ExtKeyUsageServerAuth)
	p.server, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM = issue(3, "operator", x509.ExtKeyUsageClientAuth)
	write(p.clientCert, certPEM)
	write(p.clientKey, keyPEM)
	return p
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name       string
		mutual     bool
		cfg        admin.Config
		wantFailed bool
	}{
		{"a server verified with the CA file answers", false, admin.Config{CAFile: p.caFile, ServerName: "cp.wsfleet.test", Token: "t"}, false},
		{"a client certificate satisfies a mutual-TLS server", true, admin.Config{CAFile: p.caFile, ServerName: "cp.wsfleet.test", CertFile: p.clientCert, KeyFile: p.clientKey}, false},
		{"a mutual-TLS server refuses a client without a certificate", true, admin.Config{CAFile: p.caFile, ServerName: "cp.wsfleet.test"}, true},
		{"a server name the certificate does not cover is refused", false, admin.Config{CAFile: p.caFile, ServerName: "other.test"}, true},
		{"a server not signed by the system roots is refused", false, admin.Config{TLS: true, ServerName: "cp.wsfleet.test"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
			if tt.mutual {
				tc.ClientAuth = tls.RequireAndVerifyClientCert
				tc.ClientCAs = p.pool
			}
			rec := &recorder{}
			cfg := tt.cfg
			cfg.Addr = serve(t, rec, grpc.Creds(credentials.NewTLS(tc)))
			resp, err := call(t, cfg)
			if tt.wantFailed {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("got %v, %v; want Unavailable", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Token != "" {
				if got := rec.metadata().Get("authorization"); !equal(got, []string{"Bearer " + cfg.Token}) {
					t.Errorf("authorization = %q", got)
				}
			}
		})
	}
}
