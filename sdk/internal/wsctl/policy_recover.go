package wsctl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

func (a *app) policyRecoverCommand() *cobra.Command {
	var (
		pool     string
		fromNode string
		expect   int64
		message  string
		dryRun   bool
	)
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Make the policy the fleet runs a pool's next revision (after the control plane lost its store)",
		Long: `Make the policy the fleet runs a pool's next revision.

For a control plane whose store was reset or replaced while the nodes kept
running: nodes refuse a revision older than the one they run ("revision
went backwards") and keep serving, and 'wsctl nodes list' shows them AHEAD
of the control plane. recover takes the newest revision any node reports
for the pool (or the one --from-node runs) and stores its content as the
pool's next revision, numbered above every revision any node reports, so
every node accepts it. Nothing changes on the nodes but the number.

The message defaults to one naming the source node, revision and store.
Use --dry-run to see what would be taken from where first.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := admin.Recovery{Pool: pool, FromNode: fromNode, Message: message, DryRun: dryRun}
			if cmd.Flags().Changed("expect-revision") {
				r.ExpectRevision = &expect
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := c.Recover(ctx, r)
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error { return writeRecovery(w, resp, pool, dryRun) })
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().StringVar(&fromNode, "from-node", "", "take the policy this node runs (default: the newest any node reports)")
	expectFlag(cmd, &expect)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why; kept with the new revision (default: names the source)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be taken from where, store nothing")
	return cmd
}

// writeRecovery says where the policy came from, then what the pool's
// revision became, as apply does.
func writeRecovery(w io.Writer, resp *wsfleetv1.RecoverPolicyResponse, pool string, dryRun bool) error {
	pool = poolOf(resp.GetRevision(), pool)
	from := fmt.Sprintf("%s@%d", pool, resp.GetSourceRevision())
	if id := resp.GetSourceStoreId(); id != "" {
		from += " of store " + id
	}
	verb := "recovered"
	if dryRun {
		verb = "would recover"
	}
	if _, err := fmt.Fprintf(w, "%s %s from node %s (highest revision any node reports: %d)\n",
		verb, from, resp.GetSourceNode(), resp.GetHighestReportedRevision()); err != nil {
		return err
	}
	return outcome{
		pool:     pool,
		dryRun:   dryRun,
		revision: resp.GetRevision().GetRevision(),
		previous: resp.GetPreviousRevision(),
		changes:  resp.GetChanges(),
	}.write(w)
}
