package telemetry

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Metadata a test client sends to say which node credential its stream
// has; without it a stream may act as any node, as in dev mode.
const (
	nodesKey = "test-nodes"
	poolsKey = "test-pools"
)

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

// withTestIdentity stores the identity the control plane's interceptors
// would: a node credential for the nodes and pools the client names.
func withTestIdentity(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	id := auth.Identity{Name: "test", Role: auth.RoleNode, Credential: "test", Nodes: auth.Patterns{"*"}, Pools: auth.Patterns{"*"}}
	if v := metadata.ValueFromIncomingContext(ctx, nodesKey); len(v) > 0 {
		id.Nodes = strings.Split(v[0], ",")
	}
	if v := metadata.ValueFromIncomingContext(ctx, poolsKey); len(v) > 0 {
		id.Pools = strings.Split(v[0], ",")
	}
	return handler(srv, identityStream{ServerStream: ss, ctx: auth.WithIdentity(ctx, id)})
}

func TestTelemetryIsTheCredentialsNodesOwn(t *testing.T) {
	withNode := func(e ev, node string) *wsfleetv1.ErrorEvent { p := e.proto(); p.NodeId = node; return p }
	withPool := func(e ev, pool string) *wsfleetv1.ErrorEvent { p := e.proto(); p.Pool = pool; return p }
	tests := []struct {
		name  string
		req   *wsfleetv1.ReportTelemetryRequest
		code  codes.Code
		says  []string
		owner string // the node the events are filed under when accepted
	}{
		{"a batch of its own node is ingested", batch("na", "", "r", 1, ev{id: "own", class: capacity}), codes.OK, nil, "na"},
		{"a batch as another node is refused naming it", batch("nb", "", "r", 1, ev{id: "forged", class: capacity}), codes.PermissionDenied, []string{`"nb"`}, ""},
		{"a batch as a made-up node is refused naming it", batch("ghost-node", "", "r", 1, ev{id: "ghost", class: capacity}), codes.PermissionDenied, []string{`"ghost-node"`}, ""},
		{"a batch of its node in another pool is refused naming the pool", batch("na", "eu", "r", 1, ev{id: "eu", class: capacity}), codes.PermissionDenied, []string{`"na"`, `pool "eu"`}, ""},
		{"an event naming another node is refused naming it", &wsfleetv1.ReportTelemetryRequest{NodeId: "na", ReporterId: "r", Sequence: 1,
			Events: []*wsfleetv1.ErrorEvent{ev{id: "ok", class: capacity}.proto(), withNode(ev{id: "forged", class: capacity}, "nb")}}, codes.PermissionDenied, []string{`events[1].node_id "nb"`}, ""},
		{"an event naming another pool is refused naming it", &wsfleetv1.ReportTelemetryRequest{NodeId: "na", ReporterId: "r", Sequence: 1,
			Events: []*wsfleetv1.ErrorEvent{withPool(ev{id: "forged", class: capacity}, "eu")}}, codes.PermissionDenied, []string{`events[0].pool "eu"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			batches := map[string]int{}
			s := newStore(t, Config{Now: newClock(t0).Now, OnBatch: func(node string, events int, _ uint64) {
				mu.Lock()
				batches[node] += events
				mu.Unlock()
			}})
			f := serve(t, s)
			ctx := metadata.AppendToOutgoingContext(testContext(t), nodesKey, "na", poolsKey, "default")
			stream, err := f.node.ReportTelemetry(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(tt.req); err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v, want %v (%v)", got, tt.code, err)
			}
			for _, w := range tt.says {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("message lacks %s: %v", w, err)
				}
			}
			events, _ := s.Query(nil, 100)
			mu.Lock()
			defer mu.Unlock()
			if tt.code != codes.OK {
				if len(events) != 0 || len(batches) != 0 {
					t.Fatalf("a refused batch left %d events, batches %v", len(events), batches)
				}
				return
			}
			if len(events) != len(tt.req.GetEvents()) || batches[tt.owner] != len(events) || len(batches) != 1 {
				t.Fatalf("%d events, batches %v", len(events), batches)
			}
			for _, e := range events {
				if e.GetNodeId() != tt.owner || e.GetPool() != "default" {
					t.Fatalf("event filed under %s/%s, want %s/default", e.GetNodeId(), e.GetPool(), tt.owner)
				}
			}
		})
	}
}
