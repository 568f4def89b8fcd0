package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// DefaultAddr is where a control plane listens by default.
const DefaultAddr = "127.0.0.1:7400"

// Metadata keys the control plane reads.
const (
	// AuthorizationKey carries "Bearer <token>".
	AuthorizationKey = "authorization"
	// UserKey names the person at the keyboard. The control plane takes it
	// as the author of a change only in --dev mode (no auth); otherwise the
	// author comes from the token.
	UserKey = "x-wsfleet-user"
)

// Config says how to reach and authenticate to a control plane.
type Config struct {
	// Addr is where the control plane's replicas are. Default DefaultAddr.
	//
	//   - "a:7400,b:7400,c:7400": a comma-separated list of host:port, one
	//     entry per replica (names in it are resolved when dialled).
	//   - "cp.internal:7400" or "dns:///cp.internal:7400": gRPC's DNS
	//     resolver; every A and AAAA record of the name is a replica, and
	//     the name is resolved again (at most every 30 s) after a
	//     connection breaks. "dns://10.0.0.53/cp.internal:7400" asks that
	//     DNS server.
	//   - any other gRPC target ("unix:///run/wsfleet.sock").
	//
	// A Client holds one connection, to one replica picked at random (so a
	// fleet spreads over the replicas), and moves to another when that
	// connection breaks: the next call or stream tries the others.
	Addr string
	// Token is the bearer token, sent as "authorization: Bearer <token>".
	// Empty sends none (a --dev control plane needs none).
	Token string
	// User is sent as x-wsfleet-user; see UserKey.
	User string
	// TLS turns on TLS, verifying the server against the system roots
	// unless CAFile is set.
	TLS bool
	// CAFile is a PEM bundle to verify the server with; implies TLS.
	CAFile string
	// CertFile and KeyFile are the client certificate and key for mutual
	// TLS; both or neither; imply TLS.
	CertFile string
	KeyFile  string
	// ServerName is the name every replica's certificate is checked
	// against (when Addr is an IP or a tunnel, or the replicas share one
	// certificate for a service name); implies nothing else. Default: each
	// replica's host as Addr gives it: a list's own entry, or the DNS name
	// (every replica behind it must then hold a certificate for it).
	ServerName string
	// DialOptions are added after the transport and credentials (e.g.
	// keepalive for the long-lived streams of a node); a default service
	// config among them replaces the shuffled pick_first of the package
	// doc.
	DialOptions []grpc.DialOption
}

// Client is a connection to a control plane's admin API.
type Client struct {
	conn   *grpc.ClientConn
	policy wsfleetv1.PolicyServiceClient
	fleet  wsfleetv1.FleetServiceClient
}

// Dial checks cfg, fills defaults and creates a client without connecting
// (see the package doc). A token is refused over plaintext unless every
// address in Addr is a loopback address: on the wire it is a password.
func Dial(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	addrs, err := replicas(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both a cert file and a key file", ErrConfig)
	}
	if strings.TrimSpace(cfg.Token) != cfg.Token || !printable(cfg.Token) {
		return nil, fmt.Errorf("%w: the token has spaces or control characters (a stray newline from a file?)", ErrConfig)
	}
	useTLS := cfg.TLS || cfg.CAFile != "" || cfg.CertFile != ""
	if cfg.Token != "" && !useTLS {
		for _, a := range addrs {
			if !isLoopback(a) {
				return nil, fmt.Errorf("%w to %s, which is not a loopback address; use TLS (--tls)", ErrInsecureToken, a)
			}
		}
	}

	transport := insecure.NewCredentials()
	if useTLS {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(tc)
	}
	user := cfg.User
	if !printable(user) {
		// gRPC refuses non-ASCII header values outright; an accented login
		// name must not make every call fail.
		user = url.PathEscape(user)
	}
	tgt, opts := target(addrs, cfg.ServerName)
	opts = append(opts,
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(callCredentials{token: cfg.Token, user: user, secure: useTLS}),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithChainUnaryInterceptor(classify),
		grpc.WithChainStreamInterceptor(classifyStream),
	)
	opts = append(opts, cfg.DialOptions...)
	conn, err := grpc.NewClient(tgt, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &Client{
		conn:   conn,
		policy: wsfleetv1.NewPolicyServiceClient(conn),
		fleet:  wsfleetv1.NewFleetServiceClient(conn),
	}, nil
}

// Policy is the PolicyService client.
func (c *Client) Policy() wsfleetv1.PolicyServiceClient { return c.policy }

// Fleet is the FleetService client.
func (c *Client) Fleet() wsfleetv1.FleetServiceClient { return c.fleet }

// Conn is the underlying connection, for other services on the same
// control plane (health checking, reflection).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close tears the connection down; calls in flight fail with Canceled.
func (c *Client) Close() error { return c.conn.Close() }

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrTLS, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// callCredentials attaches the token and user to every call, unary and
// streaming alike.
type callCredentials struct {
	token, user string
	secure      bool
}

var _ credentials.PerRPCCredentials = callCredentials{}

func (c callCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	md := make(map[string]string, 2)
	if c.token != "" {
		md[AuthorizationKey] = "Bearer " + c.token
	}
	if c.user != "" {
		md[UserKey] = c.user
	}
	return md, nil
}

// RequireTransportSecurity is true over TLS so gRPC itself refuses to send
// the token should the transport ever be downgraded; Dial has already vetted
// the plaintext case.
func (c callCredentials) RequireTransportSecurity() bool { return c.secure }

// isLoopback reports whether target names this machine: localhost, a
// loopback IP or a Unix socket. Names are not resolved: a name that merely
// happens to resolve to 127.0.0.1 today is not trusted with a token.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	// Strip "scheme://authority/" from gRPC targets such as dns:///host:port.
	if i := strings.Index(target, "://"); i >= 0 {
		rest := target[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			rest = rest[j+1:]
		}
		target = rest
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// printable reports whether s may travel as an ASCII gRPC header value.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
