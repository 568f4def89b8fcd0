package admin

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// ErrNotDelivered: the control plane answered that a publish went nowhere
// (no node of the pool attached, NATS not connected, its buffers full,
// the caller over its rate): publishing it again duplicates nothing. The
// NOT_DELIVERED ErrorInfo's cause says why (NotDelivered). It is a Kind
// of CallError, next to those of errors.go; it lives here with the call
// that returns it.
var ErrNotDelivered = errors.New("admin: the control plane delivered nothing")

// Publish sends data (one JSON value) to the subscribers of channel on
// every node of pool (empty: default) through PublishService.Publish; the
// token needs the publisher role for the pool, or admin. The answer says
// how the control plane delivered (NATS, or how many attached nodes).
//
// A failed publish is classified like a write of the admin API, by what
// is known of its effect, as a *CallError: ErrUnreachable (never sent),
// ErrNotDelivered (the control plane answered that nothing went out), or
// ErrOutcomeUnknown (sent, and the connection broke, the deadline passed
// or the call was cancelled before the answer, or NATS took the message
// without confirming it: subscribers may or may not get it, and a retry
// may deliver it twice). Any other refusal (InvalidArgument with every
// bad field, PermissionDenied) is the status error itself.
func (c *Client) Publish(ctx context.Context, pool, ch string, data []byte) (*wsfleetv1.PublishResponse, error) {
	var p peer.Peer
	resp, err := wsfleetv1.NewPublishServiceClient(c.conn).Publish(ctx,
		&wsfleetv1.PublishRequest{Pool: pool, Channel: ch, Data: data}, grpc.Peer(&p))
	if err != nil {
		return nil, classifyPublish(pool, err, p.Addr != nil)
	}
	return resp, nil
}

func classifyPublish(pool string, err error, sent bool) error {
	if pool == "" {
		pool = policy.DefaultPool
	}
	ce := &CallError{Method: wsfleetv1.PublishService_Publish_FullMethodName, Pool: pool, Err: err}
	if _, ok := NotDelivered(err); ok {
		ce.Kind = ErrNotDelivered
		return ce
	}
	switch code := status.Code(err); {
	case !sent && (code == codes.Unavailable || code == codes.DeadlineExceeded):
		ce.Kind = ErrUnreachable
	case sent && (code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled):
		ce.Kind = ErrOutcomeUnknown
	default:
		return err
	}
	return ce
}

// NotDelivered reports whether err is the control plane saying a publish
// went nowhere (the NOT_DELIVERED ErrorInfo) and, if so, why: one of
// api/channel's Cause* ("no_node_attached", "nats_unavailable"...).
func NotDelivered(err error) (cause string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || err == nil {
		return "", false
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if isInfo && info.GetReason() == channel.ReasonNotDelivered && info.GetDomain() == ErrorDomain {
			return info.GetMetadata()[channel.CauseKey], true
		}
	}
	return "", false
}
