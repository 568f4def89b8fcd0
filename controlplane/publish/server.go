package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Server is PublishService and the control-plane side of
// NodeService.Deliveries.
type Server struct {
	wsfleetv1.UnimplementedPublishServiceServer

	cfg     Config
	log     *logrus.Logger
	metrics *metrics
	nats    *natsRoute // nil without NATS
	hub     *hub

	limitMu  sync.Mutex
	limiters map[string]*rate.Limiter // by auth.Identity.Credential
}

var _ wsfleetv1.PublishServiceServer = (*Server)(nil)

// New validates cfg and returns a Server. With NATS configured it starts
// connecting in the background and returns at once: a NATS server that is
// down does not keep the control plane from starting, its publishes are
// refused until it connects.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, limiters: map[string]*rate.Limiter{}}
	s.metrics = newMetrics(cfg.Registerer, cfg.NATS.URL != "")
	s.hub = newHub(cfg.NodeQueue, cfg.MaxStreams, int64(cfg.MaxBufferedBytes), s.metrics)
	if cfg.NATS.URL != "" {
		nr, err := connectNATS(cfg.NATS, cfg.Timeout, s.log, s.metrics)
		if err != nil {
			return nil, err
		}
		s.nats = nr
	}
	return s, nil
}

// Route says where publishes go: "nats" or "nodes".
func (s *Server) Route() string {
	if s.nats != nil {
		return "nats"
	}
	return "nodes"
}

// Shutdown ends every delivery stream (nodes redial, to another replica
// or to this one when it is back) and refuses new ones, so that a graceful
// stop is not held up.
func (s *Server) Shutdown() { s.hub.shutdown() }

// Close releases the NATS connection. Call it after the gRPC server has
// stopped.
func (s *Server) Close() {
	if s.nats != nil {
		s.nats.close()
	}
}

// Publish implements PublishService.Publish: rate limit (per credential),
// validation (every bad field named), authorization of the pool, then the
// route.
func (s *Server) Publish(ctx context.Context, req *wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
	resp, result, err := s.publish(ctx, req)
	s.metrics.publishes.WithLabelValues(result).Inc()
	return resp, err
}

// publish is Publish with the metric's result label.
func (s *Server) publish(ctx context.Context, req *wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return nil, resultUnauthenticated, status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	if wait, ok := s.allow(id.Credential); !ok {
		return nil, channel.CauseRateLimited, notDelivered(codes.ResourceExhausted, channel.CauseRateLimited,
			fmt.Sprintf("%s publishes more than %g messages per second (burst %d); nothing was delivered, retry in %s",
				id.Name, s.cfg.Rate, s.cfg.Burst, wait.Round(time.Millisecond)), wait)
	}
	pool, data, err := s.validate(req)
	if err != nil {
		return nil, resultInvalid, err
	}
	if _, err := auth.AuthorizePublish(ctx, pool); err != nil {
		return nil, resultDenied, err
	}
	ch := req.GetChannel()
	if s.nats != nil {
		if err := s.nats.publish(ctx, pool, ch, data); err != nil {
			return nil, resultOf(err), err
		}
		return &wsfleetv1.PublishResponse{Route: wsfleetv1.PublishResponse_ROUTE_NATS}, resultOK, nil
	}
	handed, skipped, err := s.hub.publish(pool, ch, data)
	if err != nil {
		return nil, resultOf(err), err
	}
	return &wsfleetv1.PublishResponse{Route: wsfleetv1.PublishResponse_ROUTE_NODES, Nodes: int32(handed), NodesSkipped: int32(skipped)}, resultOK, nil
}

// allow takes a token from the credential's bucket; when there is none it
// says how long until there is.
func (s *Server) allow(cred string) (time.Duration, bool) {
	if s.cfg.Rate < 0 {
		return 0, true
	}
	s.limitMu.Lock()
	l := s.limiters[cred]
	if l == nil {
		if len(s.limiters) >= maxLimiters {
			clear(s.limiters)
		}
		l = rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst)
		s.limiters[cred] = l
	}
	s.limitMu.Unlock()
	now := time.Now()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused publish costs no token
		return d, false
	}
	return 0, true
}

// validate checks the request as a whole and names every bad field; it
// returns the pool (default for none) and the data compacted.
func (s *Server) validate(req *wsfleetv1.PublishRequest) (pool string, data []byte, err error) {
	var vs []*errdetails.BadRequest_FieldViolation
	bad := func(field, format string, args ...any) {
		vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	pool = req.GetPool()
	if pool == "" {
		pool = policy.DefaultPool
	} else if err := policy.ValidatePoolName(pool); err != nil {
		bad("pool", "not a pool name: a DNS label (lowercase letters, digits, '-', at most 63)")
	}
	if err := channel.ValidateName(req.GetChannel()); err != nil {
		bad("channel", "%s", trimSentinel(err, channel.ErrName))
	}
	raw := req.GetData()
	switch {
	case len(raw) > s.cfg.MaxBytes:
		bad("data", "%d bytes; at most %d (--publish-max-bytes)", len(raw), s.cfg.MaxBytes)
	default:
		if err := channel.CheckData(raw); err != nil {
			bad("data", "%s", trimSentinel(err, channel.ErrData))
			break
		}
		var b bytes.Buffer
		b.Grow(len(raw))
		if err := json.Compact(&b, raw); err != nil { // checked valid above
			bad("data", "not valid JSON: %v", err)
			break
		}
		data = b.Bytes()
	}
	if len(vs) > 0 {
		return "", nil, invalidArgument(vs)
	}
	return pool, data, nil
}

// trimSentinel drops the "channel: invalid name: " prefix: the field
// violation names the field already.
func trimSentinel(err, sentinel error) string {
	msg := err.Error()
	if p := sentinel.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

func invalidArgument(vs []*errdetails.BadRequest_FieldViolation) error {
	msg := "invalid publish: " + vs[0].GetField() + ": " + vs[0].GetDescription()
	if len(vs) > 1 {
		msg = fmt.Sprintf("invalid publish: %d invalid fields", len(vs))
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: vs})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// notDelivered is a refusal that delivered nothing, with the
// NOT_DELIVERED ErrorInfo naming the cause, and a RetryInfo when the
// caller should wait (retryAfter > 0).
func notDelivered(code codes.Code, cause, msg string, retryAfter time.Duration) error {
	return withInfo(code, channel.ReasonNotDelivered, cause, msg, retryAfter)
}

func withInfo(code codes.Code, reason, cause, msg string, retryAfter time.Duration) error {
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   policy.ErrorDomain,
		Metadata: map[string]string{channel.CauseKey: cause},
	}}
	if retryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
	}
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// The result label of wsfleet_control_publishes_total, besides the
// channel.Cause* of a message not delivered.
const (
	resultOK              = "ok"
	resultInvalid         = "invalid"
	resultDenied          = "denied"
	resultUnauthenticated = "unauthenticated"
	resultUnconfirmed     = "unconfirmed"
	resultCanceled        = "canceled"
)

// resultOf names a failed publish for the metric: the cause of the
// ErrorInfo it carries, else its kind.
func resultOf(err error) string {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() == channel.ReasonUnconfirmed {
				return resultUnconfirmed
			}
			if c := info.GetMetadata()[channel.CauseKey]; c != "" {
				return c
			}
		}
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return resultInvalid
	case codes.PermissionDenied:
		return resultDenied
	case codes.Canceled, codes.DeadlineExceeded:
		return resultCanceled
	}
	return "other"
}
