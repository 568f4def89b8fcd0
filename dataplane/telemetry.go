package dataplane

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// EventSink receives one event per rejected handshake and per closed
// connection. Record is called on the data path and must not block: a sink
// that ships events elsewhere buffers them (bounded, dropping oldest).
// The event is the sink's to keep; the node does not touch it afterwards.
type EventSink interface {
	Record(ev *wsfleetv1.ErrorEvent)
}

// Flusher is implemented by sinks that buffer events for delivery
// elsewhere (sdk/telemetry's Reporter). Shutdown calls FinalFlush once,
// after the last event, bounded by Config.FlushTimeout. It must not wait
// for a destination it is not connected to, and returns how many events it
// could not deliver; Shutdown logs that count in its last line.
type Flusher interface {
	FinalFlush(ctx context.Context) (undelivered int, err error)
}

// EventSinkFunc adapts a function to EventSink.
type EventSinkFunc func(*wsfleetv1.ErrorEvent)

// Record calls f.
func (f EventSinkFunc) Record(ev *wsfleetv1.ErrorEvent) { f(ev) }

// record explains a closed connection three ways: a metric, a log line and
// the sink. Rejected handshakes go through recordRejection, which counts
// every one but may fold them into fewer events.
func (n *Node) record(ev *wsfleetv1.ErrorEvent) {
	n.metrics.closed(ev.GetClass())
	// Explain answers failures: the expected closes (normal,
	// client_going_away, server_shutdown: the client asked for them or got
	// the node's close frame saying so) are not kept, so a node serving
	// short, healthy connections does not fill the store with them.
	if errclass.Lookup(ev.GetClass()).Error {
		n.noteExplain(ev.GetTraceId(), ev.GetRemoteAddr(), ev.GetClass(), 0, int(ev.GetCloseCode()), 0)
	}
	n.emit(ev)
}

// emit logs an event and hands it to the sink.
func (n *Node) emit(ev *wsfleetv1.ErrorEvent) {
	n.logEvent(ev, errclass.Lookup(ev.GetClass()))
	if n.cfg.Sink != nil {
		n.cfg.Sink.Record(ev)
	}
}

// field names a client-supplied string the node caps.
type field uint8

const (
	fieldOrigin field = iota
	fieldUserAgent
	fieldError
	fieldRemote
	numFields
)

func (f field) String() string {
	return [numFields]string{"origin", "user_agent", "error", "remote"}[f]
}

// capField returns s as the node may keep it: valid UTF-8 (invalid bytes
// replaced with U+FFFD) of at most the field's cap, cut on a rune boundary
// and marked (clip.ValidString). It counts what it changed. A value that
// fits is returned as it is, without allocating.
func (n *Node) capField(f field, s string) string {
	limit := [numFields]int{n.cfg.MaxOriginBytes, n.cfg.MaxUserAgentBytes, n.cfg.MaxErrorBytes, n.cfg.MaxRemoteBytes}[f]
	valid := utf8.ValidString(s)
	if valid && len(s) <= limit {
		return s
	}
	size := len(s)
	if !valid {
		n.metrics.invalidUTF8[f].Inc()
		// The repaired length, as clip.ValidString repairs: each invalid
		// byte becomes a 3-byte U+FFFD. Only whether it exceeds limit
		// matters, so stop there.
		size = 0
		for _, r := range s {
			if size += utf8.RuneLen(r); size > limit {
				break
			}
		}
	}
	if size > limit {
		n.metrics.truncated[f].Inc()
	}
	return clip.ValidString(s, limit)
}

// logLevel is the level of an event's log line: debug for a client report;
// warn for an error class;
// debug for a connection the client ended the ordinary way (normal,
// client_going_away) — most closes, at a rate set by clients, and nothing
// an operator acts on: wsfleet_node_closes_total counts them and the sink
// still gets every event; info for the rest (a close at the node's own
// drain, a rejection by a draining node).
func logLevel(ev *wsfleetv1.ErrorEvent, info errclass.Info) logrus.Level {
	switch {
	case ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT:
		// Clients send these at a rate they choose, about failures the
		// node had no part in: the metric and the sink carry them.
		return logrus.DebugLevel
	case info.Error:
		return logrus.WarnLevel
	case ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED &&
		(info.Class == wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL || info.Class == wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY):
		return logrus.DebugLevel
	}
	return logrus.InfoLevel
}

// logEvent writes the event's log line. A line the logger's level drops
// costs nothing: the fields are built only for a line that is written.
func (n *Node) logEvent(ev *wsfleetv1.ErrorEvent, info errclass.Info) {
	level := logLevel(ev, info)
	if !n.log.IsLevelEnabled(level) {
		return
	}
	fields := logrus.Fields{
		"class":      info.Name,
		"trace_id":   ev.GetTraceId(),
		"node_id":    ev.GetNodeId(),
		"pool":       ev.GetPool(),
		"origin":     ev.GetOrigin(),
		"remote":     ev.GetRemoteAddr(),
		"user_agent": ev.GetUserAgent(),
		"revision":   ev.GetPolicyRevision(),
	}
	if ev.GetError() != "" {
		fields["error"] = ev.GetError()
	}
	msg := "handshake rejected"
	switch ev.GetKind() {
	case wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED:
		if c := ev.GetCloseCode(); c != 0 {
			// handshake.reject_with: close — a 101 and this close frame.
			fields["close_code"] = c
		} else {
			fields["http_status"] = ev.GetHttpStatus()
		}
		if r := ev.GetRepeat(); r > 1 {
			// One line for a fold: how many rejections it stands for and
			// since when (the trace id and the rest are the first counted
			// one's; its time is the last one's).
			msg = "handshake rejections folded"
			fields["repeat"] = r
			fields["first_time"] = ev.GetFirstTime().AsTime().Format(time.RFC3339Nano)
			fields["last_time"] = ev.GetTime().AsTime().Format(time.RFC3339Nano)
		}
	case wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT:
		msg = "client report"
		fields["client_url"] = ev.GetClientUrl()
		fields["client_time"] = ev.GetClientTime().AsTime().Format(time.RFC3339Nano)
		fields["client_detail"] = ev.GetClientDetail()
	default:
		msg = "connection closed"
		fields["conn_id"] = ev.GetConnId()
		fields["close_code"] = ev.GetCloseCode()
		fields["duration_ms"] = ev.GetDuration().AsDuration().Milliseconds()
		fields["messages_in"] = ev.GetMessagesIn()
		fields["messages_out"] = ev.GetMessagesOut()
		fields["bytes_in"] = ev.GetBytesIn()
		fields["bytes_out"] = ev.GetBytesOut()
	}
	n.log.WithFields(fields).Log(level, msg)
}

func newEvent(kind wsfleetv1.EventKind, class wsfleetv1.ErrorClass, open, now time.Time) *wsfleetv1.ErrorEvent {
	ev := &wsfleetv1.ErrorEvent{
		Kind:     kind,
		Class:    class,
		OpenTime: timestamppb.New(open),
		Time:     timestamppb.New(now),
	}
	if kind == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED {
		ev.Duration = durationpb.New(now.Sub(open))
	}
	return ev
}
