package publish

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fieldViolations returns "field: description" of every BadRequest
// violation of err.
func fieldViolations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return out
}

// cause returns the NOT_DELIVERED cause of err, or "".
func cause(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == channel.ReasonNotDelivered {
			return info.GetMetadata()[channel.CauseKey]
		}
	}
	return ""
}

func TestAPublishIsValidatedAsAWhole(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 64})
	tests := []struct {
		name string
		req  *wsfleetv1.PublishRequest
		want []string // every field violation, in order
	}{
		{"a channel with a space is refused naming the byte",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "news eu", Data: []byte(`1`)},
			[]string{`channel: ' ' at byte 4; allowed are A-Z a-z 0-9 and _ . : @ / -`}},
		{"an empty channel is refused",
			&wsfleetv1.PublishRequest{Pool: "shop", Data: []byte(`1`)},
			[]string{"channel: empty"}},
		{"a channel over 128 bytes is refused",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: strings.Repeat("c", 129), Data: []byte(`1`)},
			[]string{"channel: 129 bytes long; at most 128 allowed"}},
		{"data that is not JSON is refused with the syntax error",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`{"a":`)},
			[]string{"data: not valid JSON: unexpected end of JSON input"}},
		{"data that is not UTF-8 is refused",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte("\"\xff\"")},
			[]string{"data: not valid UTF-8"}},
		{"no data is refused: null is data",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "news"},
			[]string{"data: empty; send one JSON value (null is one)"}},
		{"data over the limit is refused before it is parsed",
			&wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`"` + strings.Repeat("x", 70) + `"`)},
			[]string{"data: 72 bytes; at most 64 (--publish-max-bytes)"}},
		{"a pool that is no DNS label is refused",
			&wsfleetv1.PublishRequest{Pool: "Shop", Channel: "news", Data: []byte(`1`)},
			[]string{"pool: not a pool name: a DNS label (lowercase letters, digits, '-', at most 63)"}},
		{"every bad field is named at once",
			&wsfleetv1.PublishRequest{Pool: "-", Channel: "a b", Data: []byte(`nope`)},
			[]string{"pool:", "channel:", "data: not valid JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.published(resultInvalid)
			_, err := h.pub.Publish(as(adminToken), tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			got := fieldViolations(err)
			if len(got) != len(tt.want) {
				t.Fatalf("violations = %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("violation %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
			if h.published(resultInvalid) != before+1 {
				t.Fatal("the refusal was not counted as invalid")
			}
		})
	}
}

func TestWhoMayPublishWhere(t *testing.T) {
	h := newHarness(t, Config{})
	req := func(pool string) *wsfleetv1.PublishRequest {
		return &wsfleetv1.PublishRequest{Pool: pool, Channel: "news", Data: []byte(`{"n":1}`)}
	}
	tests := []struct {
		name  string
		token string
		pool  string
		code  codes.Code // Unavailable: allowed, and no node is attached
	}{
		{"a publisher publishes to its pool", shopPublisher, "shop", codes.Unavailable},
		{"a publisher may not publish to another pool", shopPublisher, "blog", codes.PermissionDenied},
		{"a publisher may not publish to default by leaving the pool out", shopPublisher, "", codes.PermissionDenied},
		{"an admin publishes to any pool", adminToken, "blog", codes.Unavailable},
		{"a viewer may not publish", viewerToken, "shop", codes.PermissionDenied},
		{"a node may not publish, not even in its own pool", edgeToken, "shop", codes.PermissionDenied},
		{"no token is unauthenticated", "", "shop", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = as(tt.token)
			}
			_, err := h.pub.Publish(ctx, req(tt.pool))
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (%v)", got, tt.code, err)
			}
		})
	}
}

// attachNode opens a delivery stream as node id and waits until the
// control plane attached it (its headers).
func attachNode(t *testing.T, h *harness, token, id, pool string) wsfleetv1.NodeService_DeliveriesClient {
	t.Helper()
	ctx, cancel := context.WithCancel(as(token))
	t.Cleanup(cancel)
	st, err := h.nodes.Deliveries(ctx, &wsfleetv1.DeliveriesRequest{NodeId: id, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	if md, err := st.Header(); err != nil || md == nil {
		_, err := st.Recv()
		t.Fatalf("node %s not attached: %v", id, err)
	}
	return st
}

func recvDelivery(t *testing.T, st wsfleetv1.NodeService_DeliveriesClient) *wsfleetv1.DeliveriesResponse {
	t.Helper()
	type result struct {
		d   *wsfleetv1.DeliveriesResponse
		err error
	}
	c := make(chan result, 1)
	go func() {
		d, err := st.Recv()
		c <- result{d, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return nil
}

func TestWithoutNATSEveryAttachedNodeOfThePoolGetsTheMessage(t *testing.T) {
	h := newHarness(t, Config{})
	a := attachNode(t, h, edgeToken, "edge-1", "shop")
	b := attachNode(t, h, coreToken, "core-1", "shop")
	other := attachNode(t, h, edgeToken, "edge-2", "blog")

	resp, err := h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "orders:42", Data: []byte("{\"status\": \"paid\",\n \"n\": [1, 2]}")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRoute() != wsfleetv1.PublishResponse_ROUTE_NODES || resp.GetNodes() != 2 || resp.GetNodesSkipped() != 0 {
		t.Fatalf("answer = %v, want ROUTE_NODES to 2 nodes", resp)
	}
	for _, st := range []wsfleetv1.NodeService_DeliveriesClient{a, b} {
		d := recvDelivery(t, st)
		if d.GetChannel() != "orders:42" || string(d.GetData()) != `{"status":"paid","n":[1,2]}` {
			t.Fatalf("delivery = %q %q, want the channel and the data compacted", d.GetChannel(), d.GetData())
		}
	}
	// The node of another pool got nothing: its next delivery is the
	// one published to its own pool.
	if _, err := h.pub.Publish(as(adminToken), &wsfleetv1.PublishRequest{Pool: "blog", Channel: "posts", Data: []byte(`null`)}); err != nil {
		t.Fatal(err)
	}
	if d := recvDelivery(t, other); d.GetChannel() != "posts" || string(d.GetData()) != "null" {
		t.Fatalf("the blog node got %q %q first", d.GetChannel(), d.GetData())
	}
	if got := h.published(resultOK); got != 2 {
		t.Fatalf("ok publishes counted = %v, want 2", got)
	}
}

func TestAPoolWithNoNodeAttachedIsUnavailableAndNothingIsDelivered(t *testing.T) {
	h := newHarness(t, Config{})
	_, err := h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`1`)})
	if status.Code(err) != codes.Unavailable || cause(err) != channel.CauseNoNodeAttached {
		t.Fatalf("err = %v, want Unavailable, NOT_DELIVERED no_node_attached", err)
	}
	if !strings.Contains(status.Convert(err).Message(), `no node of pool "shop" is attached`) {
		t.Fatalf("message = %q", status.Convert(err).Message())
	}
	if h.published(channel.CauseNoNodeAttached) != 1 {
		t.Fatal("not counted")
	}
}

func TestADeliveryStreamIsTheNodeItsCredentialNames(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name       string
		token      string
		node, pool string
		code       codes.Code
	}{
		{"another node's id is refused", edgeToken, "core-1", "shop", codes.PermissionDenied},
		{"a pool outside the credential is refused", coreToken, "core-1", "blog", codes.PermissionDenied},
		{"an admin is no node", adminToken, "edge-1", "shop", codes.PermissionDenied},
		{"a publisher is no node", shopPublisher, "edge-1", "shop", codes.PermissionDenied},
		{"a node id with a space is invalid", edgeToken, "edge 1", "shop", codes.InvalidArgument},
		{"a pool that is no DNS label is invalid", edgeToken, "edge-1", "Shop", codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := h.nodes.Deliveries(as(tt.token), &wsfleetv1.DeliveriesRequest{NodeId: tt.node, Pool: tt.pool})
			if err == nil {
				_, err = st.Recv()
			}
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (%v)", got, tt.code, err)
			}
		})
	}
}

func TestANewStreamOfTheSameNodeReplacesTheOldOnlyWithTheSameCredential(t *testing.T) {
	h := newHarness(t, Config{})
	old := attachNode(t, h, edgeToken, "edge-1", "shop")

	t.Run("another credential is refused and the attached stream goes on", func(t *testing.T) {
		st, err := h.nodes.Deliveries(as(coreToken), &wsfleetv1.DeliveriesRequest{NodeId: "edge-1", Pool: "shop"})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("err = %v, want AlreadyExists", err)
		}
		if _, err := h.pub.Publish(as(adminToken), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "c", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
		if d := recvDelivery(t, old); string(d.GetData()) != "1" {
			t.Fatalf("got %q", d.GetData())
		}
	})

	t.Run("the same credential replaces it: the old stream ends Aborted", func(t *testing.T) {
		fresh := attachNode(t, h, edgeToken, "edge-1", "shop")
		if _, err := old.Recv(); status.Code(err) != codes.Aborted {
			t.Fatalf("old stream: %v, want Aborted", err)
		}
		resp, err := h.pub.Publish(as(adminToken), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "c", Data: []byte(`2`)})
		if err != nil || resp.GetNodes() != 1 {
			t.Fatalf("answer %v, %v: want one node", resp, err)
		}
		if d := recvDelivery(t, fresh); string(d.GetData()) != "2" {
			t.Fatalf("got %q", d.GetData())
		}
	})
}

func TestShutdownEndsDeliveryStreamsWithUnavailable(t *testing.T) {
	h := newHarness(t, Config{})
	st := attachNode(t, h, edgeToken, "edge-1", "shop")
	h.srv.Shutdown()
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	_, err := h.pub.Publish(as(adminToken), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "c", Data: []byte(`1`)})
	if status.Code(err) != codes.Unavailable || cause(err) != channel.CauseShuttingDown {
		t.Fatalf("publish after shutdown: %v", err)
	}
}

func TestTheRateIsBoundedPerCredential(t *testing.T) {
	h := newHarness(t, Config{Rate: 0.001, Burst: 2})
	attachNode(t, h, edgeToken, "edge-1", "shop")
	pub := func(token string) error {
		_, err := h.pub.Publish(as(token), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "c", Data: []byte(`1`)})
		return err
	}
	for i := range 2 {
		if err := pub(shopPublisher); err != nil {
			t.Fatalf("publish %d within the burst: %v", i, err)
		}
	}
	err := pub(shopPublisher)
	if status.Code(err) != codes.ResourceExhausted || cause(err) != channel.CauseRateLimited {
		t.Fatalf("publish over the burst: %v, want ResourceExhausted rate_limited", err)
	}
	var retry time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.GetRetryDelay().AsDuration()
		}
	}
	if retry <= 0 {
		t.Fatalf("no RetryInfo in %v", err)
	}
	if err := pub(otherPublisher); err != nil {
		t.Fatalf("another credential is limited too: %v", err)
	}
	if h.published(channel.CauseRateLimited) != 1 {
		t.Fatal("not counted")
	}
}

func TestConfigBounds(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		says string
	}{
		{"a message over the NATS ceiling is refused", Config{MaxBytes: MaxBytesCeiling + 1}, "--publish-max-bytes is at most 1048576"},
		{"a buffer smaller than one message is refused", Config{MaxBytes: 1024, MaxBufferedBytes: 1000}, "--publish-max-buffered-bytes"},
		{"a negative queue is refused", Config{NodeQueue: -1}, "--publish-node-queue must not be negative"},
		{"a client certificate needs its key", Config{NATS: NATSConfig{URL: "nats://127.0.0.1:4222", Cert: "c.pem"}}, "--nats-cert and --nats-key go together"},
		{"NATS credentials need a NATS URL", Config{NATS: NATSConfig{Creds: "x.creds"}}, "need --nats-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %v, want ErrConfig saying %q", err, tt.says)
			}
		})
	}
}
