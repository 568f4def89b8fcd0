package wsctl

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
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
the node refused and why; the node keeps running its previous revision.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := a.fleet()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := fc.ListNodes(ctx, &wsfleetv1.ListNodesRequest{Pool: pool})
			if err != nil {
				return err
			}
			// The API promises id order; sorting again costs nothing and
			// keeps the output stable against an older server.
			slices.SortStableFunc(resp.Nodes, func(x, y *wsfleetv1.NodeStatus) int {
				return cmp.Compare(x.GetNodeId(), y.GetNodeId())
			})
			now := time.Now()
			return a.emit(resp, func(w io.Writer) error { return writeNodes(w, resp.GetNodes(), pool, now) })
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "only nodes of this pool (default: all)")
	return cmd
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
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			n.GetNodeId(), dash(n.GetPool()), dash(n.GetAddress()), appliedRevision(n), nodeState(n, now), lastNack(n))
	}
	return tw.Flush()
}

// appliedRevision reads "default@7": the pool matters because a node of a
// pool without a policy runs default's.
func appliedRevision(n *wsfleetv1.NodeStatus) string {
	if n.GetAppliedRevision() == 0 {
		return "-"
	}
	pool := n.GetAppliedPool()
	if pool == "" {
		pool = n.GetPool()
	}
	return pool + "@" + strconv.FormatInt(n.GetAppliedRevision(), 10)
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
