package dataplane

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// record explains one event three ways: a metric, a log line and the sink.
func (n *Node) record(ev *wsfleetv1.ErrorEvent) {
	info := errclass.Lookup(ev.GetClass())
	if ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
		n.metrics.handshakes.WithLabelValues(info.Name).Inc()
	} else {
		n.metrics.closes.WithLabelValues(info.Name).Inc()
	}
	n.logEvent(ev, info)
	if n.cfg.Sink != nil {
		n.cfg.Sink.Record(ev)
	}
}

func (n *Node) logEvent(ev *wsfleetv1.ErrorEvent, info errclass.Info) {
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
	if ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
		fields["http_status"] = ev.GetHttpStatus()
	} else {
		msg = "connection closed"
		fields["conn_id"] = ev.GetConnId()
		fields["close_code"] = ev.GetCloseCode()
		fields["duration_ms"] = ev.GetDuration().AsDuration().Milliseconds()
		fields["messages_in"] = ev.GetMessagesIn()
		fields["messages_out"] = ev.GetMessagesOut()
		fields["bytes_in"] = ev.GetBytesIn()
		fields["bytes_out"] = ev.GetBytesOut()
	}
	entry := n.log.WithFields(fields)
	if info.Error {
		entry.Warn(msg)
	} else {
		entry.Info(msg)
	}
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
