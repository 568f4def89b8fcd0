package controlplane

// A node credential is an identity, end to end: a real wsfleet-control
// with a tokens file (no --dev) or mutual TLS, real wsfleet-node processes
// with their own credentials, and a hostile gRPC client holding node a's
// credential that tries to be node b, a node that does not exist, or
// another pool.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

const (
	e2eAdminToken = "e2e-admin-token-0123456789"
	nodeAToken    = "node-a-token-0123456789"
	nodeBToken    = "node-b-token-0123456789"
)

// nodeState is what the identity tests read of `wsctl nodes list -o json`.
type nodeState struct {
	NodeID           string          `json:"node_id"`
	Connected        bool            `json:"connected"`
	AppliedRevision  int64           `json:"applied_revision"`
	LastNackRevision int64           `json:"last_nack_revision"`
	ConnectTime      json.RawMessage `json:"connect_time"`
}

// nodesAs lists the nodes with wsctl and the given connection flags.
func nodesAs(t *testing.T, addr string, flags ...string) map[string]nodeState {
	t.Helper()
	out := mustWsctl(t, addr, "", append([]string{"nodes", "list", "-o", "json"}, flags...)...)
	var resp struct {
		Nodes []nodeState `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("nodes list -o json: %v\n%s", err, out)
	}
	m := map[string]nodeState{}
	for _, n := range resp.Nodes {
		m[n.NodeID] = n
	}
	return m
}

// hostile is a gRPC client of the node API with someone else's
// credential.
type hostile struct {
	nodes wsfleetv1.NodeServiceClient
	ctx   context.Context
}

// watchAs opens a watch stream with hello and returns how it ended; it
// fails the test if the control plane pushes anything (the stream was
// accepted, and a NACK as that node would be possible).
func (h hostile) watchAs(t *testing.T, hello *wsfleetv1.NodeHello) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	st, err := h.nodes.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err == nil {
		t.Fatalf("watch as %s/%s accepted: pushed revision %d, which it could now NACK", hello.GetNodeId(), hello.GetPool(), m.GetRevision().GetRevision())
	}
	return err
}

// reportAs sends one telemetry batch and returns how the stream answered.
func (h hostile) reportAs(t *testing.T, req *wsfleetv1.ReportTelemetryRequest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	st, err := h.nodes.ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	return err
}

func forged(node, pool, trace string) *wsfleetv1.ReportTelemetryRequest {
	return &wsfleetv1.ReportTelemetryRequest{NodeId: node, Pool: pool, ReporterId: "evil", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{{
		Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		TraceId: trace, Origin: "https://evil.example", HttpStatus: 403, Time: timestamppb.Now(),
	}}}
}

func wantDenied(t *testing.T, err error, says ...string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v, want PermissionDenied", err)
	}
	for _, s := range says {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("message lacks %s: %v", s, err)
		}
	}
}

// impersonations runs every attempt of a hostile client holding ownNode's
// credential (in pool default only) to be victim, a made-up node or its
// own node in another pool; each must be refused.
func impersonations(t *testing.T, h hostile, ownNode, victim string) {
	t.Run("a hello as the other node is refused naming it, before any push", func(t *testing.T) {
		wantDenied(t, h.watchAs(t, &wsfleetv1.NodeHello{NodeId: victim, Address: "evil:1"}), `"`+victim+`"`)
	})
	t.Run("a hello as a made-up node is refused", func(t *testing.T) {
		wantDenied(t, h.watchAs(t, &wsfleetv1.NodeHello{NodeId: "ghost-node"}), `"ghost-node"`)
	})
	t.Run("a hello as its own node in another pool is refused naming the pool", func(t *testing.T) {
		wantDenied(t, h.watchAs(t, &wsfleetv1.NodeHello{NodeId: ownNode, Pool: "eu"}), `pool "eu"`)
	})
	t.Run("telemetry as the other node is refused", func(t *testing.T) {
		wantDenied(t, h.reportAs(t, forged(victim, "", "forged-trace")), `"`+victim+`"`)
	})
	t.Run("telemetry as a made-up node is refused", func(t *testing.T) {
		wantDenied(t, h.reportAs(t, forged("ghost-node", "", "ghost-trace")), `"ghost-node"`)
	})
	t.Run("an event naming the other node in its own batch is refused", func(t *testing.T) {
		req := forged(ownNode, "", "forged-event")
		req.Events[0].NodeId = victim
		wantDenied(t, h.reportAs(t, req), `"`+victim+`"`)
	})
}

// honestNodeUntouched checks that the victim kept its stream (the same
// connect time, no redial) and no NACK, and that no ghost appeared; then
// that an apply reaches it.
func honestNodeUntouched(t *testing.T, cp *controlProc, victim *nodeProc, id string, before nodeState, dials float64, dir string, flags ...string) {
	t.Helper()
	nodes := nodesAs(t, cp.addr, flags...)
	if _, ok := nodes["ghost-node"]; ok {
		t.Errorf("a made-up node is listed: %+v", nodes["ghost-node"])
	}
	if n := nodes[id]; !n.Connected || len(n.ConnectTime) == 0 || string(n.ConnectTime) != string(before.ConnectTime) || n.LastNackRevision != 0 {
		t.Fatalf("%s was disturbed: before connected at %s, now %+v (connected at %s)", id, before.ConnectTime, n, n.ConnectTime)
	}
	if d := victim.metric(t, "wsfleet_node_control_dials_total"); d != dials {
		t.Fatalf("%s dialled again: %v dials, was %v", id, d, dials)
	}
	for _, trace := range []string{"forged-trace", "ghost-trace", "forged-event"} {
		if r := runWsctl(t, cp.addr, "", append([]string{"trace", trace}, flags...)...); r.code == 0 {
			t.Errorf("forged trace %s is shown:\n%s", trace, r.stdout)
		}
	}

	allow := policyFile(t, dir, "after-attack.yaml", 65536, "https://after-attack.example.com")
	mustWsctl(t, cp.addr, "", append([]string{"policy", "apply", "-f", allow, "-m", "after the attack"}, flags...)...)
	waitFor(t, 10*time.Second, id+" applied revision 2", func() bool { return nodesAs(t, cp.addr, flags...)[id].AppliedRevision == 2 })
	if s := handshake(t, victim.ws, "https://after-attack.example.com", ""); s != http.StatusSwitchingProtocols {
		t.Fatalf("%s does not run revision 2: status %d", id, s)
	}
	if n := nodesAs(t, cp.addr, flags...)[id]; string(n.ConnectTime) != string(before.ConnectTime) {
		t.Fatalf("%s reconnected: at %s, was %s", id, n.ConnectTime, before.ConnectTime)
	}
}

func TestALeakedNodeTokenIsOnlyItsNode(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	writeFile(t, tokens, "tokens:\n"+
		"  - {name: alice, role: admin, token: "+e2eAdminToken+"}\n"+
		"  - {name: node-a, role: node, token: "+nodeAToken+", nodes: [na], pools: [default]}\n"+
		"  - {name: node-b, role: node, token: "+nodeBToken+", nodes: [nb], pools: [default]}\n")
	cp := startControl(t, t.TempDir(), "--tokens-file", tokens)
	admin := []string{"--token", e2eAdminToken}
	startNodeProc(t, "--control", cp.addr, "--token", nodeAToken, "--node-id", "na", "--cache-file", filepath.Join(dir, "na.json"))
	nb := startNodeProc(t, "--control", cp.addr, "--token", nodeBToken, "--node-id", "nb", "--cache-file", filepath.Join(dir, "nb.json"))
	waitFor(t, 10*time.Second, "na and nb connected at revision 1", func() bool {
		n := nodesAs(t, cp.addr, admin...)
		return n["na"].Connected && n["na"].AppliedRevision == 1 && n["nb"].Connected && n["nb"].AppliedRevision == 1
	})
	before := nodesAs(t, cp.addr, admin...)["nb"]
	dials := nb.metric(t, "wsfleet_node_control_dials_total")

	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	h := hostile{nodes: wsfleetv1.NewNodeServiceClient(cc),
		ctx: metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+nodeAToken)}
	impersonations(t, h, "na", "nb")

	t.Run("the honest node keeps its stream and gets the next push", func(t *testing.T) {
		honestNodeUntouched(t, cp, nb, "nb", before, dials, dir, admin...)
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testPKI is a throwaway CA that issues certificates into dir.
type testPKI struct {
	t    *testing.T
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func newPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wsfleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, dir: dir, ca: ca, key: key, next: 2}
	writeFile(t, p.caFile(), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return p
}

func (p *testPKI) caFile() string { return filepath.Join(p.dir, "ca.crt") }

// issue writes name.crt and name.key for tmpl's subject and SANs and
// returns their paths.
func (p *testPKI) issue(name string, tmpl *x509.Certificate, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(p.next)
	p.next++
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	writeFile(p.t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(p.t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile
}

func (p *testPKI) node(name, spiffe string) (certFile, keyFile string) {
	u, err := url.Parse(spiffe)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.issue(name, &x509.Certificate{Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{u}}, x509.ExtKeyUsageClientAuth)
}

func TestAClientCertificateIsOnlyItsNode(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	srvCert, srvKey := pki.issue("server", &x509.Certificate{
		Subject: pkix.Name{CommonName: "control"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}, x509.ExtKeyUsageServerAuth)
	// nx's certificate names its pool; ny's gets it from --client-cert-pools.
	nxCert, nxKey := pki.node("nx", "spiffe://wsfleet.test/pool/default/node/nx")
	nyCert, nyKey := pki.node("ny", "spiffe://wsfleet.test/node/ny")
	// The operator's laptop certificate only admits the connection; the
	// admin token is the credential.
	opCert, opKey := pki.issue("operator", &x509.Certificate{Subject: pkix.Name{CommonName: "alice-laptop"}}, x509.ExtKeyUsageClientAuth)
	tokens := filepath.Join(dir, "tokens.yaml")
	writeFile(t, tokens, "tokens:\n  - {name: alice, role: admin, token: "+e2eAdminToken+"}\n")

	cp := startControl(t, t.TempDir(), "--tokens-file", tokens, "--tls-cert", srvCert, "--tls-key", srvKey,
		"--client-ca", pki.caFile(), "--client-cert-pools", "default")
	admin := []string{"--token", e2eAdminToken, "--ca-file", pki.caFile(), "--cert-file", opCert, "--key-file", opKey}
	tlsNode := func(id, cert, key string) *nodeProc {
		return startNodeProc(t, "--control", cp.addr, "--node-id", id, "--tls", "--ca-file", pki.caFile(),
			"--cert-file", cert, "--key-file", key, "--cache-file", filepath.Join(dir, id+".json"))
	}
	tlsNode("nx", nxCert, nxKey)
	ny := tlsNode("ny", nyCert, nyKey)
	waitFor(t, 10*time.Second, "nx and ny connected at revision 1 by their certificates alone", func() bool {
		n := nodesAs(t, cp.addr, admin...)
		return n["nx"].Connected && n["nx"].AppliedRevision == 1 && n["ny"].Connected && n["ny"].AppliedRevision == 1
	})
	before := nodesAs(t, cp.addr, admin...)["ny"]
	dials := ny.metric(t, "wsfleet_node_control_dials_total")

	pair, err := tls.LoadX509KeyPair(nxCert, nxKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca)
	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: roots, MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	impersonations(t, hostile{nodes: wsfleetv1.NewNodeServiceClient(cc), ctx: context.Background()}, "nx", "ny")

	t.Run("the node certificate cannot use the admin API", func(t *testing.T) {
		_, err := wsfleetv1.NewFleetServiceClient(cc).ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("err = %v, want PermissionDenied", err)
		}
	})
	t.Run("the honest node keeps its stream and gets the next push", func(t *testing.T) {
		honestNodeUntouched(t, cp, ny, "ny", before, dials, dir, admin...)
	})
}
