package telemetry

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

const benchBatch = 500

// realisticEvents is a node's batch as the reporter sends it: mostly
// closes, some rejected handshakes, a few dozen origins, every field set.
func realisticEvents(rng *rand.Rand, node string, n int, now time.Time) []*wsfleetv1.ErrorEvent {
	classes := []wsfleetv1.ErrorClass{
		wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY, wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET,
		wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY,
	}
	out := make([]*wsfleetv1.ErrorEvent, n)
	for i := range out {
		class := classes[rng.IntN(len(classes))]
		at := now.Add(-time.Duration(rng.IntN(60_000)) * time.Millisecond)
		open := at.Add(-time.Duration(rng.IntN(3_600_000)) * time.Millisecond)
		e := &wsfleetv1.ErrorEvent{
			Kind:           wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED,
			Class:          class,
			CloseCode:      1000,
			TraceId:        fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			ConnId:         node + "-" + strconv.Itoa(rng.IntN(1_000_000)),
			NodeId:         node,
			Pool:           "default",
			Origin:         fmt.Sprintf("https://app%d.example.com", rng.IntN(40)),
			RemoteAddr:     fmt.Sprintf("203.0.113.%d:%d", rng.IntN(255), 1024+rng.IntN(60000)),
			UserAgent:      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			OpenTime:       timestamppb.New(open),
			Time:           timestamppb.New(at),
			Duration:       durationpb.New(at.Sub(open)),
			MessagesIn:     int64(rng.IntN(1000)),
			MessagesOut:    int64(rng.IntN(5000)),
			BytesIn:        int64(rng.IntN(1 << 20)),
			BytesOut:       int64(rng.IntN(1 << 22)),
			PolicyRevision: 7,
		}
		if class == wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED || class == wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED ||
			class == wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY {
			e.Kind, e.CloseCode, e.HttpStatus, e.ConnId, e.Duration = wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, 0, 403, "", nil
			e.Error = "origin not allowed"
		}
		out[i] = e
	}
	return out
}

// benchBatches is one batch of benchBatch events per node.
func benchBatches(nodes int) []*wsfleetv1.ReportTelemetryRequest {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	out := make([]*wsfleetv1.ReportTelemetryRequest, nodes)
	for i := range out {
		node := fmt.Sprintf("node-%02d", i)
		out[i] = &wsfleetv1.ReportTelemetryRequest{NodeId: node, Pool: "default", Events: realisticEvents(rng, node, benchBatch, now)}
	}
	return out
}

func reportEventsPerSecond(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngest is the store's ingest path for batches of 500 events
// from 16 nodes (events re-used across batches; the gRPC decoding is in
// BenchmarkReportTelemetryGRPC).
func BenchmarkIngest(b *testing.B) {
	s := newStore(b, Config{})
	batches := benchBatches(16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		src := batches[i%len(batches)]
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{
			NodeId: src.NodeId, Pool: src.Pool, ReporterId: src.NodeId,
			Sequence: uint64(i/len(batches)) + 1, Events: src.Events,
		})
		i++
	}
	reportEventsPerSecond(b, b.N*benchBatch)
}

// BenchmarkIngestParallel is BenchmarkIngest from several streams at once:
// the cost of the one lock under contention.
func BenchmarkIngestParallel(b *testing.B) {
	s := newStore(b, Config{})
	batches := benchBatches(16)
	var reporters atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := strconv.FormatInt(reporters.Add(1), 10)
		var seq uint64
		for pb.Next() {
			seq++
			src := batches[int(seq)%len(batches)]
			s.Ingest(&wsfleetv1.ReportTelemetryRequest{
				NodeId: src.NodeId, Pool: src.Pool, ReporterId: id, Sequence: seq, Events: src.Events,
			})
		}
	})
	reportEventsPerSecond(b, b.N*benchBatch)
}

// BenchmarkQueryTraceID looks a trace id up in a full ring of 100,000
// events; the trace is at both ends, so every slot is examined.
func BenchmarkQueryTraceID(b *testing.B) {
	s := newStore(b, Config{MaxRawBytes: 1 << 30}) // the whole count, whatever the byte bound
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now()
	for i := range DefaultMaxRaw / benchBatch {
		evs := realisticEvents(rng, "node-a", benchBatch, now)
		if i == 0 {
			evs[0].TraceId = "needle"
		}
		if i == DefaultMaxRaw/benchBatch-1 {
			evs[benchBatch-1].TraceId = "needle"
		}
		s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "node-a", ReporterId: "r", Sequence: uint64(i + 1), Events: evs})
	}
	if st := s.Stats(); st.RawEvents != DefaultMaxRaw {
		b.Fatalf("ring holds %d", st.RawEvents)
	}
	f := &wsfleetv1.EventFilter{TraceId: "needle"}
	b.ReportAllocs()
	for b.Loop() {
		if got, _ := s.Query(f, 100); len(got) != 2 {
			b.Fatalf("found %d", len(got))
		}
	}
}

// BenchmarkTopErrors answers a one-hour TopErrors by origin over minutes
// of 16 nodes × 8 classes × 40 origins.
func BenchmarkTopErrors(b *testing.B) {
	clock := newClock(time.Now().Truncate(time.Minute))
	s := newStore(b, Config{Now: clock.Now})
	batches := benchBatches(16)
	start := clock.Now()
	for m := range 60 {
		clock.Set(start.Add(time.Duration(m) * time.Minute))
		for i, src := range batches {
			evs := make([]*wsfleetv1.ErrorEvent, len(src.Events))
			for j, e := range src.Events {
				c := proto.Clone(e).(*wsfleetv1.ErrorEvent)
				c.Time = timestamppb.New(clock.Now())
				evs[j] = c
			}
			s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: src.NodeId, ReporterId: src.NodeId, Sequence: uint64(m*len(batches) + i + 1), Events: evs})
		}
	}
	f := &wsfleetv1.EventFilter{StartTime: timestamppb.New(start), ErrorsOnly: true}
	b.ReportAllocs()
	for b.Loop() {
		if resp := s.Top(f, wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN, 20); resp.GetTotal() == 0 {
			b.Fatal("nothing counted")
		}
	}
	b.ReportMetric(float64(s.Stats().AggregateKeys), "keys")
}

// BenchmarkReportTelemetryGRPC is ingest as a node sees it: batches of 500
// events over one loopback gRPC stream, pipelined, acked one by one.
func BenchmarkReportTelemetryGRPC(b *testing.B) {
	s := newStore(b, Config{})
	f := serve(b, s)
	ctx := testContext(b)
	stream, err := f.node.ReportTelemetry(ctx)
	if err != nil {
		b.Fatal(err)
	}
	batches := benchBatches(1)
	acked := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := stream.Recv(); err != nil {
				acked <- err
				return
			}
		}
		acked <- nil
	}()
	for i := 0; i < b.N; i++ {
		req := &wsfleetv1.ReportTelemetryRequest{NodeId: "node-00", ReporterId: "r", Sequence: uint64(i + 1), Events: batches[0].Events}
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportEventsPerSecond(b, b.N*benchBatch)
	if st := s.Stats(); st.Events != uint64(b.N*benchBatch) {
		b.Fatalf("ingested %d of %d", st.Events, b.N*benchBatch)
	}
	_ = stream.CloseSend()
}
