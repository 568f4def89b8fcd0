package telemetry_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// benchEvent is a typical closed-connection event, built once: the
// benchmarks measure the reporter, not event construction.
func benchEvent() *wsfleetv1.ErrorEvent {
	now := time.Now()
	return &wsfleetv1.ErrorEvent{
		Kind:           wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED,
		Class:          wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
		CloseCode:      1006,
		TraceId:        "4bf92f3577b34da6a3ce929d0e0e4736",
		ConnId:         "c-000123",
		NodeId:         "node-1",
		Pool:           "edge",
		Origin:         "https://app.example.com",
		RemoteAddr:     "203.0.113.7:51234",
		UserAgent:      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		OpenTime:       timestamppb.New(now.Add(-time.Minute)),
		Time:           timestamppb.New(now),
		Duration:       durationpb.New(time.Minute),
		MessagesIn:     42,
		MessagesOut:    17,
		BytesIn:        4096,
		BytesOut:       2048,
		Error:          "read tcp: i/o timeout",
		PolicyRevision: 7,
	}
}

// benchReporter returns a default-config Reporter. streaming runs it
// against a fake control plane that acknowledges everything, as on a
// healthy node; the process-wide allocation count then includes that
// in-process server decoding the batches (Record itself allocates nothing).
// Without streaming, nothing drains the buffer: after the first 10,000
// events every Record drops the oldest, the longest path through Record,
// and the figures are the reporter's alone.
func benchReporter(b *testing.B, streaming bool) *telemetry.Reporter {
	_, conn := startFake(b)
	r, err := telemetry.New(telemetry.Config{Conn: conn, NodeID: "node-1", Pool: "edge", Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	if !streaming {
		return r
	}
	run(b, r)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Record(benchEvent())
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return r
}

var benchModes = []struct {
	name      string
	streaming bool
}{
	{"buffer_only", false},
	{"streaming", true},
}

// report adds the share of events dropped: Record outrunning the stream
// shows as drops, never as a slower Record.
func report(b *testing.B, r *telemetry.Reporter) {
	b.StopTimer()
	s := r.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(max(s.Recorded, 1)), "dropped/op")
}

// BenchmarkRecord is the cost of recording one event on the node.
func BenchmarkRecord(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			r := benchReporter(b, m.streaming)
			ev := benchEvent()
			for range 10_000 { // fill the buffer: steady state, no ring growth
				r.Record(ev)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r.Record(ev)
			}
			report(b, r)
		})
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			r := benchReporter(b, m.streaming)
			for range 10_000 {
				r.Record(benchEvent())
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ev := benchEvent()
				for pb.Next() {
					r.Record(ev)
				}
			})
			report(b, r)
		})
	}
}
