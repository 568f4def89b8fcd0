package wsctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The proposal commands: a pool whose policy has approval.required changes
// only through a proposal one admin makes and another approves.

func (a *app) policyProposeCommand() *cobra.Command {
	var (
		file, pool, message, canary string
		expect                      int64
		bake                        time.Duration
		minSamples                  int32
		maxRatio                    float64
	)
	cmd := &cobra.Command{
		Use:   "propose -f FILE|- -m MESSAGE",
		Short: "Propose a policy change for another admin to approve",
		Long: `Propose a policy change for another admin to approve.

The file is read as by 'wsctl policy apply'. The proposal is validated and
diffed against the pool's current revision, with its dry-run impact on the
last hour of traffic when the control plane has telemetry; nothing changes
until another admin runs 'wsctl policy approve ID'. The revision it then
makes is yours (author), with the approver recorded. If the pool changes
before that, the proposal is stale and must be proposed again.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if message == "" {
				return usageErrorf("-m/--message is required: say why, for the approver")
			}
			doc, _, err := a.readDocument(file)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("pool") {
				pool = doc.Pool
				if pool == "" {
					pool = policy.DefaultPool
				}
			}
			req := &wsfleetv1.ProposePolicyRequest{
				Pool: pool, Policy: doc.Policy, Message: message,
				Canary: canary, CanaryMinSamples: minSamples, CanaryMaxRatio: maxRatio,
			}
			if cmd.Flags().Changed("bake") {
				req.Bake = durationpb.New(bake)
			}
			if cmd.Flags().Changed("expect-revision") {
				req.ExpectedRevision = proto.Int64(expect)
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.ProposePolicy(ctx, req)
			if err != nil {
				return err
			}
			p := resp.GetProposal()
			return a.emit(resp, func(w io.Writer) error {
				if _, err := fmt.Fprintf(w, "proposal %d stored; another admin approves it with 'wsctl policy approve %d'\n\n", p.GetId(), p.GetId()); err != nil {
					return err
				}
				return writeProposal(w, p)
			})
		},
	}
	fileFlag(cmd, &file)
	poolFlag(cmd, &pool)
	expectFlag(cmd, &expect)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why the change is made (required); becomes the revision's message")
	cmd.Flags().StringVar(&canary, "canary", "", "on approval, roll out first to the nodes whose labels match this selector (k=v,k2!=v2)")
	cmd.Flags().DurationVar(&bake, "bake", 0, "with --canary: how long to bake (default 5m)")
	cmd.Flags().Int32Var(&minSamples, "canary-min-samples", 0, "with --canary: events needed before a class's rates are compared (default 10)")
	cmd.Flags().Float64Var(&maxRatio, "canary-max-ratio", 0, "with --canary: canary rate over the rest's that rolls back (default 2)")
	return cmd
}

func proposalArg(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, usageErrorf("ID must be a proposal id (1 or more), got %q", s)
	}
	return n, nil
}

func (a *app) policyApproveCommand() *cobra.Command {
	var message string
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve another admin's proposal: it becomes the pool's next revision",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := proposalArg(args[0])
			if err != nil {
				return err
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.ApproveProposal(ctx, &wsfleetv1.ApproveProposalRequest{Id: id, Message: message})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error {
				rev := resp.GetRevision()
				_, err := fmt.Fprintf(w, "proposal %d approved: pool %s: revision %d -> %d (author %s, approved by %s)\n",
					id, rev.GetPool(), resp.GetProposal().GetBaseRevision(), rev.GetRevision(), rev.GetAuthor(), rev.GetApprovedBy())
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "the approver's comment, kept with the proposal")
	return cmd
}

func (a *app) policyRejectCommand() *cobra.Command {
	var message string
	cmd := &cobra.Command{
		Use:   "reject ID -m MESSAGE",
		Short: "Reject a proposal: it is closed and never applied",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := proposalArg(args[0])
			if err != nil {
				return err
			}
			if message == "" {
				return usageErrorf("-m/--message is required: say why, for the proposer")
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.RejectProposal(ctx, &wsfleetv1.RejectProposalRequest{Id: id, Message: message})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "proposal %d rejected\n", id)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "why (required), kept with the proposal")
	return cmd
}

func (a *app) policyProposalsCommand() *cobra.Command {
	var (
		pool  string
		open  bool
		limit int32
	)
	cmd := &cobra.Command{
		Use:   "proposals",
		Short: "List proposals, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (the server's default) or more, got %d", limit)
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.ListProposals(ctx, &wsfleetv1.ListProposalsRequest{Pool: pool, OpenOnly: open, Limit: limit})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error { return writeProposals(w, resp.GetProposals()) })
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "only this pool's (default: every pool)")
	cmd.Flags().BoolVar(&open, "open", false, "only open proposals")
	cmd.Flags().Int32Var(&limit, "limit", 0, "most proposals to list (default 50, at most 500)")
	return cmd
}

func (a *app) policyProposalCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "proposal ID",
		Short: "Show a proposal: its state, changes and dry-run impact",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := proposalArg(args[0])
			if err != nil {
				return err
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.GetProposal(ctx, &wsfleetv1.GetProposalRequest{Id: id})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error { return writeProposal(w, resp.GetProposal()) })
		},
	}
}

// proposalState is a proposal's state as the tables show it.
func proposalState(p *wsfleetv1.Proposal) string {
	switch p.GetState() {
	case wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN:
		if p.GetStale() {
			return "stale"
		}
		return "open"
	case wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED:
		return "approved"
	case wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED:
		return "rejected"
	}
	return "unknown"
}

func writeProposals(w io.Writer, ps []*wsfleetv1.Proposal) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tPOOL\tSTATE\tBASE\tPROPOSER\tCREATED\tDECIDED BY\tREVISION\tMESSAGE")
	for _, p := range ps {
		rev := ""
		if p.GetRevision() != 0 {
			rev = strconv.FormatInt(p.GetRevision(), 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.GetId(), p.GetPool(), proposalState(p), p.GetBaseRevision(),
			p.GetProposer(), formatTime(p.GetCreateTime()), p.GetDecidedBy(), rev, oneLine(p.GetMessage()))
	}
	return tw.Flush()
}

func writeProposal(w io.Writer, p *wsfleetv1.Proposal) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "proposal:\t%d\n", p.GetId())
	state := proposalState(p)
	if p.GetStale() {
		state += fmt.Sprintf(" (pool %s moved past revision %d: re-propose)", p.GetPool(), p.GetBaseRevision())
	}
	fmt.Fprintf(tw, "state:\t%s\n", state)
	fmt.Fprintf(tw, "pool:\t%s\n", p.GetPool())
	fmt.Fprintf(tw, "base revision:\t%d\n", p.GetBaseRevision())
	fmt.Fprintf(tw, "proposer:\t%s\n", p.GetProposer())
	fmt.Fprintf(tw, "time:\t%s\n", formatTime(p.GetCreateTime()))
	fmt.Fprintf(tw, "message:\t%s\n", oneLine(p.GetMessage()))
	if p.GetCanary() != "" {
		bake := "5m (default)"
		if p.GetBake() != nil {
			bake = p.GetBake().AsDuration().String()
		}
		fmt.Fprintf(tw, "canary:\t%s, bake %s\n", p.GetCanary(), bake)
	}
	if p.GetDecidedBy() != "" {
		fmt.Fprintf(tw, "decided by:\t%s\n", p.GetDecidedBy())
		fmt.Fprintf(tw, "decided:\t%s\n", formatTime(p.GetDecideTime()))
		if p.GetDecisionMessage() != "" {
			fmt.Fprintf(tw, "decision:\t%s\n", oneLine(p.GetDecisionMessage()))
		}
	}
	if p.GetRevision() != 0 {
		fmt.Fprintf(tw, "revision:\t%d\n", p.GetRevision())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nchanges against revision %d:\n", p.GetBaseRevision())
	for _, c := range p.GetChanges() {
		b.WriteString("  " + changeLine(c) + "\n")
	}
	writeProposalImpact(&b, p.GetImpact())
	_, err := io.WriteString(w, b.String())
	return err
}

// writeProposalImpact summarises a proposal's dry-run impact.
func writeProposalImpact(b *strings.Builder, im *wsfleetv1.PolicyImpact) {
	if im == nil {
		b.WriteString("\nimpact: none computed (no telemetry)\n")
		return
	}
	fmt.Fprintf(b, "\nimpact on traffic %s .. %s (%d nodes reporting):\n", formatTime(im.GetWindowStart()), formatTime(im.GetWindowEnd()), im.GetNodesReporting())
	for _, o := range im.GetNewlyRejected() {
		fmt.Fprintf(b, "  newly rejected: %s: %d handshakes\n", originName(o.GetOrigin()), o.GetHandshakes())
	}
	for _, o := range im.GetNewlyAdmitted() {
		fmt.Fprintf(b, "  newly admitted: %s: %d handshakes\n", originName(o.GetOrigin()), o.GetHandshakes())
	}
	if n := im.GetUnattributedAccepted(); n > 0 {
		fmt.Fprintf(b, "  accepted handshakes without a counted origin: %d (their fate is unknown)\n", n)
	}
	for _, l := range im.GetLimits() {
		if l.GetExceeded() {
			fmt.Fprintf(b, "  %s: %d, below the recent peak %d (node %s)\n", l.GetField(), l.GetLimit(), l.GetPeak(), l.GetNodeId())
		}
	}
	for _, m := range im.GetMissingReplicas() {
		fmt.Fprintf(b, "  missing: %s\n", m)
	}
}

func originName(o string) string {
	if o == "" {
		return "(no Origin header)"
	}
	return o
}
