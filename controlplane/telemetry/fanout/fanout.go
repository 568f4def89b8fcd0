package fanout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// Defaults of Config.
const (
	DefaultTimeout = 2 * time.Second
	// maxPeerAnswerBytes bounds one answer from another replica: up to
	// MaxTopLimit groups of long origins, beyond gRPC's default 4 MiB.
	maxPeerAnswerBytes = 64 << 20
	// maxErrorBytes bounds a replica's error text in an answer.
	maxErrorBytes = 512
)

// ForwardedHeader marks a call forwarded by another replica (its value is
// that replica's id): it is answered from this replica's events alone.
const ForwardedHeader = "x-wsfleet-forwarded-by"

// Config configures a Fleet.
type Config struct {
	// Local is this replica's telemetry server.
	Local *telemetry.Server
	// Peers lists the other replicas now (replicas.Member.Peers).
	Peers func() []replicas.Peer
	// Self is this replica's id, sent in ForwardedHeader.
	Self string
	// Timeout bounds each call to another replica (and the opening of a
	// tail on it, its backlog included). Default 2s.
	Timeout time.Duration
	// DialOptions reach the other replicas: transport credentials (TLS
	// with the peer CA and client certificate, or insecure) at least.
	DialOptions []grpc.DialOption
	// TailBuffer is how many events from other replicas a tail may have
	// waiting for its client; beyond, those replicas' tails wait (and are
	// dropped by them when their own buffers fill). Default
	// telemetry.DefaultTailBuffer.
	TailBuffer int
	// Registerer receives the metrics; optional.
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
}

// Fleet answers FleetService's telemetry queries for every replica; see
// the package documentation.
type Fleet struct {
	cfg     Config
	metrics *metrics

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // advertised address → connection
	closed bool
}

// New checks cfg and returns a Fleet.
func New(cfg Config) (*Fleet, error) {
	switch {
	case cfg.Local == nil || cfg.Peers == nil:
		return nil, fmt.Errorf("%w: local server and peers are required", ErrConfig)
	case cfg.Timeout < 0 || cfg.TailBuffer < 0:
		return nil, fmt.Errorf("%w: negative timeout or tail buffer", ErrConfig)
	case len(cfg.DialOptions) == 0:
		return nil, fmt.Errorf("%w: no dial options (transport credentials)", ErrConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TailBuffer == 0 {
		cfg.TailBuffer = telemetry.DefaultTailBuffer
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	return &Fleet{cfg: cfg, metrics: newMetrics(cfg.Registerer), conns: map[string]*grpc.ClientConn{}}, nil
}

// Close closes the connections to the other replicas.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for addr, cc := range f.conns {
		_ = cc.Close()
		delete(f.conns, addr)
	}
}

// Forwarded reports whether ctx is a call another replica forwarded.
func Forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(ForwardedHeader)) > 0
}

// peers are the other replicas to ask, and the connections of those that
// left are closed. Nil when ctx is a forwarded call.
func (f *Fleet) peers(ctx context.Context) []replicas.Peer {
	if Forwarded(ctx) {
		return nil
	}
	ps := f.cfg.Peers()
	live := make(map[string]bool, len(ps))
	for _, p := range ps {
		live[p.Addr] = true
	}
	f.mu.Lock()
	for addr, cc := range f.conns {
		if !live[addr] {
			_ = cc.Close()
			delete(f.conns, addr)
		}
	}
	f.mu.Unlock()
	return ps
}

// isPeer reports whether replica id is still registered.
func (f *Fleet) isPeer(id string) bool {
	for _, p := range f.cfg.Peers() {
		if p.ID == id {
			return true
		}
	}
	return false
}

// client is the FleetService of the replica at addr.
func (f *Fleet) client(addr string) (wsfleetv1.FleetServiceClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, status.Error(codes.Unavailable, "control plane shutting down")
	}
	cc := f.conns[addr]
	if cc == nil {
		opts := append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxPeerAnswerBytes))}, f.cfg.DialOptions...)
		var err error
		if cc, err = grpc.NewClient(addr, opts...); err != nil {
			return nil, err
		}
		f.conns[addr] = cc
	}
	return wsfleetv1.NewFleetServiceClient(cc), nil
}

// outgoing is the context of a call forwarded to another replica: the
// caller's credentials and the marker.
func (f *Fleet) outgoing(ctx context.Context) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.Pairs(ForwardedHeader, f.cfg.Self)
	for _, k := range []string{"authorization", auth.UserHeader} {
		if v := in.Get(k); len(v) > 0 {
			out.Set(k, v[0])
		}
	}
	// Not the caller's other metadata, nor its deadline's context values:
	// the caller's deadline still bounds the call through ctx.
	return metadata.NewOutgoingContext(ctx, out)
}

// missing is the ReplicaError of a replica that did not answer.
func (f *Fleet) missing(p replicas.Peer, err error, timedOut bool) *wsfleetv1.ReplicaError {
	text := ""
	switch st := status.Convert(err); {
	case timedOut || st.Code() == codes.DeadlineExceeded:
		text = fmt.Sprintf("no answer within %s", f.cfg.Timeout)
	default:
		text = fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return &wsfleetv1.ReplicaError{Replica: p.Addr, Error: clip.ValidString(text, maxErrorBytes)}
}

// askAll calls call on every peer at once, each within the timeout, and
// returns the answers, and the replicas that gave none.
func askAll[T any](ctx context.Context, f *Fleet, method string, peers []replicas.Peer, call func(context.Context, wsfleetv1.FleetServiceClient) (T, error)) ([]T, []*wsfleetv1.ReplicaError) {
	type result struct {
		v   T
		err *wsfleetv1.ReplicaError
	}
	results := make([]result, len(peers))
	out := f.outgoing(ctx)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			c, err := f.client(p.Addr)
			if err != nil {
				results[i].err = f.missing(p, err, false)
				f.metrics.calls.WithLabelValues(method, "error").Inc()
				return
			}
			cctx, cancel := context.WithTimeout(out, f.cfg.Timeout)
			defer cancel()
			v, err := call(cctx, c)
			switch {
			case err == nil:
				results[i].v = v
				f.metrics.calls.WithLabelValues(method, "ok").Inc()
			case cctx.Err() != nil && ctx.Err() == nil:
				results[i].err = f.missing(p, err, true)
				f.metrics.calls.WithLabelValues(method, "timeout").Inc()
			default:
				results[i].err = f.missing(p, err, false)
				f.metrics.calls.WithLabelValues(method, "error").Inc()
			}
		})
	}
	wg.Wait()
	var (
		answers []T
		missing []*wsfleetv1.ReplicaError
	)
	for _, r := range results {
		if r.err != nil {
			missing = append(missing, r.err)
		} else {
			answers = append(answers, r.v)
		}
	}
	return answers, missing
}

var errShuttingDown = status.Error(codes.Unavailable, "control plane shutting down")
