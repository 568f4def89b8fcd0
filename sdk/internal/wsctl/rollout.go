package wsctl

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// canaryOptions are policy apply's canary flags.
type canaryOptions struct {
	selector   string
	bake       time.Duration
	minSamples int32
	maxRatio   float64
}

func canaryFlags(cmd *cobra.Command, c *canaryOptions) {
	cmd.Flags().StringVar(&c.selector, "canary", "", "apply as a canary: push only to the nodes whose labels match this selector (zone=a,tier!=edge), bake, then promote or roll back automatically")
	cmd.Flags().DurationVar(&c.bake, "bake", 0, "with --canary: how long to bake before promoting (0: 5m; 10s..24h)")
	cmd.Flags().Int32Var(&c.minSamples, "canary-min-samples", 0, "with --canary: events of a class on canary nodes before it can count against the canary (0: 10)")
	cmd.Flags().Float64Var(&c.maxRatio, "canary-max-ratio", 0, "with --canary: a class is worse when its rate per canary node exceeds this times the rate elsewhere (0: 2)")
}

// set copies the flags into an apply request.
func (c canaryOptions) set(req *wsfleetv1.ApplyPolicyRequest) {
	req.Canary, req.CanaryMinSamples, req.CanaryMaxRatio = c.selector, c.minSamples, c.maxRatio
	if c.bake != 0 {
		req.Bake = durationpb.New(c.bake)
	}
}

// canaryNote is what policy apply --canary prints after the outcome: the
// canary revision, the nodes it went to and when the bake ends.
func canaryNote(w io.Writer, resp *wsfleetv1.ApplyPolicyResponse, st *wsfleetv1.RolloutStatus) error {
	spec := resp.GetRevision().GetRollout()
	if spec == nil {
		return nil
	}
	var canary, rest []string
	for _, n := range st.GetNodes() {
		if n.GetCanary() {
			canary = append(canary, n.GetNodeId())
		} else {
			rest = append(rest, n.GetNodeId())
		}
	}
	end := "in " + spec.GetBake().AsDuration().String()
	if st.GetBakeEndTime() != nil {
		end = formatTime(st.GetBakeEndTime())
	}
	_, err := fmt.Fprintf(w, "canary revision %d (selector %s) on %d node(s): %s\nthe other %d node(s) keep revision %d; the bake ends %s\nfollow it with: wsctl rollout status --pool %s --watch\n",
		resp.GetRevision().GetRevision(), spec.GetSelector(), len(canary), strings.Join(canary, ", "),
		len(rest), spec.GetBaseRevision(), end, resp.GetRevision().GetPool())
	return err
}

func (a *app) rolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, promote or abort a pool's canary rollout (policy apply --canary)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.rolloutStatusCommand(), a.rolloutEndCommand(true), a.rolloutEndCommand(false))
	return cmd
}

func (a *app) getRollout(cmd *cobra.Command, pool string) (*wsfleetv1.RolloutStatus, error) {
	pc, err := a.policy()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.callContext(cmd)
	defer cancel()
	resp, err := pc.GetRollout(ctx, &wsfleetv1.GetRolloutRequest{Pool: pool})
	if err != nil {
		return nil, err
	}
	return resp.GetRollout(), nil
}

// maxWatch bounds rollout status --watch: a bake is at most 24h.
const maxWatch = 25 * time.Hour

func (a *app) rolloutStatusCommand() *cobra.Command {
	var (
		pool     string
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a pool's latest rollout: state, time left, error classes on canary nodes against the rest, nodes",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			deadline := time.Now().Add(maxWatch)
			for {
				st, err := a.getRollout(cmd, pool)
				if err != nil {
					return err
				}
				if err := a.emit(st, func(w io.Writer) error { return writeRollout(w, st, time.Now()) }); err != nil {
					return err
				}
				if !watch || st.GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING || time.Now().After(deadline) {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(interval):
				}
				if _, err := io.WriteString(a.stdout, "\n"); err != nil {
					return err
				}
			}
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().BoolVar(&watch, "watch", false, "print the status again every --interval until the rollout ends")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "with --watch: time between two prints")
	return cmd
}

func writeRollout(w io.Writer, st *wsfleetv1.RolloutStatus, now time.Time) error {
	spec := st.GetSpec()
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s: canary revision %d (selector %s, base revision %d)\n", st.GetPool(), st.GetCanaryRevision(), spec.GetSelector(), spec.GetBaseRevision())
	switch st.GetState() {
	case wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING:
		left := st.GetBakeEndTime().AsTime().Sub(now).Round(time.Second)
		if left < 0 {
			left = 0
		}
		fmt.Fprintf(&b, "state: baking, %s left of %s (ends %s); min %d events, max ratio %g\n",
			left, spec.GetBake().AsDuration(), formatTime(st.GetBakeEndTime()), spec.GetMinSamples(), spec.GetMaxRatio())
	default:
		how := "by an admin"
		if st.GetOutcome().GetAutomatic() {
			how = "automatically"
		}
		state := "promoted"
		if st.GetState() == wsfleetv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK {
			state = "rolled back"
		}
		fmt.Fprintf(&b, "state: %s %s at revision %d: %s\n", state, how, st.GetEndingRevision(), oneLine(st.GetOutcome().GetReason()))
	}
	if d := st.GetDegraded(); d != "" {
		fmt.Fprintf(&b, "degraded: %s\n", oneLine(d))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(st.GetClasses()) > 0 {
		tw := newTable(w)
		fmt.Fprintln(tw, "CLASS\tCANARY\tCANARY/NODE/MIN\tREST\tREST/NODE/MIN\tWORSE")
		for _, c := range st.GetClasses() {
			worse := ""
			if c.GetWorse() {
				worse = "yes"
			}
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%d\t%.2f\t%s\n", errclass.Name(c.GetClass()), c.GetCanaryEvents(), c.GetCanaryRate(), c.GetRestEvents(), c.GetRestRate(), worse)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.GetNodes()) > 0 {
		tw := newTable(w)
		fmt.Fprintln(tw, "NODE\tPART\tREVISION\tCONNECTED\tNACK")
		for _, n := range st.GetNodes() {
			part := "rest"
			if n.GetCanary() {
				part = "canary"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\n", n.GetNodeId(), part, n.GetAppliedRevision(), n.GetConnected(), oneLine(n.GetNackError()))
		}
		return tw.Flush()
	}
	return nil
}

// rolloutEndCommand is rollout promote (promote true) or rollout abort.
func (a *app) rolloutEndCommand(promote bool) *cobra.Command {
	var (
		pool    string
		message string
	)
	use, short := "abort", "Roll the baking canary back now: every node gets the base revision's content"
	if promote {
		use, short = "promote", "Promote the baking canary now: every node gets its content"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.getRollout(cmd, pool)
			if err != nil {
				return err
			}
			if st.GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING {
				return fmt.Errorf("pool %s has no baking rollout: its latest, canary revision %d, has ended (revision %d)", pool, st.GetCanaryRevision(), st.GetEndingRevision())
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			var rev *wsfleetv1.PolicyRevision
			if promote {
				resp, err := pc.PromoteRollout(ctx, &wsfleetv1.PromoteRolloutRequest{Pool: pool, CanaryRevision: st.GetCanaryRevision(), Message: message})
				if err != nil {
					return err
				}
				rev = resp.GetRevision()
			} else {
				resp, err := pc.AbortRollout(ctx, &wsfleetv1.AbortRolloutRequest{Pool: pool, CanaryRevision: st.GetCanaryRevision(), Message: message})
				if err != nil {
					return err
				}
				rev = resp.GetRevision()
			}
			return a.emit(rev, func(w io.Writer) error {
				what := "promoted to every node"
				if !promote {
					what = fmt.Sprintf("rolled back to the content of revision %d", st.GetSpec().GetBaseRevision())
				}
				_, err := fmt.Fprintf(w, "pool %s: canary revision %d %s at revision %d\n", poolOf(rev, pool), st.GetCanaryRevision(), what, rev.GetRevision())
				return err
			})
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why; kept with the new revision")
	return cmd
}

// emitCanary prints a canary apply's outcome followed by where the canary
// went (from GetRollout); -o json|yaml print the response alone.
func (a *app) emitCanary(cmd *cobra.Command, resp *wsfleetv1.ApplyPolicyResponse, outcome func(io.Writer) error) error {
	if a.output != formatTable {
		return a.emit(resp, outcome)
	}
	if err := outcome(a.stdout); err != nil {
		return err
	}
	st, err := a.getRollout(cmd, poolOf(resp.GetRevision(), ""))
	if err != nil {
		// The canary is stored; only the note is missing.
		st = nil
		fmt.Fprintf(a.stderr, "wsctl: the canary is stored, but its status could not be read: %v\n", err)
	}
	return canaryNote(a.stdout, resp, st)
}

// rolloutNote marks a revision of the history as a canary or the end of
// one.
func rolloutNote(r *wsfleetv1.PolicyRevision) string {
	if spec := r.GetRollout(); spec != nil {
		return fmt.Sprintf("[canary %s, bake %s, base %d]", spec.GetSelector(), spec.GetBake().AsDuration(), spec.GetBaseRevision())
	}
	o := r.GetRolloutOutcome()
	if o == nil {
		return ""
	}
	what := "promoted"
	if o.GetResult() == wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK {
		what = "rolled back"
	}
	how := ""
	if o.GetAutomatic() {
		how = " automatically"
	}
	return fmt.Sprintf("[canary %d %s%s]", o.GetCanaryRevision(), what, how)
}
