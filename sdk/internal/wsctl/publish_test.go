package wsctl

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakePublisher is a PublishService that records what it is sent and
// answers with answer.
type fakePublisher struct {
	wsfleetv1.UnimplementedPublishServiceServer
	answer func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error)

	mu   sync.Mutex
	reqs []*wsfleetv1.PublishRequest
	md   []metadata.MD
}

func (f *fakePublisher) Publish(ctx context.Context, req *wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.md = append(f.md, md)
	f.mu.Unlock()
	return f.answer(req)
}

func (f *fakePublisher) requests() []*wsfleetv1.PublishRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*wsfleetv1.PublishRequest(nil), f.reqs...)
}

func servePublisher(t *testing.T, answer func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error)) (*fakePublisher, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePublisher{answer: answer}
	s := grpc.NewServer()
	wsfleetv1.RegisterPublishServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return f, lis.Addr().String()
}

func wsctlAt(addr, stdin string, args ...string) result {
	var stdout, stderr bytes.Buffer
	env := map[string]string{envAddr: addr, envUser: "tester", envToken: "publisher-token-0123"}
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return result{stdout.String(), stderr.String(), code}
}

func toNodes(n, skipped int32) func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
	return func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
		return &wsfleetv1.PublishResponse{Route: wsfleetv1.PublishResponse_ROUTE_NODES, Nodes: n, NodesSkipped: skipped}, nil
	}
}

func refusal(code codes.Code, reason, cause, msg string) func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
	return func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
		st, _ := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{
			Reason: reason, Domain: policy.ErrorDomain, Metadata: map[string]string{channel.CauseKey: cause},
		})
		return nil, st.Err()
	}
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name   string
		answer func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error)
		stdin  string
		args   []string
		code   int
		stdout string
		stderr []string
		sent   *wsfleetv1.PublishRequest // nil: nothing sent
	}{
		{"a publish says how many nodes it was queued for", toNodes(2, 0), "",
			[]string{"publish", "--pool", "shop", "orders:42", `{"status":"paid"}`}, 0,
			"published to orders:42 in pool shop: queued for 2 nodes attached to the control plane\n", nil,
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "orders:42", Data: []byte(`{"status":"paid"}`)}},
		{"nodes whose queue is full are named", toNodes(1, 1), "",
			[]string{"publish", "news", `1`}, 0,
			"published to news in pool default: queued for 1 node attached to the control plane; 1 node skipped (delivery queue full)\n", nil,
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte(`1`)}},
		{"through NATS it says so", func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
			return &wsfleetv1.PublishResponse{Route: wsfleetv1.PublishResponse_ROUTE_NATS}, nil
		}, "", []string{"publish", "news", `null`}, 0, "published to news in pool default through NATS\n", nil,
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte(`null`)}},
		{"dash reads DATA from stdin", toNodes(1, 0), "{\"big\": [1, 2]}\n",
			[]string{"publish", "news", "-"}, 0, "published to news in pool default: queued for 1 node attached to the control plane\n", nil,
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte("{\"big\": [1, 2]}\n")}},
		{"-o json prints the answer", toNodes(3, 0), "",
			[]string{"publish", "-o", "json", "news", `1`}, 0, "", nil,
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte(`1`)}},
		{"DATA that is not JSON is a usage error and nothing is sent", toNodes(1, 0), "",
			[]string{"publish", "news", `{status: paid}`}, exitUsage, "", []string{"error: DATA: not valid JSON", "quote it for your shell"}, nil},
		{"a bad channel is a usage error and nothing is sent", toNodes(1, 0), "",
			[]string{"publish", "news eu", `1`}, exitUsage, "", []string{`error: CHANNEL "news eu": ' ' at byte 4`}, nil},
		{"not delivered exits 6 and says retrying is safe",
			refusal(codes.Unavailable, channel.ReasonNotDelivered, channel.CauseNoNodeAttached, `no node of pool "default" is attached to this control plane; nothing was delivered`), "",
			[]string{"publish", "news", `1`}, exitNotDelivered, "",
			[]string{`error: no node of pool "default" is attached to this control plane; nothing was delivered (publishing again is safe)`},
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte(`1`)}},
		{"unconfirmed by NATS exits 5: the outcome is unknown",
			refusal(codes.Unavailable, channel.ReasonUnconfirmed, "unconfirmed", "NATS did not confirm the message within 2s (context deadline exceeded): subscribers may or may not get it"), "",
			[]string{"publish", "news", `1`}, exitOutcomeUnknown, "",
			[]string{"error: NATS did not confirm the message within 2s", "the outcome is unknown", "may deliver it twice"},
			&wsfleetv1.PublishRequest{Pool: "default", Channel: "news", Data: []byte(`1`)}},
		{"a pool the token may not publish to is refused", func(*wsfleetv1.PublishRequest) (*wsfleetv1.PublishResponse, error) {
			return nil, status.Error(codes.PermissionDenied, `orders may not publish to pool "blog" (its pools: shop)`)
		}, "", []string{"publish", "--pool", "blog", "news", `1`}, exitError, "",
			[]string{`error: permission denied: orders may not publish to pool "blog" (its pools: shop)`},
			&wsfleetv1.PublishRequest{Pool: "blog", Channel: "news", Data: []byte(`1`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, addr := servePublisher(t, tt.answer)
			r := wsctlAt(addr, tt.stdin, tt.args...)
			r.want(t, tt.code)
			if tt.stdout != "" {
				assertEqual(t, "stdout", r.stdout, tt.stdout)
			}
			assertContains(t, "stderr", r.stderr, tt.stderr...)
			reqs := f.requests()
			if tt.sent == nil {
				if len(reqs) != 0 {
					t.Fatalf("sent %v", reqs)
				}
				return
			}
			if len(reqs) != 1 || reqs[0].GetPool() != tt.sent.GetPool() || reqs[0].GetChannel() != tt.sent.GetChannel() || string(reqs[0].GetData()) != string(tt.sent.GetData()) {
				t.Fatalf("sent %v, want %v", reqs, tt.sent)
			}
			if got := f.md[0].Get("authorization"); len(got) != 1 || got[0] != "Bearer publisher-token-0123" {
				t.Fatalf("authorization %q", got)
			}
		})
	}
	t.Run("-o json is the answer in the API's JSON", func(t *testing.T) {
		_, addr := servePublisher(t, toNodes(3, 0))
		r := wsctlAt(addr, "", "publish", "-o", "json", "news", "1")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, `"route"`, `"nodes": 3`)
	})
	t.Run("a control plane that is down exits 3", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		_ = lis.Close()
		r := wsctlAt(addr, "", "publish", "news", "1")
		r.want(t, exitUnreachable)
		assertContains(t, "stderr", r.stderr, "unreachable", "nothing was sent")
	})
}
