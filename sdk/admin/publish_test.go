package admin_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// fakePublish answers every publish with answer (and records the last
// request), or cuts the connection before answering when cut is set.
type fakePublish struct {
	wsfleetv1.UnimplementedPublishServiceServer
	lis    *cuttingListener
	answer func() (*wsfleetv1.PublishResponse, error)
	last   chan *wsfleetv1.PublishRequest
}

func (f *fakePublish) Publish(ctx context.Context, req *wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
	f.last <- req
	if f.answer == nil {
		f.lis.cut()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.answer()
}

func servePublish(t *testing.T, answer func() (*wsfleetv1.PublishResponse, error)) (*fakePublish, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePublish{lis: &cuttingListener{Listener: inner}, answer: answer, last: make(chan *wsfleetv1.PublishRequest, 1)}
	s := grpc.NewServer()
	wsfleetv1.RegisterPublishServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(f.lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return f, inner.Addr().String()
}

func withReason(code codes.Code, reason, cause string) func() (*wsfleetv1.PublishResponse, error) {
	return func() (*wsfleetv1.PublishResponse, error) {
		st, _ := status.New(code, "refused").WithDetails(&errdetails.ErrorInfo{
			Reason: reason, Domain: policy.ErrorDomain, Metadata: map[string]string{channel.CauseKey: cause},
		})
		return nil, st.Err()
	}
}

func TestAPublishSaysWhatIsKnownOfItsDelivery(t *testing.T) {
	tests := []struct {
		name   string
		answer func() (*wsfleetv1.PublishResponse, error)
		addr   string // overrides the fake's
		kind   error  // nil: not a CallError
		code   codes.Code
		cause  string
	}{
		{"no node attached is not delivered", withReason(codes.Unavailable, channel.ReasonNotDelivered, channel.CauseNoNodeAttached), "", admin.ErrNotDelivered, codes.Unavailable, channel.CauseNoNodeAttached},
		{"NATS down is not delivered", withReason(codes.Unavailable, channel.ReasonNotDelivered, channel.CauseNATSUnavailable), "", admin.ErrNotDelivered, codes.Unavailable, channel.CauseNATSUnavailable},
		{"rate limited is not delivered", withReason(codes.ResourceExhausted, channel.ReasonNotDelivered, channel.CauseRateLimited), "", admin.ErrNotDelivered, codes.ResourceExhausted, channel.CauseRateLimited},
		{"unconfirmed by NATS is of unknown outcome", withReason(codes.Unavailable, channel.ReasonUnconfirmed, ""), "", admin.ErrOutcomeUnknown, codes.Unavailable, ""},
		{"a connection cut mid-call is of unknown outcome", nil, "", admin.ErrOutcomeUnknown, codes.Unavailable, ""},
		{"an invalid publish is the status itself", func() (*wsfleetv1.PublishResponse, error) {
			return nil, status.Error(codes.InvalidArgument, "channel: empty")
		}, "", nil, codes.InvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, addr := servePublish(t, tt.answer)
			c := dialT(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Publish(ctx, "", "news", []byte(`1`))
			if req := <-f.last; req.GetChannel() != "news" || string(req.GetData()) != "1" {
				t.Fatalf("request %v", req)
			}
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v, want %v (%v)", status.Code(err), tt.code, err)
			}
			var ce *admin.CallError
			isCall := errors.As(err, &ce)
			if tt.kind == nil {
				if isCall {
					t.Fatalf("err = %v is classified as %v", err, ce.Kind)
				}
				return
			}
			if !isCall || !errors.Is(err, tt.kind) || ce.Pool != "default" || ce.Method != wsfleetv1.PublishService_Publish_FullMethodName {
				t.Fatalf("err = %#v, want a CallError of kind %v for pool default", err, tt.kind)
			}
			if cause, ok := admin.NotDelivered(err); ok != (tt.kind == admin.ErrNotDelivered) || cause != tt.cause {
				t.Fatalf("NotDelivered = %q, %v", cause, ok)
			}
		})
	}
	t.Run("a publish to a port nobody serves is unreachable", func(t *testing.T) {
		c := dialT(t, closedAddr(t))
		_, err := c.Publish(context.Background(), "shop", "news", []byte(`1`))
		if !errors.Is(err, admin.ErrUnreachable) || errors.Is(err, admin.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
	})
	t.Run("a delivered publish returns the answer", func(t *testing.T) {
		_, addr := servePublish(t, func() (*wsfleetv1.PublishResponse, error) {
			return &wsfleetv1.PublishResponse{Route: wsfleetv1.PublishResponse_ROUTE_NODES, Nodes: 3}, nil
		})
		resp, err := dialT(t, addr).Publish(context.Background(), "shop", "news", []byte(`1`))
		if err != nil || resp.GetNodes() != 3 {
			t.Fatalf("answer %v, %v", resp, err)
		}
	})
}
