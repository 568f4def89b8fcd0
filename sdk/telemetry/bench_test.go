package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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

// benchReporter returns a default-config Reporter streaming to a fake
// control plane that acknowledges everything, as on a healthy node, with
// one event already delivered (the stream is up). The process-wide
// allocation count includes that in-process server decoding the batches.
func benchReporter(b *testing.B) *telemetry.Reporter {
	conn := startAcker(b)
	r, err := telemetry.New(telemetry.Config{Conn: conn, NodeID: "node-1", Pool: "edge", Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	run(b, r)
	deliverAll(b, r)
	return r
}

// acker is a control plane's telemetry endpoint that decodes each batch
// and acknowledges it, keeping nothing: unlike fakeNode, its memory does
// not grow with the events a benchmark sends.
type acker struct {
	wsfleetv1.UnimplementedNodeServiceServer
}

func (acker) ReportTelemetry(st wsfleetv1.NodeService_ReportTelemetryServer) error {
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&wsfleetv1.ReportTelemetryResponse{AckedSequence: req.GetSequence()}); err != nil {
			return err
		}
	}
}

// startAcker serves an acker on 127.0.0.1:0 and returns a client
// connection to it; both stop at the end of the benchmark.
func startAcker(b *testing.B) *grpc.ClientConn {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(srv, acker{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	return conn
}

// deliverAll waits until the control plane has acknowledged every event
// recorded so far.
func deliverAll(b *testing.B, r *telemetry.Reporter) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Record(benchEvent())
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// Pacing of the delivering benchmarks: events are recorded in chunks of
// recordChunk, and after each the recorder waits while more than
// maxBuffered are buffered, so the buffer (10,000 events by default) never
// fills and nothing is dropped: the stream sets the pace, as it does on a
// node whose control plane keeps up.
const (
	recordChunk = 250
	maxBuffered = 2_000
	paceTimeout = 30 * time.Second
)

// pace waits until the reporter buffers at most maxBuffered events.
func pace(b *testing.B, r *telemetry.Reporter) {
	deadline := time.Now().Add(paceTimeout)
	for r.Stats().Buffered > maxBuffered {
		if time.Now().After(deadline) {
			b.Fatalf("the stream did not drain the buffer in %s: %+v", paceTimeout, r.Stats())
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// report adds what shows the delivering path was measured: the share of
// events dropped (~0) and acknowledged (1 once the last Flush returned),
// and the time spent inside Record alone per event.
func report(b *testing.B, r *telemetry.Reporter, before telemetry.Stats, inRecord time.Duration) {
	b.StopTimer()
	s := r.Stats()
	n := float64(max(s.Recorded-before.Recorded, 1))
	b.ReportMetric(float64(s.Dropped-before.Dropped)/n, "dropped/op")
	b.ReportMetric(float64(s.Acked-before.Acked)/n, "acked/op")
	if inRecord > 0 {
		b.ReportMetric(float64(inRecord.Nanoseconds())/n, "record-ns/op")
	}
}

// BenchmarkRecord is recording one event on a node whose reporter
// delivers it: the stream to the control plane drains the buffer while
// events are recorded, and every event is acknowledged before the timer
// stops, so ns/op is the whole cost of an event on this machine (Record,
// batching, marshalling, the gRPC stream, the in-process fake decoding)
// and record-ns/op the part spent in Record on the caller's goroutine.
// dropped/op shows nothing was dropped: this is not the drop path.
func BenchmarkRecord(b *testing.B) {
	r := benchReporter(b)
	ev := benchEvent()
	before := r.Stats()
	var inRecord time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(recordChunk, b.N-done)
		t0 := time.Now()
		for range n {
			r.Record(ev)
		}
		inRecord += time.Since(t0)
		done += n
		pace(b, r)
	}
	deliverAll(b, r)
	report(b, r, before, inRecord)
}

// BenchmarkRecordParallel is BenchmarkRecord from GOMAXPROCS goroutines
// at once (connections closing on every CPU), paced the same way.
func BenchmarkRecordParallel(b *testing.B) {
	r := benchReporter(b)
	before := r.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ev := benchEvent()
		for i := 1; pb.Next(); i++ {
			r.Record(ev)
			if i%recordChunk == 0 {
				pace(b, r)
			}
		}
	})
	deliverAll(b, r)
	report(b, r, before, 0)
}

// BenchmarkRecordControlPlaneDown is the other path: nothing drains the
// buffer (no stream), so once it holds 10,000 events every Record drops
// the oldest (dropped/op ~1). It bounds what recording costs a node whose
// control plane is away.
func BenchmarkRecordControlPlaneDown(b *testing.B) {
	_, conn := startFake(b)
	r, err := telemetry.New(telemetry.Config{Conn: conn, NodeID: "node-1", Pool: "edge", Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvent()
	for range 10_000 { // fill the buffer: steady state, no ring growth
		r.Record(ev)
	}
	before := r.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Record(ev)
	}
	report(b, r, before, 0)
}
