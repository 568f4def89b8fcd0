package auth

import (
	"context"
	"strings"
	"sync/atomic"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	wsfleetv1.NodeService_Watch_FullMethodName:                 {RoleNode},
	wsfleetv1.NodeService_ReportTelemetry_FullMethodName:       {RoleNode},
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

// Authenticator checks every call's token and role.
type Authenticator struct {
	dev    bool
	tokens atomic.Pointer[Tokens]
}

// New returns an Authenticator. With dev set, authentication is off (the
// caller must have checked that the server listens on loopback only);
// otherwise tokens must hold at least one token.
func New(tokens *Tokens, dev bool) (*Authenticator, error) {
	if !dev && tokens.Len() == 0 {
		return nil, ErrNoTokens
	}
	a := &Authenticator{dev: dev}
	a.tokens.Store(tokens)
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

func (a *Authenticator) authenticate(ctx context.Context) (Identity, error) {
	if a.dev {
		name := "dev"
		if u := firstHeader(ctx, UserHeader); u != "" {
			name = "dev:" + sanitizeName(u)
		}
		return Identity{Name: name, Role: RoleAdmin}, nil
	}
	token, err := grpcauth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return Identity{}, status.Error(codes.Unauthenticated, "missing bearer token (authorization: Bearer <token>)")
	}
	id, ok := a.tokens.Load().lookup(token)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "invalid token")
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
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
