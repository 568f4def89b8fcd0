package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

const publisherToken = "publisher-token-0123456789"

// publisherTokens is testTokens plus a publisher for the pools shop and
// eu-*.
func publisherTokens(t *testing.T) *Tokens {
	t.Helper()
	sum := sha256.Sum256([]byte(nodeToken))
	tok, err := ParseTokens([]byte(`
tokens:
  - {name: alice, role: admin, token: ` + adminToken + `}
  - {name: grafana, role: viewer, token: ` + viewerToken + `}
  - {name: node-1, role: node, sha256: ` + hex.EncodeToString(sum[:]) + `, nodes: [edge-*], pools: [default]}
  - {name: orders, role: publisher, token: ` + publisherToken + `, pools: [shop, eu-*]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPublisherTokensNameTheirPools(t *testing.T) {
	const tok = "token: long-enough-token-123"
	tests := []struct {
		name  string
		entry string
		want  []string // each in the error; none: the file loads
	}{
		{"a publisher token with pools loads", "{name: orders, role: publisher, " + tok + ", pools: [shop, eu-*]}", nil},
		{"a publisher token for any pool says so", "{name: orders, role: publisher, " + tok + `, pools: ["*"]}`, nil},
		{"a publisher token without pools is refused naming the token", "{name: orders, role: publisher, " + tok + "}", []string{`tokens[0].pools: publisher token "orders" names no pools`}},
		{"a publisher token may not name nodes", "{name: orders, role: publisher, " + tok + ", nodes: [edge-1], pools: [shop]}", []string{`tokens[0].nodes: publisher token "orders" names nodes`}},
		{"a publisher's pool that cannot exist is refused", "{name: orders, role: publisher, " + tok + ", pools: [Shop]}", []string{"tokens[0].pools[0]:", `"Shop"`}},
		{"a viewer token may not name pools", "{name: grafana, role: viewer, " + tok + ", pools: [shop]}", []string{`tokens[0]: token "grafana" has role "viewer"`}},
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

func TestAPublisherMayOnlyPublish(t *testing.T) {
	a, err := New(Config{Tokens: publisherTokens(t)})
	if err != nil {
		t.Fatal(err)
	}
	publish := wsfleetv1.PublishService_Publish_FullMethodName
	deliveries := wsfleetv1.NodeService_Deliveries_FullMethodName
	tests := []struct {
		name   string
		method string
		token  string
		code   codes.Code
	}{
		{"a publisher may publish", publish, publisherToken, codes.OK},
		{"an admin may publish", publish, adminToken, codes.OK},
		{"a viewer may not publish", publish, viewerToken, codes.PermissionDenied},
		{"a node may not publish", publish, nodeToken, codes.PermissionDenied},
		{"a publisher may not read policy", wsfleetv1.PolicyService_GetPolicy_FullMethodName, publisherToken, codes.PermissionDenied},
		{"a publisher may not apply policy", wsfleetv1.PolicyService_ApplyPolicy_FullMethodName, publisherToken, codes.PermissionDenied},
		{"a publisher may not list nodes", wsfleetv1.FleetService_ListNodes_FullMethodName, publisherToken, codes.PermissionDenied},
		{"a publisher may not watch as a node", wsfleetv1.NodeService_Watch_FullMethodName, publisherToken, codes.PermissionDenied},
		{"a publisher may not take a node's deliveries", deliveries, publisherToken, codes.PermissionDenied},
		{"a node may open its deliveries", deliveries, nodeToken, codes.OK},
		{"a viewer may not open deliveries", deliveries, viewerToken, codes.PermissionDenied},
		{"publishing without a token is unauthenticated", publish, "", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.AuthFunc(callCtx(tt.method, tt.token))
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (err %v)", got, tt.code, err)
			}
		})
	}
}

func TestAuthorizePublish(t *testing.T) {
	toks := publisherTokens(t)
	ident := func(token string) context.Context {
		id, ok := toks.lookup(token)
		if !ok {
			t.Fatalf("no identity for %q", token)
		}
		return WithIdentity(context.Background(), id)
	}
	dev := WithIdentity(context.Background(), devIdentity("bob"))
	tests := []struct {
		name string
		ctx  context.Context
		pool string
		code codes.Code
		says []string
	}{
		{"a publisher publishes to a pool it lists", ident(publisherToken), "shop", codes.OK, nil},
		{"a publisher publishes to a pool its prefix matches", ident(publisherToken), "eu-west", codes.OK, nil},
		{"a publisher may not publish to another pool", ident(publisherToken), "default", codes.PermissionDenied, []string{`orders may not publish to pool "default"`, "its pools: shop, eu-*"}},
		{"an admin publishes to any pool", ident(adminToken), "anything", codes.OK, nil},
		{"dev mode publishes to any pool", dev, "anything", codes.OK, nil},
		{"a viewer may not publish at all", ident(viewerToken), "shop", codes.PermissionDenied, []string{"grafana (role viewer) may not publish"}},
		{"a node may not publish at all", ident(nodeToken), "default", codes.PermissionDenied, []string{"role node"}},
		{"no identity is refused", context.Background(), "shop", codes.Unauthenticated, nil},
		{"a huge pool is cut in the message", ident(publisherToken), strings.Repeat("p", 1<<20), codes.PermissionDenied, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AuthorizePublish(tt.ctx, tt.pool)
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

func TestAPublisherIsNoNode(t *testing.T) {
	id, _ := publisherTokens(t).lookup(publisherToken)
	if _, err := AuthorizeNode(WithIdentity(context.Background(), id), "edge-1", "shop"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a publisher acts as a node: %v", err)
	}
}

func TestAuthorizeHTTP(t *testing.T) {
	a, err := New(Config{Tokens: publisherTokens(t)})
	if err != nil {
		t.Fatal(err)
	}
	publish := wsfleetv1.PublishService_Publish_FullMethodName
	tests := []struct {
		name   string
		header string
		code   codes.Code
		who    string
	}{
		{"a publisher's bearer token is its identity", "Bearer " + publisherToken, codes.OK, "orders"},
		{"the scheme is case-insensitive", "bearer " + publisherToken, codes.OK, "orders"},
		{"an admin's token may publish", "Bearer " + adminToken, codes.OK, "alice"},
		{"no header is unauthenticated", "", codes.Unauthenticated, ""},
		{"another scheme is unauthenticated", "Basic " + publisherToken, codes.Unauthenticated, ""},
		{"a bare token is unauthenticated", publisherToken, codes.Unauthenticated, ""},
		{"an unknown token is unauthenticated", "Bearer not-a-configured-token", codes.Unauthenticated, ""},
		{"a viewer's token may not publish", "Bearer " + viewerToken, codes.PermissionDenied, ""},
		{"a node's token may not publish", "Bearer " + nodeToken, codes.PermissionDenied, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/publish", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			id, err := a.AuthorizeHTTP(r, publish)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (%v)", got, tt.code, err)
			}
			if tt.code == codes.OK && id.Name != tt.who {
				t.Fatalf("identity = %+v, want %q", id, tt.who)
			}
		})
	}
	t.Run("dev mode is an admin named by the user header", func(t *testing.T) {
		dev, err := New(Config{Dev: true})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/v1/publish", nil)
		r.Header.Set(UserHeader, "bob")
		id, err := dev.AuthorizeHTTP(r, publish)
		if err != nil || id.Name != "dev:bob" || id.Role != RoleAdmin {
			t.Fatalf("identity = %+v, err %v", id, err)
		}
	})
}
