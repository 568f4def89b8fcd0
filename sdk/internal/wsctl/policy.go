package wsctl

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// Paging for history: the server caps pages at 1000.
const (
	defaultHistoryLimit = 20
	maxPageSize         = 1000
)

// policyCommand is the `wsctl policy` group. The reading commands live here,
// the writing ones (apply, validate, rollback) in policy_write.go, set in
// policy_set.go.
func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Read, change, diff and roll back pool policies",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(
		a.policyGetCommand(),
		a.policyApplyCommand(),
		a.policySetCommand(),
		a.policyValidateCommand(),
		a.policyHistoryCommand(),
		a.policyDiffCommand(),
		a.policyRollbackCommand(),
		a.policyRecoverCommand(),
		a.policyProposeCommand(),
		a.policyApproveCommand(),
		a.policyRejectCommand(),
		a.policyProposalsCommand(),
		a.policyProposalCommand(),
	)
	return cmd
}

func poolFlag(cmd *cobra.Command, pool *string) {
	cmd.Flags().StringVar(pool, "pool", policy.DefaultPool, "pool name")
}

func (a *app) policyGetCommand() *cobra.Command {
	var (
		pool     string
		revision int64
	)
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show a pool's current policy, or a given revision",
		Long: `Show a pool's current policy, or a given revision.

With -o yaml or -o json the output is a revision document that
'wsctl policy apply -f' takes back unchanged: edit it and apply it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: pool, Revision: revision})
			if err != nil {
				return err
			}
			rev := resp.GetRevision()
			return a.emit(rev, func(w io.Writer) error { return writeRevision(w, rev) })
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().Int64Var(&revision, "revision", 0, "revision to show (default: the current one)")
	return cmd
}

// writeRevision is the table form of get: a header block, then the policy
// as it reads in a file.
func writeRevision(w io.Writer, rev *wsfleetv1.PolicyRevision) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "pool:\t%s\n", rev.GetPool())
	fmt.Fprintf(tw, "revision:\t%d\n", rev.GetRevision())
	fmt.Fprintf(tw, "author:\t%s\n", rev.GetAuthor())
	fmt.Fprintf(tw, "time:\t%s\n", formatTime(rev.GetCreateTime()))
	fmt.Fprintf(tw, "message:\t%s\n", oneLine(rev.GetMessage()))
	if rev.GetRollbackOf() != 0 {
		fmt.Fprintf(tw, "rollback of:\t%d\n", rev.GetRollbackOf())
	}
	if rev.GetProposalId() != 0 {
		fmt.Fprintf(tw, "proposal:\t%d\n", rev.GetProposalId())
		fmt.Fprintf(tw, "approved by:\t%s\n", rev.GetApprovedBy())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	body, err := policyfile.EncodeYAML(rev.GetPolicy())
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

func (a *app) policyHistoryCommand() *cobra.Command {
	var (
		pool  string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List a pool's revisions, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (all) or more, got %d", limit)
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			out := &wsfleetv1.ListPolicyRevisionsResponse{}
			token := ""
			for {
				size := maxPageSize
				if limit > 0 {
					size = min(limit-len(out.Revisions), maxPageSize)
				}
				ctx, cancel := a.callContext(cmd)
				resp, err := pc.ListPolicyRevisions(ctx, &wsfleetv1.ListPolicyRevisionsRequest{
					Pool: pool, PageSize: int32(size), PageToken: token,
				})
				cancel()
				if err != nil {
					return err
				}
				out.Revisions = append(out.Revisions, resp.GetRevisions()...)
				token = resp.GetNextPageToken()
				// A server may return more than asked; never show more
				// than --limit.
				if limit > 0 && len(out.Revisions) >= limit {
					if len(out.Revisions) > limit {
						out.Revisions = out.Revisions[:limit]
					}
					break
				}
				if token == "" || len(resp.GetRevisions()) == 0 {
					break
				}
			}
			// Left for json/yaml readers: there is more history.
			out.NextPageToken = token
			return a.emit(out, func(w io.Writer) error { return writeHistory(w, out.Revisions) })
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().IntVar(&limit, "limit", defaultHistoryLimit, "most revisions to list; 0 lists all")
	return cmd
}

func writeHistory(w io.Writer, revs []*wsfleetv1.PolicyRevision) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "REVISION\tCREATED\tAUTHOR\tMESSAGE")
	for _, r := range revs {
		msg := oneLine(r.GetMessage())
		if r.GetRollbackOf() != 0 {
			if msg != "" {
				msg += " "
			}
			msg += fmt.Sprintf("(rollback of %d)", r.GetRollbackOf())
		}
		if r.GetProposalId() != 0 {
			if msg != "" {
				msg += " "
			}
			msg += fmt.Sprintf("(proposal %d, approved by %s)", r.GetProposalId(), r.GetApprovedBy())
		}
		if note := rolloutNote(r); note != "" {
			if msg != "" {
				msg += " "
			}
			msg += note
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.GetRevision(), formatTime(r.GetCreateTime()), r.GetAuthor(), msg)
	}
	return tw.Flush()
}

func (a *app) policyDiffCommand() *cobra.Command {
	var pool string
	cmd := &cobra.Command{
		Use:   "diff REV_A REV_B",
		Short: "List the fields that differ from one revision to another",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := revisionArg("REV_A", args[0])
			if err != nil {
				return err
			}
			to, err := revisionArg("REV_B", args[1])
			if err != nil {
				return err
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.DiffPolicy(ctx, &wsfleetv1.DiffPolicyRequest{Pool: pool, FromRevision: from, ToRevision: to})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error {
				if len(resp.GetChanges()) == 0 {
					_, err := io.WriteString(w, "no differences\n")
					return err
				}
				for _, c := range resp.GetChanges() {
					if _, err := io.WriteString(w, changeLine(c)+"\n"); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	poolFlag(cmd, &pool)
	return cmd
}

func revisionArg(name, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, usageErrorf("%s must be a revision number (1 or more), got %q", name, s)
	}
	return n, nil
}
