package auth

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"sync/atomic"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// UserHeader carries the caller's login name. It is trusted only in dev
// mode, where it becomes the author of revisions ("dev:alice").
const UserHeader = "x-wsfleet-user"

// methodRoles lists who may call what, besides admin (who may call
// everything). A method not listed is admin-only.
var methodRoles = map[string][]Role{
	wsfleetv1.PolicyService_GetPolicy_FullMethodName:           {RoleViewer},
	wsfleetv1.PolicyService_ValidatePolicy_FullMethodName:      {RoleViewer},
	wsfleetv1.PolicyService_ListPolicyRevisions_FullMethodName: {RoleViewer},
	wsfleetv1.PolicyService_DiffPolicy_FullMethodName:          {RoleViewer},
	wsfleetv1.PolicyService_ListPools_FullMethodName:           {RoleViewer},
	wsfleetv1.PolicyService_GetRollout_FullMethodName:          {RoleViewer},
	wsfleetv1.PolicyService_GetProposal_FullMethodName:         {RoleViewer},
	wsfleetv1.PolicyService_ListProposals_FullMethodName:       {RoleViewer},
	wsfleetv1.FleetService_ErrorSeries_FullMethodName:          {RoleViewer},
	wsfleetv1.FleetService_TrafficSummary_FullMethodName:       {RoleViewer},
	wsfleetv1.NodeService_Watch_FullMethodName:                 {RoleNode},
	wsfleetv1.NodeService_ReportTelemetry_FullMethodName:       {RoleNode},
	wsfleetv1.NodeService_Deliveries_FullMethodName:            {RoleNode},
	wsfleetv1.PublishService_Publish_FullMethodName:            {RolePublisher},
	wsfleetv1.FleetService_ListNodes_FullMethodName:            {RoleViewer},
	wsfleetv1.FleetService_QueryEvents_FullMethodName:          {RoleViewer},
	wsfleetv1.FleetService_TopErrors_FullMethodName:            {RoleViewer},
	wsfleetv1.FleetService_TailEvents_FullMethodName:           {RoleViewer},
}

// Allowed reports whether role may call the full gRPC method name.
func Allowed(role Role, fullMethod string) bool {
	if role == RoleAdmin {
		return true
	}
	for _, r := range methodRoles[fullMethod] {
		if r == role {
			return true
		}
	}
	return false
}

// Config configures an Authenticator.
type Config struct {
	// Tokens is the token set; at least one token unless Dev.
	Tokens *Tokens
	// Dev turns authentication off: every caller is an admin that may act
	// as any node (the caller must have checked that the server listens on
	// loopback only).
	Dev bool
	// CertPools are the pools a node identified by its client certificate
	// may act in when the certificate's SPIFFE ID names no pool. Empty
	// (the default): such a certificate acts in no pool.
	CertPools Patterns
}

// Authenticator checks every call's credential and role.
type Authenticator struct {
	dev       bool
	certPools Patterns
	tokens    atomic.Pointer[Tokens]
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if !cfg.Dev && cfg.Tokens.Len() == 0 {
		return nil, ErrNoTokens
	}
	a := &Authenticator{dev: cfg.Dev, certPools: cfg.CertPools}
	a.tokens.Store(cfg.Tokens)
	return a, nil
}

// Reload swaps the token set. Calls under way finish with the identity
// they authenticated with.
func (a *Authenticator) Reload(tokens *Tokens) error {
	if !a.dev && tokens.Len() == 0 {
		return ErrNoTokens
	}
	a.tokens.Store(tokens)
	return nil
}

type identityKey struct{}

// FromContext returns the caller's identity stored by the interceptors.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id; for tests and in-process callers.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// AuthFunc is the go-grpc-middleware auth function: it authenticates the
// token, authorizes the method and stores the Identity in the context.
func (a *Authenticator) AuthFunc(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	id, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if !Allowed(id.Role, method) {
		return nil, status.Errorf(codes.PermissionDenied, "%s (role %s) may not call %s", id.Name, id.Role, method)
	}
	return WithIdentity(ctx, id), nil
}

// authenticate finds the caller's identity: in dev mode anyone's; else
// the bearer token's when one is sent (over mutual TLS too: the
// certificate then only admits the connection); else, over mutual TLS, the
// node the verified client certificate names.
func (a *Authenticator) authenticate(ctx context.Context) (Identity, error) {
	if a.dev {
		return devIdentity(firstHeader(ctx, UserHeader)), nil
	}
	if firstHeader(ctx, "authorization") == "" {
		if leaf := verifiedClientCert(ctx); leaf != nil {
			id, err := certIdentity(leaf, a.certPools)
			if err != nil {
				return Identity{}, status.Error(codes.Unauthenticated, err.Error())
			}
			return id, nil
		}
	}
	token, err := grpcauth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return Identity{}, status.Error(codes.Unauthenticated, "missing bearer token (authorization: Bearer <token>)")
	}
	return a.tokenIdentity(token)
}

// devIdentity is every caller in dev mode: an admin named after the user
// header.
func devIdentity(user string) Identity {
	name := "dev"
	if user != "" {
		name = "dev:" + sanitizeName(user)
	}
	// One credential for every dev caller: any stream may replace any
	// other, as a node restarted under another id expects on a laptop.
	return Identity{Name: name, Role: RoleAdmin, Credential: "dev", Nodes: Patterns{AnyName}, Pools: Patterns{AnyName}}
}

func (a *Authenticator) tokenIdentity(token string) (Identity, error) {
	id, ok := a.tokens.Load().lookup(token)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "invalid token")
	}
	return id, nil
}

// AuthorizeHTTP is AuthFunc for a call of fullMethod made over HTTP/JSON
// (POST /v1/publish): the identity of the request's bearer token
// ("Authorization: Bearer <token>"), or in dev mode the admin named by the
// x-wsfleet-user header, if its role may call fullMethod. Errors are gRPC
// status errors (Unauthenticated, PermissionDenied), for the caller to map
// onto HTTP. Client certificates play no part: the HTTP listener has no
// TLS.
func (a *Authenticator) AuthorizeHTTP(r *http.Request, fullMethod string) (Identity, error) {
	var id Identity
	if a.dev {
		id = devIdentity(r.Header.Get(UserHeader))
	} else {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
			return Identity{}, status.Error(codes.Unauthenticated, "missing bearer token (Authorization: Bearer <token>)")
		}
		var err error
		if id, err = a.tokenIdentity(strings.TrimSpace(token)); err != nil {
			return Identity{}, err
		}
	}
	if !Allowed(id.Role, fullMethod) {
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s (role %s) may not call %s", id.Name, id.Role, fullMethod)
	}
	return id, nil
}

// verifiedClientCert is the leaf of the client certificate chain the TLS
// handshake verified, or nil without mutual TLS.
func verifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// maxIDInMessage bounds a node id or pool quoted in an error: they come
// from the caller.
const maxIDInMessage = 160

// AuthorizeNode returns the caller's identity if it may act as node
// nodeID in pool (Watch and ReportTelemetry call it with what the node
// says it is), else PermissionDenied naming the id and the pool. A context
// without an identity is refused: a handler reached without the
// interceptors must not take a node's word for who it is.
func AuthorizeNode(ctx context.Context, nodeID, pool string) (Identity, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	node, inPool := clip.ValidString(nodeID, maxIDInMessage), clip.ValidString(pool, maxIDInMessage)
	switch {
	case len(id.Nodes) == 0:
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s (role %s) may not act as node %q: nodes use node credentials", id.Name, id.Role, node)
	case !id.Nodes.Match(nodeID):
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s may not act as node %q (its nodes: %s)", id.Name, node, id.Nodes)
	case !id.Pools.Match(pool):
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s may not act as node %q in pool %q (its pools: %s)", id.Name, node, inPool, id.Pools)
	}
	return id, nil
}

// AuthorizePublish returns the caller's identity if it may publish to
// pool: an admin (dev mode included) to any pool, a publisher to the pools
// its token lists; anyone else, or a publisher outside its pools, gets
// PermissionDenied naming the pool. A context without an identity is
// refused.
func AuthorizePublish(ctx context.Context, pool string) (Identity, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	inPool := clip.ValidString(pool, maxIDInMessage)
	switch {
	case id.Role == RoleAdmin:
		return id, nil
	case id.Role != RolePublisher:
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s (role %s) may not publish", id.Name, id.Role)
	case !id.Pools.Match(pool):
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s may not publish to pool %q (its pools: %s)", id.Name, inPool, id.Pools)
	}
	return id, nil
}

func firstHeader(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// sanitizeName keeps a client-supplied name printable and short, since it
// ends up in audit lines and revision history.
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	// strings.Map has made invalid bytes U+FFFD; the cut must not split
	// a rune either: a revision's author must be valid UTF-8.
	return clip.String(s, 64)
}
