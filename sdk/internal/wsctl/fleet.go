package wsctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/errclass"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Shared by the fleet commands (nodes.go, errors_cmd.go, trace.go): the
// FleetService client, the event filter flags and how one event reads.

// maxEventLimit is the most events QueryEvents returns; the control plane
// caps larger limits silently, so wsctl refuses them up front.
const maxEventLimit = 10000

// eventTimeLayout is RFC 3339 at millisecond precision: events of one
// handshake are milliseconds apart, and a fixed width keeps lines aligned.
const eventTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// classWidth pads class names so the columns after them line up. It fits
// the classes nodes decide; the longer client_* names of client reports,
// rarer and without a status, push their own line's columns instead of
// widening every line.
var classWidth = func() int {
	n := 0
	for _, info := range errclass.All() {
		if info.Kind != wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT {
			n = max(n, len(info.Name))
		}
	}
	return n
}()

// statusWidth fits "HTTP 403" and "close 1006".
const statusWidth = len("close 1006")

func (a *app) fleet() (wsfleetv1.FleetServiceClient, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	return c.Fleet(), nil
}

// eventFlags are the filter flags the event commands share; each command
// registers the ones it takes.
type eventFlags struct {
	since   time.Duration
	classes []string
	node    string
	pool    string
	origin  string
	trace   string
	all     bool
}

func (f *eventFlags) addSince(cmd *cobra.Command, def time.Duration) {
	cmd.Flags().DurationVar(&f.since, "since", def, "look back this far, e.g. 30s, 15m, 2h")
}

func (f *eventFlags) addClasses(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.classes, "class", nil,
		"only this error class, e.g. origin_rejected; repeat or separate with commas")
}

func (f *eventFlags) addScope(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.node, "node", "", "only this node id")
	cmd.Flags().StringVar(&f.pool, "pool", "", "only this pool")
	cmd.Flags().StringVar(&f.origin, "origin", "", "only this origin, exactly as the browser sent it")
}

func (f *eventFlags) addAll(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.all, "all", false, "include normal closes (normal, client_going_away)")
}

// filter checks the flags and builds the request filter; start is the
// beginning of the time range, zero for none.
func (f *eventFlags) filter(start time.Time) (*wsfleetv1.EventFilter, error) {
	classes, err := parseClasses(f.classes)
	if err != nil {
		return nil, err
	}
	ef := &wsfleetv1.EventFilter{
		Classes:    classes,
		NodeId:     f.node,
		Pool:       f.pool,
		Origin:     f.origin,
		TraceId:    f.trace,
		ErrorsOnly: !f.all,
	}
	if !start.IsZero() {
		ef.StartTime = timestamppb.New(start)
	}
	return ef, nil
}

// narrowed tells whether anything but time restricts the events, so that
// "nothing found" can say it was looking at a subset.
func (f *eventFlags) narrowed() bool {
	return len(f.classes) > 0 || f.node != "" || f.pool != "" || f.origin != "" || f.trace != ""
}

// noun names what the command counts, n of them: errors, or events with
// --all.
func (f *eventFlags) noun(n int64) string {
	if f.all {
		return plural(int(n), "event", "events")
	}
	return plural(int(n), "error", "errors")
}

// checkSince refuses a range that would select nothing.
func checkSince(d time.Duration) error {
	if d <= 0 {
		return usageErrorf("--since must be positive, got %s", d)
	}
	return nil
}

// parseClasses reads --class values as errclass.Parse does, dropping
// repeats. An unknown name is a usage error that lists the valid ones.
func parseClasses(names []string) ([]wsfleetv1.ErrorClass, error) {
	var out []wsfleetv1.ErrorClass
	seen := map[wsfleetv1.ErrorClass]bool{}
	for _, name := range names {
		c, err := errclass.Parse(name)
		if err != nil {
			return nil, usageErrorf("--class: %s", strings.TrimPrefix(err.Error(), "errclass: "))
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// eventTime shows an event's time in the local zone, like a log would.
func eventTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(eventTimeLayout)
}

// wireStatus is what the client saw: the HTTP status of a rejected
// handshake or the close code of a closed connection.
func wireStatus(ev *wsfleetv1.ErrorEvent) string {
	switch {
	case ev.GetHttpStatus() != 0:
		return fmt.Sprintf("HTTP %d", ev.GetHttpStatus())
	case ev.GetCloseCode() != 0:
		return fmt.Sprintf("close %d", ev.GetCloseCode())
	default:
		return "-"
	}
}

// eventLine is one event as a log line: time, class, status, then
// key=value fields (empty ones as "-", so every line has every key) and the
// error text last because it is free-form.
func eventLine(ev *wsfleetv1.ErrorEvent) string {
	line := fmt.Sprintf("%s  %-*s  %-*s  node=%s origin=%s remote=%s trace=%s",
		eventTime(ev.GetTime()),
		classWidth, errclass.Name(ev.GetClass()),
		statusWidth, wireStatus(ev),
		dash(ev.GetNodeId()), dash(ev.GetOrigin()), dash(ev.GetRemoteAddr()), dash(ev.GetTraceId()))
	if r := ev.GetRepeat(); r > 1 {
		line += fmt.Sprintf(" repeat=%d", r)
	}
	if msg := oneLine(ev.GetError()); msg != "" {
		line += "  " + msg
	}
	return line
}

// dash stands in for an empty field so columns and key=value pairs keep
// their shape. Free text is flattened to one line first.
func dash(s string) string {
	s = oneLine(s)
	if s == "" {
		return "-"
	}
	return s
}

// sinceText reads "the last 15m".
func sinceText(d time.Duration) string {
	return "the last " + policy.FormatDuration(d)
}

// ago renders how long ago something happened, coarsely: an operator reads
// "5m ago", not "5m12.345s ago".
func ago(d time.Duration) string {
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

// truncate keeps s within n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
