package admin

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// maxNodePages bounds AllNodes' loop whatever a server answers: at the
// control plane's smallest page (one node) it is more nodes than it keeps.
const maxNodePages = 1_000_000

// NodeLister is the one call of FleetService that AllNodes needs; the
// generated client (Client.Fleet) is one.
type NodeLister interface {
	ListNodes(ctx context.Context, in *wsfleetv1.ListNodesRequest, opts ...grpc.CallOption) (*wsfleetv1.ListNodesResponse, error)
}

// AllNodes lists every node the control plane knows, of pool (empty: all
// pools), by following ListNodes' pages to the last one: a page is bounded
// so that it never exceeds a message limit, and a fleet of 10,000 nodes
// takes several. pageSize is each page's size (0: the server's default).
// ctx bounds the whole listing. Nodes come in id order, each once (a node
// that joins or leaves while the pages are read may be missing). A server
// that predates paging answers everything in one page, which works too.
func AllNodes(ctx context.Context, fleet NodeLister, pool string, pageSize int32) ([]*wsfleetv1.NodeStatus, error) {
	var nodes []*wsfleetv1.NodeStatus
	req := &wsfleetv1.ListNodesRequest{Pool: pool, PageSize: pageSize}
	for range maxNodePages {
		resp, err := fleet.ListNodes(ctx, req)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, resp.GetNodes()...)
		next := resp.GetNextPageToken()
		if next == "" {
			return nodes, nil
		}
		if next == req.GetPageToken() {
			return nil, fmt.Errorf("%w: ListNodes answered the page token it was given", ErrPaging)
		}
		req = &wsfleetv1.ListNodesRequest{Pool: pool, PageSize: pageSize, PageToken: next}
	}
	return nil, fmt.Errorf("%w: ListNodes did not end within %d pages", ErrPaging, maxNodePages)
}

// AllNodes is the package's AllNodes on this client's connection.
func (c *Client) AllNodes(ctx context.Context, pool string) ([]*wsfleetv1.NodeStatus, error) {
	return AllNodes(ctx, c.fleet, pool, 0)
}
