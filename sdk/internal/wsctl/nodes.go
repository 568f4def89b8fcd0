package wsctl

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// nackWidth keeps a long refusal from pushing the table off the screen; the
// whole text is in -o yaml.
const nackWidth = 60

// nodesCommand is the `wsctl nodes` group.
func (a *app) nodesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Show the nodes known to the control plane",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.nodesListCommand())
	return cmd
}

func (a *app) nodesListCommand() *cobra.Command {
	var pool string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes with the policy revision they run and their last refusal",
		Long: `List nodes with the policy revision they run and their last refusal.

REVISION is the pool and revision the node last acknowledged (a node of a
pool without its own policy runs default's). LAST NACK is the last revision
the node refused and why; the node keeps running its previous revision.

A node marked AHEAD of the control plane runs a revision the control plane
does not have (a higher number than its head, shown in parentheses, or the
same number from another store): the control plane's store was reset or
replaced while the node kept running, and the node refuses the older
revisions it is offered. 'wsctl policy recover --pool POOL' makes what the
fleet runs the pool's next revision.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := a.fleet()
			if err != nil {
				return err
			}
			// The control plane answers a large fleet in pages; --timeout
			// bounds each page's call.
			pages := &pagedCalls{fleet: fc, timeout: a.timeout}
			nodes, err := admin.AllNodes(cmd.Context(), pages, pool, 0)
			if err != nil {
				return err
			}
			resp := &wsfleetv1.ListNodesResponse{Nodes: nodes, Degraded: pages.degraded}
			// The API promises id order; sorting again costs nothing and
			// keeps the output stable against an older server.
			slices.SortStableFunc(resp.Nodes, func(x, y *wsfleetv1.NodeStatus) int {
				return cmp.Compare(x.GetNodeId(), y.GetNodeId())
			})
			now := time.Now()
			if err := a.emit(resp, func(w io.Writer) error { return writeNodes(w, resp.GetNodes(), pool, now) }); err != nil {
				return err
			}
			if d := resp.GetDegraded(); d != "" {
				// A replica that cannot read the fleet's shared status
				// (etcd away) lists what it knows; it is said, not hidden.
				fmt.Fprintf(a.stderr, "note: this control plane's view of the fleet may be incomplete or stale: %s\n", oneLine(d))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "only nodes of this pool (default: all)")
	return cmd
}

// pagedCalls gives each ListNodes call of a paged listing its own
// --timeout deadline, and keeps what a page says of a degraded view.
type pagedCalls struct {
	fleet    wsfleetv1.FleetServiceClient
	timeout  time.Duration
	degraded string
}

func (p *pagedCalls) ListNodes(ctx context.Context, req *wsfleetv1.ListNodesRequest, opts ...grpc.CallOption) (*wsfleetv1.ListNodesResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	resp, err := p.fleet.ListNodes(ctx, req, opts...)
	if d := resp.GetDegraded(); d != "" {
		p.degraded = d
	}
	return resp, err
}

func writeNodes(w io.Writer, nodes []*wsfleetv1.NodeStatus, pool string, now time.Time) error {
	if len(nodes) == 0 {
		msg := "no nodes have registered with the control plane\n"
		if pool != "" {
			msg = "no nodes in pool " + pool + "\n"
		}
		_, err := io.WriteString(w, msg)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tPOOL\tADDRESS\tREVISION\tSTATE\tLAST NACK")
	var aheadPools []string
	for _, n := range nodes {
		rev := appliedRevision(n)
		if n.GetAhead() {
			rev += " AHEAD of control plane (" + headRevision(n) + ")"
			if p := appliedPool(n); !slices.Contains(aheadPools, p) {
				aheadPools = append(aheadPools, p)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			n.GetNodeId(), dash(n.GetPool()), dash(n.GetAddress()), rev, nodeState(n, now), lastNack(n))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Said once below the table, so it is not missed in a long listing.
	for _, p := range aheadPools {
		if _, err := fmt.Fprintf(w, "\nnodes run a revision of pool %s that the control plane does not have (its store was reset or replaced?);\n"+
			"they keep it and refuse older ones. To make it the pool's next revision: wsctl policy recover --pool %s\n", p, p); err != nil {
			return err
		}
	}
	return nil
}

// headRevision is the control plane's head of the pool the node should run.
func headRevision(n *wsfleetv1.NodeStatus) string {
	if n.GetHeadRevision() == 0 {
		return "no revision"
	}
	return "@" + strconv.FormatInt(n.GetHeadRevision(), 10)
}

func appliedPool(n *wsfleetv1.NodeStatus) string {
	if p := n.GetAppliedPool(); p != "" {
		return p
	}
	return n.GetPool()
}

// appliedRevision reads "default@7": the pool matters because a node of a
// pool without a policy runs default's.
func appliedRevision(n *wsfleetv1.NodeStatus) string {
	if n.GetAppliedRevision() == 0 {
		return "-"
	}
	return appliedPool(n) + "@" + strconv.FormatInt(n.GetAppliedRevision(), 10)
}

func nodeState(n *wsfleetv1.NodeStatus, now time.Time) string {
	if n.GetConnected() {
		return "connected"
	}
	if n.GetLastSeenTime() == nil {
		return "disconnected"
	}
	return "disconnected " + ago(now.Sub(n.GetLastSeenTime().AsTime()))
}

func lastNack(n *wsfleetv1.NodeStatus) string {
	if n.GetLastNackRevision() == 0 {
		return "-"
	}
	s := "rev " + strconv.FormatInt(n.GetLastNackRevision(), 10)
	if msg := oneLine(n.GetLastNackError()); msg != "" {
		s += ": " + msg
	}
	return truncate(s, nackWidth)
}
