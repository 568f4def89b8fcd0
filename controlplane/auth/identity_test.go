package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestPatternsMatch(t *testing.T) {
	tests := []struct {
		name string
		p    Patterns
		in   string
		want bool
	}{
		{"an exact name matches itself", Patterns{"edge-1"}, "edge-1", true},
		{"an exact name matches no longer name", Patterns{"edge-1"}, "edge-10", false},
		{"a prefix pattern matches a name with the prefix", Patterns{"edge-*"}, "edge-7", true},
		{"a prefix pattern matches the bare prefix", Patterns{"edge-*"}, "edge-", true},
		{"a prefix pattern does not match a shorter name", Patterns{"edge-*"}, "edge", false},
		{"a prefix pattern does not match another prefix", Patterns{"edge-*"}, "core-1", false},
		{"star alone matches anything", Patterns{"*"}, "whatever", true},
		{"any entry of the set may match", Patterns{"lb-1", "edge-*"}, "lb-1", true},
		{"the empty set matches nothing", nil, "edge-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Match(tt.in); got != tt.want {
				t.Fatalf("%v.Match(%q) = %v, want %v", tt.p, tt.in, got, tt.want)
			}
		})
	}
}

func TestNodeTokensNameTheirNodesAndPools(t *testing.T) {
	const tok = "token: long-enough-token-123"
	tests := []struct {
		name  string
		entry string
		want  []string // each in the error; none: the file loads
	}{
		{"a node token with nodes and pools loads", "{name: edge, role: node, " + tok + ", nodes: [edge-*, lb-1], pools: [default, eu]}", nil},
		{"star must be written out and then allows any", "{name: any, role: node, " + tok + `, nodes: ["*"], pools: ["*"]}`, nil},
		{"a node token without nodes is refused naming the token", "{name: edge, role: node, " + tok + ", pools: [default]}", []string{`tokens[0].nodes: node token "edge" names no node ids`}},
		{"a node token without pools is refused naming the token", "{name: edge, role: node, " + tok + ", nodes: [edge-1]}", []string{`tokens[0].pools: node token "edge" names no pools`}},
		{"an empty list is no list", "{name: edge, role: node, " + tok + ", nodes: [], pools: []}", []string{"tokens[0].nodes:", "tokens[0].pools:"}},
		{"an admin token may not name nodes", "{name: alice, role: admin, " + tok + ", nodes: [edge-1]}", []string{`tokens[0]: token "alice" has role "admin"; only a node token names nodes and pools`}},
		{"a star inside a pattern is refused", "{name: edge, role: node, " + tok + ", nodes: [ed*ge], pools: [default]}", []string{`tokens[0].nodes[0]: "ed*ge": "*" may only end a pattern`}},
		{"an empty pattern is refused", `{name: edge, role: node, ` + tok + `, nodes: [""], pools: [default]}`, []string{"tokens[0].nodes[0]: empty"}},
		{"a pattern with a space is refused", `{name: edge, role: node, ` + tok + `, nodes: ["edge 1"], pools: [default]}`, []string{"tokens[0].nodes[0]:", "without spaces"}},
		{"a pool that cannot exist is refused", "{name: edge, role: node, " + tok + ", nodes: [edge-1], pools: [Default]}", []string{"tokens[0].pools[0]:", `"Default"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := ParseTokens([]byte("tokens: [" + tt.entry + "]"))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if toks.Len() != 1 {
					t.Fatalf("%d tokens", toks.Len())
				}
				return
			}
			if !errors.Is(err, ErrTokensFile) {
				t.Fatalf("err = %v, want ErrTokensFile", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestAuthorizeNode(t *testing.T) {
	edge := Identity{Name: "edge", Role: RoleNode, Credential: "token:edge", Nodes: Patterns{"edge-*"}, Pools: Patterns{"default"}}
	dev := Identity{Name: "dev", Role: RoleAdmin, Credential: "dev", Nodes: Patterns{AnyName}, Pools: Patterns{AnyName}}
	admin := Identity{Name: "alice", Role: RoleAdmin, Credential: "token:alice"}
	tests := []struct {
		name       string
		ctx        context.Context
		node, pool string
		code       codes.Code
		says       []string
	}{
		{"a node in its credential's set may act", WithIdentity(context.Background(), edge), "edge-1", "default", codes.OK, nil},
		{"another node's id is refused naming it", WithIdentity(context.Background(), edge), "nb", "default", codes.PermissionDenied, []string{`"nb"`, "edge-*"}},
		{"a pool outside the set is refused naming id and pool", WithIdentity(context.Background(), edge), "edge-1", "eu", codes.PermissionDenied, []string{`"edge-1"`, `pool "eu"`}},
		{"an admin is not a node", WithIdentity(context.Background(), admin), "edge-1", "default", codes.PermissionDenied, []string{"nodes use node credentials"}},
		{"dev mode acts as any node", WithIdentity(context.Background(), dev), "anything", "any-pool", codes.OK, nil},
		{"no identity is refused", context.Background(), "edge-1", "default", codes.Unauthenticated, nil},
		{"a huge id is cut in the message", WithIdentity(context.Background(), edge), strings.Repeat("x", 1<<20), "default", codes.PermissionDenied, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AuthorizeNode(tt.ctx, tt.node, tt.pool)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (%v)", got, tt.code, err)
			}
			msg := status.Convert(err).Message()
			if len(msg) > 1024 {
				t.Fatalf("message of %d bytes", len(msg))
			}
			for _, s := range tt.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q: %s", s, msg)
				}
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCertIdentity(t *testing.T) {
	pools := Patterns{"default"}
	tests := []struct {
		name      string
		cert      *x509.Certificate
		node      string
		pools     Patterns
		wantError string
	}{
		{"a SPIFFE node id names the node, pools from the flag",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/node/edge-1")}, DNSNames: []string{"other"}}, "edge-1", Patterns{"default"}, ""},
		{"a SPIFFE pool segment names the only pool",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/pool/eu/node/edge-1")}}, "edge-1", Patterns{"eu"}, ""},
		{"without a URI SAN the first DNS SAN is the node",
			&x509.Certificate{DNSNames: []string{"edge-2.example", "x"}, Subject: pkix.Name{CommonName: "cn"}}, "edge-2.example", pools, ""},
		{"without SANs the common name is the node",
			&x509.Certificate{Subject: pkix.Name{CommonName: "edge-3"}}, "edge-3", pools, ""},
		{"a SPIFFE id of another shape is refused",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/workload/api")}}, "", nil, "is neither"},
		{"a URI SAN that is no SPIFFE id is refused",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "https://fleet.example/node/edge-1")}}, "", nil, "not a SPIFFE ID"},
		{"two URI SANs are refused",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://a/node/x"), mustURL(t, "spiffe://a/node/y")}}, "", nil, "2 URI SANs"},
		{"a pool segment that is no pool name is refused",
			&x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/pool/-eu/node/edge-1")}}, "", nil, "SPIFFE ID"},
		{"a wildcard DNS name is not one node",
			&x509.Certificate{DNSNames: []string{"*.example"}}, "", nil, "wildcard"},
		{"a certificate naming nothing is refused",
			&x509.Certificate{}, "", nil, "no URI SAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := certIdentity(tt.cert, pools)
			if tt.wantError != "" {
				if !errors.Is(err, ErrCertIdentity) || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want ErrCertIdentity with %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Role != RoleNode || !id.Nodes.Match(tt.node) || len(id.Nodes) != 1 || id.Pools.String() != tt.pools.String() {
				t.Fatalf("identity = %+v, want node %q in pools %v", id, tt.node, tt.pools)
			}
			if !strings.HasPrefix(id.Credential, "cert:") {
				t.Fatalf("credential %q", id.Credential)
			}
		})
	}
}

// tlsCtx is a call arriving over mutual TLS with a verified leaf.
func tlsCtx(ctx context.Context, leaf *x509.Certificate) context.Context {
	info := credentials.TLSInfo{State: tls.ConnectionState{
		PeerCertificates: []*x509.Certificate{leaf},
		VerifiedChains:   [][]*x509.Certificate{{leaf}},
	}}
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, AuthInfo: info})
}

func TestAClientCertificateIsANodeIdentity(t *testing.T) {
	a, err := New(Config{Tokens: testTokens(t), CertPools: Patterns{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/node/nx")}}
	watch := wsfleetv1.NodeService_Watch_FullMethodName
	get := wsfleetv1.PolicyService_GetPolicy_FullMethodName

	t.Run("without a token the certificate names the node", func(t *testing.T) {
		ctx, err := a.AuthFunc(tlsCtx(callCtx(watch, ""), leaf))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := FromContext(ctx)
		if id.Name != "spiffe://fleet.example/node/nx" || id.Credential != "cert:spiffe://fleet.example/node/nx" {
			t.Fatalf("identity = %+v", id)
		}
		if _, err := AuthorizeNode(ctx, "nx", "default"); err != nil {
			t.Fatalf("nx as itself: %v", err)
		}
		if _, err := AuthorizeNode(ctx, "ny", "default"); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("nx as ny: %v", err)
		}
	})
	t.Run("a certificate identity has the node role only", func(t *testing.T) {
		if _, err := a.AuthFunc(tlsCtx(callCtx(get, ""), leaf)); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a token sent over mutual TLS is the credential", func(t *testing.T) {
		ctx, err := a.AuthFunc(tlsCtx(callCtx(get, adminToken), leaf))
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := FromContext(ctx); id.Name != "alice" {
			t.Fatalf("identity = %+v", id)
		}
	})
	t.Run("a certificate that names no node is unauthenticated", func(t *testing.T) {
		bad := &x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://fleet.example/db")}}
		if _, err := a.AuthFunc(tlsCtx(callCtx(watch, ""), bad)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("without a certificate and a token the call is unauthenticated", func(t *testing.T) {
		if _, err := a.AuthFunc(callCtx(watch, "")); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParsePatternsNamesTheFlag(t *testing.T) {
	if _, err := ParsePatterns("--client-cert-pools", []string{"default", "a*b"}, true); !errors.Is(err, ErrPatterns) || !strings.Contains(err.Error(), "--client-cert-pools[1]") {
		t.Fatalf("err = %v", err)
	}
	if p, err := ParsePatterns("--client-cert-pools", []string{"default", "eu-*"}, true); err != nil || !p.Match("eu-west") {
		t.Fatalf("p = %v, err = %v", p, err)
	}
}
