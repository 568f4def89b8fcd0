package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
	nodeToken   = "node-token-0123456789ab"
)

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	sum := sha256.Sum256([]byte(nodeToken))
	tok, err := ParseTokens([]byte(`
tokens:
  - {name: alice, role: admin, token: ` + adminToken + `}
  - {name: grafana, role: viewer, token: ` + viewerToken + `}
  - {name: node-1, role: node, sha256: ` + hex.EncodeToString(sum[:]) + `, nodes: [edge-*], pools: [default]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type methodStream struct {
	grpc.ServerTransportStream
	method string
}

func (m methodStream) Method() string { return m.method }

func callCtx(method, token string, md ...string) context.Context {
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), methodStream{method: method})
	pairs := append([]string{}, md...)
	if token != "" {
		pairs = append(pairs, "authorization", "Bearer "+token)
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs(pairs...))
}

func TestAuthFunc(t *testing.T) {
	a, err := New(Config{Tokens: testTokens(t)})
	if err != nil {
		t.Fatal(err)
	}
	get := wsfleetv1.PolicyService_GetPolicy_FullMethodName
	apply := wsfleetv1.PolicyService_ApplyPolicy_FullMethodName
	watch := wsfleetv1.NodeService_Watch_FullMethodName
	tests := []struct {
		name   string
		method string
		token  string
		code   codes.Code
		who    string
	}{
		{"no token is unauthenticated", get, "", codes.Unauthenticated, ""},
		{"unknown token is unauthenticated", get, "not-a-configured-token", codes.Unauthenticated, ""},
		{"viewer may get policy", get, viewerToken, codes.OK, "grafana"},
		{"viewer may not apply policy", apply, viewerToken, codes.PermissionDenied, ""},
		{"admin may apply policy", apply, adminToken, codes.OK, "alice"},
		{"node token given as a digest may watch", watch, nodeToken, codes.OK, "node-1"},
		{"node may not read the admin API", get, nodeToken, codes.PermissionDenied, ""},
		{"viewer may not watch as a node", watch, viewerToken, codes.PermissionDenied, ""},
		{"unknown method is admin-only", "/wsfleet.v1.PolicyService/Nope", viewerToken, codes.PermissionDenied, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, err := a.AuthFunc(callCtx(tt.method, tt.token))
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (err %v)", got, tt.code, err)
			}
			if tt.code != codes.OK {
				return
			}
			id, ok := FromContext(ctx)
			if !ok || id.Name != tt.who {
				t.Fatalf("identity = %+v, want name %q", id, tt.who)
			}
		})
	}
}

func TestDevModeNamesTheUser(t *testing.T) {
	a, err := New(Config{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := a.AuthFunc(callCtx(wsfleetv1.PolicyService_ApplyPolicy_FullMethodName, "", UserHeader, "bob\n"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := FromContext(ctx)
	if id.Name != "dev:bob" || id.Role != RoleAdmin {
		t.Fatalf("identity = %+v", id)
	}
	if _, err := AuthorizeNode(ctx, "any-node", "any-pool"); err != nil {
		t.Fatalf("dev mode may not act as a node: %v", err)
	}
}

func TestNewWithoutTokensIsRefused(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("err = %v, want ErrNoTokens", err)
	}
}

func TestReloadSwapsTokens(t *testing.T) {
	a, err := New(Config{Tokens: testTokens(t)})
	if err != nil {
		t.Fatal(err)
	}
	next, err := ParseTokens([]byte("tokens: [{name: carol, role: admin, token: carol-token-0123456789}]"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	get := wsfleetv1.PolicyService_GetPolicy_FullMethodName
	if _, err := a.AuthFunc(callCtx(get, adminToken)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old token still works: %v", err)
	}
	if _, err := a.AuthFunc(callCtx(get, "carol-token-0123456789")); err != nil {
		t.Fatalf("new token refused: %v", err)
	}
	if err := a.Reload(&Tokens{}); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("reload to empty: %v", err)
	}
}

func TestParseTokensNamesEveryProblem(t *testing.T) {
	_, err := ParseTokens([]byte(`
tokens:
  - {name: a, role: admin, token: short}
  - {name: a, role: root, token: long-enough-token-123}
  - {name: "", role: viewer, sha256: nothex}
  - {name: d, role: node}
  - {name: e, role: node, token: long-enough-token-123}
`))
	if !errors.Is(err, ErrTokensFile) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		"tokens[0].token: shorter than 16",
		`tokens[1].name: "a" is used twice`,
		`tokens[1].role: "root"`,
		"tokens[2].name: required",
		"tokens[2].sha256: not 64 hex",
		"tokens[3]: token or sha256 required",
		"tokens[4]: the same token is listed twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseTokensRefusesUnknownFields(t *testing.T) {
	_, err := ParseTokens([]byte("tokens: [{name: a, role: admin, token: long-enough-token-123, rol: x}]"))
	if !errors.Is(err, ErrTokensFile) {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthenticateToken(t *testing.T) {
	a, err := New(Config{Tokens: testTokens(t)})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := New(Config{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		a        *Authenticator
		token    string
		wantName string
		wantRole Role
		wantErr  codes.Code
	}{
		{"an admin token is its admin", a, adminToken, "alice", RoleAdmin, codes.OK},
		{"a viewer token is its viewer, spaces trimmed", a, " " + viewerToken + "\n", "grafana", RoleViewer, codes.OK},
		{"an unknown token is refused", a, "nope-nope-nope-nope-nope", "", "", codes.Unauthenticated},
		{"in dev mode any token is an admin named after it", dev, "bob", "dev:bob", RoleAdmin, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.AuthenticateToken(tc.token)
			if status.Code(err) != tc.wantErr || id.Name != tc.wantName || id.Role != tc.wantRole {
				t.Fatalf("got %+v, %v", id, err)
			}
		})
	}
}
