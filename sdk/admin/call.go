package admin

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// CallError is a failed call of the admin API, classified by what is known
// about its effect on the control plane (see the package doc). It keeps the
// call's gRPC status: status.FromError, status.Code, FieldViolations and
// Conflict see it unchanged.
type CallError struct {
	// Kind is ErrUnreachable, ErrStoreUnavailable, ErrOutcomeUnknown or
	// ErrConnectionLost; errors.Is matches it.
	Kind error
	// Method is the full gRPC method, "/wsfleet.v1.PolicyService/ApplyPolicy".
	Method string
	// Pool is the pool a write was for ("default" when the request left it
	// empty); "" for a read.
	Pool string
	// Err is the status error the call returned.
	Err error
}

func (e *CallError) Error() string { return e.Kind.Error() + ": " + e.Err.Error() }

// Unwrap gives both the kind and the status error to errors.Is and As.
func (e *CallError) Unwrap() []error { return []error{e.Kind, e.Err} }

// GRPCStatus lets status.FromError and status.Code read the call's status
// through the classification.
func (e *CallError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

// classify is the unary interceptor every Client call goes through. Whether
// gRPC opened a stream for the call on a live connection is what tells "never
// sent" from "sent, then no answer": grpc.Peer is filled in only when it did.
// Waiting for READY before a write would leave a window (the connection can
// drop between READY and the send) in which a call that was never sent would
// be reported as of unknown outcome; the peer has no such window.
func classify(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if !adminMethod(method) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var p peer.Peer
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
	if err == nil {
		return nil
	}
	return classifyError(method, req, err, p.Addr != nil)
}

// classifyStream does for the admin API's streams (TailEvents) what
// classify does for unary calls. A stream that could not be opened was
// never sent; a stream that breaks after opening lost its connection. Every
// admin stream is a read. The streams of a node (Watch, telemetry), which
// share a connection made by Dial, are left untouched.
func classifyStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if !adminMethod(method) {
		return s, err
	}
	if err != nil {
		return nil, classifyError(method, nil, err, false)
	}
	return &classifiedStream{ClientStream: s, method: method}, nil
}

type classifiedStream struct {
	grpc.ClientStream
	method string
}

func (s *classifiedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || errors.Is(err, io.EOF) {
		// io.EOF is the stream's clean end and must stay itself.
		return err
	}
	return classifyError(s.method, nil, err, true)
}

// adminMethod reports whether method belongs to the admin API this package
// is the client of.
func adminMethod(method string) bool {
	for _, svc := range []string{wsfleetv1.PolicyService_ServiceDesc.ServiceName, wsfleetv1.FleetService_ServiceDesc.ServiceName} {
		if strings.HasPrefix(method, "/"+svc+"/") {
			return true
		}
	}
	return false
}

func classifyError(method string, req any, err error, sent bool) error {
	pool, write := writeRequest(req)
	ce := &CallError{Method: method, Pool: pool, Err: err}
	if _, ok := StoreUnavailable(err); ok {
		ce.Kind = ErrStoreUnavailable
		return ce
	}
	if StoreOutcomeUnknown(err) {
		ce.Kind = ErrOutcomeUnknown
		return ce
	}
	code := status.Code(err)
	switch {
	case !sent && (code == codes.Unavailable || code == codes.DeadlineExceeded):
		// No connection could be made, or none before the deadline.
		ce.Kind = ErrUnreachable
	case sent && write && (code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled):
		// The control plane may have committed the write and lost the
		// answer, or may still be committing it.
		ce.Kind = ErrOutcomeUnknown
	case sent && code == codes.Unavailable:
		ce.Kind = ErrConnectionLost
	default:
		return err
	}
	return ce
}

// writeRequest reports whether req may store a revision or a proposal, and
// for which pool ("" for a decision on a proposal, which names none).
// A dry run stores nothing, whatever becomes of the connection.
func writeRequest(req any) (pool string, write bool) {
	switch r := req.(type) {
	case *wsfleetv1.ApplyPolicyRequest:
		pool, write = r.GetPool(), !r.GetDryRun()
	case *wsfleetv1.RollbackPolicyRequest:
		pool, write = r.GetPool(), true
	case *wsfleetv1.RecoverPolicyRequest:
		pool, write = r.GetPool(), !r.GetDryRun()
	case *wsfleetv1.PromoteRolloutRequest:
		pool, write = r.GetPool(), true
	case *wsfleetv1.AbortRolloutRequest:
		pool, write = r.GetPool(), true
	default:
		var named bool
		if pool, write, named = proposalWrite(req); write && !named {
			// Approve and reject name a proposal, not a pool.
			return "", true
		}
	}
	if !write {
		return "", false
	}
	if pool == "" {
		pool = policy.DefaultPool
	}
	return pool, true
}
