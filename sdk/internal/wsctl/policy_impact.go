package wsctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// appliedWithImpact writes an ApplyPolicy answer: the outcome, then, for a
// dry run that carries one, its impact on the last hour of traffic.
func appliedWithImpact(resp *wsfleetv1.ApplyPolicyResponse, pool string, dryRun bool) func(io.Writer) error {
	return func(w io.Writer) error {
		if err := appliedOutcome(resp, pool, dryRun).write(w); err != nil {
			return err
		}
		if imp := resp.GetImpact(); imp != nil {
			return writeImpact(w, imp)
		}
		return nil
	}
}

// dryRunWindow is how far back a dry run looks (the control plane's
// controlplane/impact.Window): a window that covers less was cut short by
// what the control plane holds.
const dryRunWindow = time.Hour

// originLabel shows the empty origin (no Origin header) readably.
func originLabel(o string) string {
	if o == "" {
		return "(no Origin header)"
	}
	return o
}

// writeImpact prints a PolicyImpact: limits the recent peaks would exceed
// first, then the origins newly rejected and admitted, then the limits
// that hold, and what the figures miss.
func writeImpact(w io.Writer, imp *wsfleetv1.PolicyImpact) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nimpact on the traffic of %s .. %s (%d nodes reporting):\n",
		formatTime(imp.GetWindowStart()), formatTime(imp.GetWindowEnd()), imp.GetNodesReporting())
	tw := newTable(&b)
	shown := false
	for _, l := range imp.GetLimits() {
		if l.GetExceeded() {
			fmt.Fprintf(tw, "  would exceed:\t%s %d\tpeak %d on node %s at %s (now %d)\n",
				l.GetField(), l.GetLimit(), l.GetPeak(), l.GetNodeId(), formatTime(l.GetPeakMinute()), l.GetOldLimit())
			shown = true
		}
	}
	for _, o := range imp.GetNewlyRejected() {
		fmt.Fprintf(tw, "  would newly reject:\t%s\t%d handshakes in the last hour\n", originLabel(o.GetOrigin()), o.GetHandshakes())
		shown = true
	}
	for _, o := range imp.GetNewlyAdmitted() {
		fmt.Fprintf(tw, "  would newly admit:\t%s\t%d handshakes rejected in the last hour\n", originLabel(o.GetOrigin()), o.GetHandshakes())
		shown = true
	}
	for _, l := range imp.GetLimits() {
		if !l.GetExceeded() {
			peak := "no traffic seen"
			if l.GetPeak() > 0 {
				peak = "peak " + strconv.FormatInt(l.GetPeak(), 10) + " on node " + l.GetNodeId()
			}
			fmt.Fprintf(tw, "  within:\t%s %d\t%s\n", l.GetField(), l.GetLimit(), peak)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Without a sample the figures above are empty for want of data, not
	// because nothing would change: say so rather than reassure.
	noTraffic := imp.GetNodesReporting() == 0
	if noTraffic {
		b.WriteString("  no traffic seen: no node reported a traffic sample in this window, so the dry run cannot tell\n" +
			"  which accepted origins would be rejected or which limits recent peaks would exceed\n")
	} else if !shown {
		b.WriteString("  no origin newly rejected or admitted, no limit exceeded\n")
	}
	if start, end := imp.GetWindowStart(), imp.GetWindowEnd(); start != nil && end != nil {
		if covered := end.AsTime().Sub(start.AsTime()); covered < dryRunWindow-time.Minute {
			fmt.Fprintf(&b, "  the window is short: %v of the last %v; the control plane keeps traffic in memory and has none from before %s (restarted?)\n",
				covered.Round(time.Second), dryRunWindow, formatTime(start))
		}
	}
	if n := imp.GetUnattributedAccepted(); n > 0 {
		fmt.Fprintf(&b, "  %d accepted handshakes were not attributed to an origin (node or control-plane origin caps): their fate is unknown\n", n)
	}
	for _, m := range imp.GetMissingReplicas() {
		fmt.Fprintf(&b, "  missing: replica %s\n", m)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
