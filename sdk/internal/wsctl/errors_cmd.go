package wsctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Defaults of the errors commands.
const (
	defaultErrorsSince = 15 * time.Minute
	defaultTopLimit    = 20
	defaultTailLimit   = 50
)

// groupBys maps --by to the request's dimension, with the column header the
// table gives the key.
var groupBys = map[string]struct {
	by     wsfleetv1.TopErrorsRequest_GroupBy
	header string
}{
	"class":  {wsfleetv1.TopErrorsRequest_GROUP_BY_CLASS, "CLASS"},
	"origin": {wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN, "ORIGIN"},
	"node":   {wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, "NODE"},
	"pool":   {wsfleetv1.TopErrorsRequest_GROUP_BY_POOL, "POOL"},
}

// errorsCommand is the `wsctl errors` group.
func (a *app) errorsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "errors",
		Short: "See which errors the nodes report, and what to do about them",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.errorsTopCommand(), a.errorsTailCommand())
	return cmd
}

func (a *app) errorsTopCommand() *cobra.Command {
	var (
		f     eventFlags
		by    string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Count recent errors by class, origin, node or pool, with what to do",
		Long: `Count recent errors by class, origin, node or pool, largest first.

Each row names the error class (for --by class) or the group's most common
class, what the client saw (--by class) and what to do about it. Normal
closes (normal, client_going_away) are left out unless --all.`,
		Example: `  wsctl errors top
  wsctl errors top --since 1h --by origin
  wsctl errors top --by node --class heartbeat_timeout,conn_reset`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			group, ok := groupBys[by]
			if !ok {
				return usageErrorf("invalid --by %q (want class, origin, node or pool)", by)
			}
			if err := checkSince(f.since); err != nil {
				return err
			}
			if limit < 1 {
				return usageErrorf("--limit must be 1 or more, got %d", limit)
			}
			now := time.Now()
			start := now.Add(-f.since)
			filter, err := f.filter(start)
			if err != nil {
				return err
			}
			fc, err := a.fleet()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := fc.TopErrors(ctx, &wsfleetv1.TopErrorsRequest{
				Filter: filter, GroupBy: group.by, Limit: int32(limit),
			})
			if err != nil {
				return err
			}
			defer a.noteMissing(resp.GetMissingReplicas())
			return a.emit(resp, func(w io.Writer) error {
				return writeTop(w, resp, topView{header: group.header, byClass: by == "class", flags: &f, start: start, end: now})
			})
		},
	}
	f.addSince(cmd, defaultErrorsSince)
	cmd.Flags().StringVar(&by, "by", "class", "group by class, origin, node or pool")
	f.addScope(cmd)
	f.addClasses(cmd)
	cmd.Flags().IntVar(&limit, "limit", defaultTopLimit, "most groups to list")
	f.addAll(cmd)
	return cmd
}

// topView is what writeTop needs besides the response.
type topView struct {
	header     string
	byClass    bool
	flags      *eventFlags
	start, end time.Time
}

func writeTop(w io.Writer, resp *wsfleetv1.TopErrorsResponse, v topView) error {
	if len(resp.GetGroups()) == 0 {
		msg := fmt.Sprintf("no %s in %s", v.flags.noun(0), sinceText(v.flags.since))
		if v.flags.narrowed() {
			msg += " matching the filters"
		}
		_, err := io.WriteString(w, msg+"\n")
		return err
	}
	total := resp.GetTotal()
	tw := newTable(w)
	if v.byClass {
		fmt.Fprintf(tw, "%s\tCOUNT\tSHARE\tSIGNAL\tWHAT TO DO\n", v.header)
	} else {
		fmt.Fprintf(tw, "%s\tCOUNT\tSHARE\tTOP CLASS\tWHAT TO DO\n", v.header)
	}
	var shown int64
	for _, g := range resp.GetGroups() {
		shown += g.GetCount()
		info := errclass.Lookup(g.GetTopClass())
		key := g.GetKey()
		third := info.Name
		if v.byClass {
			// The class itself names the row; the key is the server's
			// spelling of the same thing.
			if g.GetTopClass() != wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED || key == "" {
				key = info.Name
			}
			third = info.Signal
		} else if key == "" {
			key = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", oneLine(key), g.GetCount(), share(g.GetCount(), total), third, info.Action)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	footer := fmt.Sprintf("\n%d %s in %s (%s to %s)", total, v.flags.noun(total), sinceText(v.flags.since),
		v.start.Local().Format(eventTimeLayout), v.end.Local().Format(eventTimeLayout))
	if rest := total - shown; rest > 0 {
		footer += fmt.Sprintf("; %d in groups not listed (raise --limit)", rest)
	}
	_, err := io.WriteString(w, footer+"\n")
	return err
}

// share is count as a percentage of total, "-" when there is no total to
// divide by.
func share(count, total int64) string {
	if total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", float64(count)*100/float64(total))
}

func (a *app) errorsTailCommand() *cobra.Command {
	var (
		f      eventFlags
		follow bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print recent error events, oldest first; --follow streams new ones",
		Long: `Print recent error events, oldest first, one per line: time, class, what
the client saw (HTTP status or close code), node, origin, remote address,
trace id and the error text.

Without --follow, the newest --limit events of the last --since are printed.
With --follow, the newest --limit events come first (within --since only if
--since is given), then every new event as the control plane ingests it,
until Ctrl-C. With -o json each event is one line (NDJSON); with -o yaml one
document.`,
		Example: `  wsctl errors tail --since 1h --class origin_rejected
  wsctl errors tail --follow --node node-1
  wsctl errors tail --follow -o json | jq .event.trace_id`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSince(f.since); err != nil {
				return err
			}
			switch {
			case limit < 0 || limit > maxEventLimit:
				return usageErrorf("--limit must be between 0 and %d, got %d", maxEventLimit, limit)
			case limit == 0 && !follow:
				return usageErrorf("--limit must be 1 or more without --follow, got 0")
			}
			if follow {
				// The stream has no time range; --since, when given,
				// trims the backlog here.
				var notBefore time.Time
				if cmd.Flags().Changed("since") {
					notBefore = time.Now().Add(-f.since)
				}
				filter, err := f.filter(time.Time{})
				if err != nil {
					return err
				}
				return a.followEvents(cmd.Context(), &wsfleetv1.TailEventsRequest{Filter: filter, Backlog: int32(limit)}, notBefore)
			}
			filter, err := f.filter(time.Now().Add(-f.since))
			if err != nil {
				return err
			}
			fc, err := a.fleet()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := fc.QueryEvents(ctx, &wsfleetv1.QueryEventsRequest{Filter: filter, Limit: int32(limit)})
			if err != nil {
				return err
			}
			defer a.noteMissing(resp.GetMissingReplicas())
			return a.emit(resp, func(w io.Writer) error { return a.writeTail(w, resp, &f, limit) })
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new events until Ctrl-C")
	f.addSince(cmd, defaultErrorsSince)
	f.addClasses(cmd)
	f.addScope(cmd)
	cmd.Flags().StringVar(&f.trace, "trace", "", "only this trace id")
	cmd.Flags().IntVar(&limit, "limit", defaultTailLimit, "most events to print (with --follow: before the live ones)")
	f.addAll(cmd)
	return cmd
}

// writeTail prints the events oldest first, like a log; notes about what
// is missing go to stderr so that stdout stays one event per line.
func (a *app) writeTail(w io.Writer, resp *wsfleetv1.QueryEventsResponse, f *eventFlags, limit int) error {
	events := resp.GetEvents()
	if len(events) == 0 {
		msg := fmt.Sprintf("no %s in %s", f.noun(0), sinceText(f.since))
		if f.narrowed() {
			msg += " matching the filters"
		}
		_, err := io.WriteString(w, msg+"\n")
		return err
	}
	for _, ev := range slices.Backward(events) {
		if _, err := io.WriteString(w, eventLine(ev)+"\n"); err != nil {
			return err
		}
	}
	if resp.GetTruncated() {
		fmt.Fprintf(a.stderr, "note: the control plane no longer holds every event of %s (it keeps a bounded number); older ones are gone\n", sinceText(f.since))
	} else if len(events) >= limit {
		fmt.Fprintf(a.stderr, "note: showing the newest %d; raise --limit for more\n", len(events))
	}
	return nil
}

// noteMissing says, on stderr, which control-plane replicas did not
// answer: their events are missing from what was printed.
func (a *app) noteMissing(missing []*wsfleetv1.ReplicaError) {
	for _, m := range missing {
		fmt.Fprintf(a.stderr, "note: control-plane replica %s did not answer (%s); the events it received are missing\n",
			oneLine(m.GetReplica()), oneLine(m.GetError()))
	}
}

// followEvents streams events until ctx ends, which is success: Ctrl-C is
// how a follow is meant to stop. The stream gets no --timeout.
func (a *app) followEvents(ctx context.Context, req *wsfleetv1.TailEventsRequest, notBefore time.Time) error {
	fc, err := a.fleet()
	if err != nil {
		return err
	}
	// Cancelling tears the stream down when we return early, e.g. on a
	// write error.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := fc.TailEvents(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, io.EOF):
				return errStreamEnded
			default:
				return err
			}
		}
		if lost := resp.GetReplicaLost(); lost != nil {
			a.noteMissing([]*wsfleetv1.ReplicaError{lost})
			continue
		}
		if back := resp.GetReplicaBack(); back != "" {
			fmt.Fprintf(a.stderr, "note: control-plane replica %s answers again; what it received meanwhile is missing\n", oneLine(back))
			continue
		}
		if !notBefore.IsZero() && resp.GetEvent().GetTime().AsTime().Before(notBefore) {
			continue
		}
		if err := a.writeStreamed(resp); err != nil {
			return err
		}
	}
}

// writeStreamed prints one streamed event: a log line, one compact JSON
// object per line, or one YAML document.
func (a *app) writeStreamed(resp *wsfleetv1.TailEventsResponse) error {
	var out []byte
	switch a.output {
	case formatJSON:
		b, err := compactJSON(resp)
		if err != nil {
			return err
		}
		out = b
	case formatYAML:
		b, err := output.YAML(resp)
		if err != nil {
			return err
		}
		out = append([]byte("---\n"), b...)
	default:
		out = []byte(eventLine(resp.GetEvent()) + "\n")
	}
	_, err := a.stdout.Write(out)
	return err
}

// compactJSON is the -o json form on one line, for NDJSON.
func compactJSON(m proto.Message) ([]byte, error) {
	b, err := output.JSON(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
