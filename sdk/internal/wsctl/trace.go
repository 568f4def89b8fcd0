package wsctl

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

const (
	defaultTraceSince = 24 * time.Hour
	// traceLimit bounds one trace's events; a trace id is one handshake,
	// or a few when a client retries with the same id.
	traceLimit = 1000
	// labelWidth aligns the fields of an event block.
	labelWidth = len("what to do:") + 2
)

func (a *app) traceCommand() *cobra.Command {
	var f eventFlags
	cmd := &cobra.Command{
		Use:   "trace TRACE_ID",
		Short: "Explain every event of one trace id, across nodes",
		Long: `Explain every event of one trace id, across nodes, oldest first: its
class with what the client saw, the typical cause and what to do, then the
connection's details. Failures a client reported (it reached no node, a
proxy answered, no 101 in time, a connection lost) read "client saw: ..."
with the client's time, URL and detail, in order with the node's events.

The trace id is what the node echoed to the client (X-Trace-ID), taken from
the request's X-Trace-ID header, trace_id query parameter or traceparent.
Exits 1 when the control plane holds no event of that trace.`,
		Example: `  wsctl trace abc
  wsctl trace 4bf92f3577b34da6a3ce929d0e0e4736 --since 72h -o yaml`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trace := strings.TrimSpace(args[0])
			if trace == "" {
				return usageErrorf("TRACE_ID must not be empty")
			}
			if err := checkSince(f.since); err != nil {
				return err
			}
			// Every event of the trace, normal closes included: they
			// complete the story.
			f.trace, f.all = trace, true
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
			resp, err := fc.QueryEvents(ctx, &wsfleetv1.QueryEventsRequest{Filter: filter, Limit: traceLimit})
			if err != nil {
				return err
			}
			a.noteMissing(resp.GetMissingReplicas())
			if len(resp.GetEvents()) == 0 {
				return &noTraceError{trace: trace, since: f.since, truncated: resp.GetTruncated(), partial: len(resp.GetMissingReplicas()) > 0}
			}
			return a.emit(resp, func(w io.Writer) error { return a.writeTrace(w, trace, resp) })
		},
	}
	f.addSince(cmd, defaultTraceSince)
	return cmd
}

// writeTrace prints a summary line, then one block per event, oldest first
// by when it happened: a client report at the client's time (it reaches a
// node only once the client is back), every other event at the node's. So
// the client's view and the node's side read as one story.
func (a *app) writeTrace(w io.Writer, trace string, resp *wsfleetv1.QueryEventsResponse) error {
	events := slices.Clone(resp.GetEvents())
	slices.Reverse(events)
	slices.SortStableFunc(events, func(x, y *wsfleetv1.ErrorEvent) int {
		return happened(x).AsTime().Compare(happened(y).AsTime())
	})
	nodes := map[string]bool{}
	for _, ev := range events {
		nodes[ev.GetNodeId()] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s: %d %s on %d %s\n", trace,
		len(events), plural(len(events), "event", "events"), len(nodes), plural(len(nodes), "node", "nodes"))
	for _, ev := range events {
		b.WriteString("\n")
		writeEventBlock(&b, ev)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(events) >= traceLimit {
		fmt.Fprintf(a.stderr, "note: showing the newest %d events of this trace\n", len(events))
	}
	return nil
}

// happened is when an event's failure happened: the client's time for a
// client report that carries one, the node's time otherwise.
func happened(ev *wsfleetv1.ErrorEvent) *timestamppb.Timestamp {
	if ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT && ev.GetClientTime() != nil {
		return ev.GetClientTime()
	}
	return ev.GetTime()
}

// writeEventBlock explains one event: the class as the error table has it,
// then what this event carried. Connection figures are left out of a
// rejected handshake, which never had a connection.
func writeEventBlock(b *strings.Builder, ev *wsfleetv1.ErrorEvent) {
	info := errclass.Lookup(ev.GetClass())
	kind := ev.GetKind()
	if kind == wsfleetv1.EventKind_EVENT_KIND_UNSPECIFIED {
		kind = info.Kind
	}
	if kind == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT {
		writeClientReportBlock(b, ev, info)
		return
	}
	what := "connection closed"
	if kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
		what = "handshake rejected"
	}
	fmt.Fprintf(b, "%s  %s (%s)\n", eventTime(ev.GetTime()), info.Name, what)
	field := func(label, value string) {
		fmt.Fprintf(b, "  %-*s%s\n", labelWidth, label+":", value)
	}
	field("signal", info.Signal)
	field("cause", info.Cause)
	field("what to do", info.Action)
	field("status", wireStatus(ev))
	if r := ev.GetRepeat(); r > 1 {
		// The node folded repeated rejections of one origin and client
		// network into this event; its trace id is the first folded one's.
		field("repeated", fmt.Sprintf("%d rejections like this one from %s to %s", r, eventTime(ev.GetFirstTime()), eventTime(ev.GetTime())))
	}
	field("node", dash(ev.GetNodeId()))
	field("pool", dash(ev.GetPool()))
	if ev.GetPolicyRevision() != 0 {
		field("policy", fmt.Sprintf("revision %d", ev.GetPolicyRevision()))
	}
	origin := oneLine(ev.GetOrigin())
	if origin == "" {
		origin = "(no Origin header)"
	}
	field("origin", origin)
	field("remote", dash(ev.GetRemoteAddr()))
	field("user agent", dash(ev.GetUserAgent()))
	if kind != wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
		field("connection", dash(ev.GetConnId()))
		field("duration", eventDuration(ev))
		field("messages", fmt.Sprintf("%d in, %d out", ev.GetMessagesIn(), ev.GetMessagesOut()))
		field("bytes", fmt.Sprintf("%d in, %d out", ev.GetBytesIn(), ev.GetBytesOut()))
	}
	field("error", dash(ev.GetError()))
}

// eventDuration is the connection's lifetime at millisecond precision,
// with the handshake time when the node recorded it.
func eventDuration(ev *wsfleetv1.ErrorEvent) string {
	if ev.GetDuration() == nil {
		return "-"
	}
	s := ev.GetDuration().AsDuration().Round(time.Millisecond).String()
	if ev.GetOpenTime() != nil {
		s += " (opened " + eventTime(ev.GetOpenTime()) + ")"
	}
	return s
}

// writeClientReportBlock explains a failure the client reported: what the
// client saw, when by its clock, where it tried to go and the detail it
// could see, then the class's cause and remedy, then which node took the
// report and when.
func writeClientReportBlock(b *strings.Builder, ev *wsfleetv1.ErrorEvent, info errclass.Info) {
	fmt.Fprintf(b, "%s  client saw: %s at %s url=%s detail=%s\n", eventTime(happened(ev)), info.Name,
		eventTime(ev.GetClientTime()), dash(oneLine(ev.GetClientUrl())), dash(oneLine(ev.GetClientDetail())))
	field := func(label, value string) {
		fmt.Fprintf(b, "  %-*s%s\n", labelWidth, label+":", value)
	}
	field("signal", info.Signal)
	field("cause", info.Cause)
	field("what to do", info.Action)
	field("reported", fmt.Sprintf("%s to %s (pool %s)", eventTime(ev.GetTime()), dash(ev.GetNodeId()), dash(ev.GetPool())))
	origin := oneLine(ev.GetOrigin())
	if origin == "" {
		origin = "(no Origin header)"
	}
	field("origin", origin)
	field("remote", dash(ev.GetRemoteAddr()))
	field("user agent", dash(ev.GetUserAgent()))
}
