package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// pagedFleet serves ListNodes from ids in pages of pageSize (the request's
// when set), its token the index of the next node; stuck answers the
// token it was given, failAt fails that page.
type pagedFleet struct {
	wsfleetv1.UnimplementedFleetServiceServer
	ids      []string
	pageSize int
	stuck    bool
	failAt   int

	mu   sync.Mutex
	reqs []*wsfleetv1.ListNodesRequest
}

func (f *pagedFleet) ListNodes(_ context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	page := len(f.reqs)
	f.mu.Unlock()
	if page == f.failAt {
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	if f.stuck && req.GetPageToken() != "" {
		return &wsfleetv1.ListNodesResponse{NextPageToken: req.GetPageToken()}, nil
	}
	from, _ := strconv.Atoi(req.GetPageToken())
	size := f.pageSize
	if req.GetPageSize() > 0 {
		size = int(req.GetPageSize())
	}
	resp := &wsfleetv1.ListNodesResponse{}
	to := min(from+size, len(f.ids))
	for _, id := range f.ids[from:to] {
		resp.Nodes = append(resp.Nodes, &wsfleetv1.NodeStatus{NodeId: id, Pool: req.GetPool()})
	}
	if to < len(f.ids) {
		resp.NextPageToken = strconv.Itoa(to)
	}
	return resp, nil
}

func (f *pagedFleet) requests() []*wsfleetv1.ListNodesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs
}

func serveFleet(t *testing.T, f *pagedFleet) *admin.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	wsfleetv1.RegisterFleetServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	c, err := admin.Dial(admin.Config{Addr: lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		s.Stop()
		<-done
	})
	return c
}

func TestAllNodesFollowsEveryPage(t *testing.T) {
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("n%02d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		fleet    *pagedFleet
		pageSize int32
		pages    int
	}{
		{"pages of the server's size are followed to the last", &pagedFleet{ids: ids, pageSize: 3}, 0, 4},
		{"the page size asked for is sent", &pagedFleet{ids: ids, pageSize: 3}, 5, 2},
		{"a server that answers all at once takes one call", &pagedFleet{ids: ids, pageSize: 100}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveFleet(t, tt.fleet)
			nodes, err := admin.AllNodes(ctx, c.Fleet(), "edge", tt.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != len(ids) {
				t.Fatalf("%d nodes", len(nodes))
			}
			for i, n := range nodes {
				if n.GetNodeId() != ids[i] || n.GetPool() != "edge" {
					t.Fatalf("node %d: %v", i, n)
				}
			}
			reqs := tt.fleet.requests()
			if len(reqs) != tt.pages {
				t.Fatalf("%d calls, want %d", len(reqs), tt.pages)
			}
			for _, req := range reqs {
				if req.GetPool() != "edge" || req.GetPageSize() != tt.pageSize {
					t.Fatalf("request %v", req)
				}
			}
		})
	}
	t.Run("the client's method lists every node", func(t *testing.T) {
		c := serveFleet(t, &pagedFleet{ids: ids, pageSize: 4})
		nodes, err := c.AllNodes(ctx, "")
		if err != nil || len(nodes) != len(ids) {
			t.Fatalf("%d nodes, %v", len(nodes), err)
		}
	})
	t.Run("a server whose pages do not advance is an error, not a loop", func(t *testing.T) {
		c := serveFleet(t, &pagedFleet{ids: ids, pageSize: 3, stuck: true})
		if _, err := admin.AllNodes(ctx, c.Fleet(), "", 0); !errors.Is(err, admin.ErrPaging) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a failed page fails the listing with its status", func(t *testing.T) {
		c := serveFleet(t, &pagedFleet{ids: ids, pageSize: 3, failAt: 2})
		if _, err := admin.AllNodes(ctx, c.Fleet(), "", 0); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("err = %v", err)
		}
	})
}
