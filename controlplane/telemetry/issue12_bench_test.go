package telemetry

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/internal/benchcpu"
)

// Benchmarks of issue 12's read paths at production sizes: the console's
// 24-hour ErrorSeries, the dry run's hour of traffic samples, and what a
// traffic sample adds to an ingested batch. Each states its sizes in its
// name, reports cpu-ns/op (the whole process's CPU, the garbage
// collector's included, over the measured loop) and, where it fills a
// table, the Go heap the table holds per key or minute (runtime.MemStats
// after a GC, before and after filling). With -short (make bench-smoke)
// the tables are smaller, and the names say so.

// liveHeap is the Go heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// shortOr is full, or short under -short.
func shortOr(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// seriesShape is one minute's distinct (node, class, origin) keys of one
// pool: nodes × classes × origins of them.
type seriesShape struct{ nodes, classes, origins int }

func (s seriesShape) keys() int { return s.nodes * s.classes * s.origins }

// errorClasses are the classes a busy fleet records most.
var errorClasses = []wsfleetv1.ErrorClass{
	wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
	wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED,
	wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL,
}

// BenchmarkErrorSeries is the console's errors chart: ErrorSeries over 24
// hours at a one-minute step (1440 buckets), unfiltered, every minute of
// the day holding the same number of distinct keys — 500 (a realistic
// fleet: 25 nodes × 4 classes × 5 origins) or 10,000, the default
// MaxKeysPerMinute bound full (100 nodes × 5 classes × 20 origins; the
// store's MaxAggregateBytes is raised to 4 GiB for it, since its 1 GiB
// default stops a day of full minutes at about 8.9 million keys). An op
// is SeriesRange plus Store.Series, as the Server answers one replica's
// share: the gRPC encoding of the 1440 × classes counts and the fan-out
// across replicas are not in it. heap-B/key is the aggregates' Go heap
// per stored key (the minute maps, interned names, origins of a minute).
func BenchmarkErrorSeries(b *testing.B) {
	minutes := shortOr(24*60, 60)
	for _, shape := range []seriesShape{{25, 4, 5}, {100, 5, 20}} {
		b.Run(fmt.Sprintf("minutes=%d/keys_per_minute=%d", minutes, shape.keys()), func(b *testing.B) {
			benchErrorSeries(b, minutes, shape)
		})
	}
}

func benchErrorSeries(b *testing.B, minutes int, shape seriesShape) {
	end := time.Now().Truncate(time.Minute)
	clock := newClock(end)
	before := liveHeap()
	s := newStore(b, Config{Now: clock.Now, MaxAggregateBytes: 4 << 30})
	events := make([]*wsfleetv1.ErrorEvent, 0, shape.classes*shape.origins)
	for c := range shape.classes {
		for o := range shape.origins {
			events = append(events, &wsfleetv1.ErrorEvent{Class: errorClasses[c], Origin: fmt.Sprintf("https://app%d.example.com", o), PolicyRevision: 7})
		}
	}
	nodes := make([]string, shape.nodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%04d", i)
	}
	// The aggregates directly, as Ingest counts each event (raw ring and
	// dedup aside): an ingest of 14 million events would only slow the
	// set-up.
	s.mu.Lock()
	pool := s.agg.intern("default")
	first := unixMinute(end.UnixNano()) - int64(minutes)
	for m := range int64(minutes) {
		for _, node := range nodes {
			node = s.agg.intern(node)
			for _, ev := range events {
				s.agg.add(first+m, pool, node, ev)
			}
		}
	}
	s.mu.Unlock()
	keys := s.Stats().AggregateKeys
	if want := minutes * shape.keys(); keys != want {
		b.Fatalf("%d keys stored, want %d", keys, want)
	}
	perKey := float64(liveHeap()-before) / float64(keys)

	req := &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{
		StartTime: timestamppb.New(end.Add(-time.Duration(minutes) * time.Minute)), EndTime: timestamppb.New(end),
	}}
	b.ReportAllocs()
	cpu := benchcpu.Start()
	for b.Loop() {
		start, stop, step, err := SeriesRange(req, clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		resp := s.Series(req.GetFilter(), start, stop, step)
		if int(resp.GetBuckets()) != minutes || len(resp.GetSeries()) != shape.classes {
			b.Fatalf("%d buckets of %d classes, want %d of %d", resp.GetBuckets(), len(resp.GetSeries()), minutes, shape.classes)
		}
	}
	cpu.Report(b)
	// After the loop: b.Loop's first call deletes metrics reported before.
	b.ReportMetric(perKey, "heap-B/key")
	runtime.KeepAlive(s)
}

// trafficSample is one node's sample of one minute: every one of the
// origins accepted, peaks set.
func trafficSample(rng *rand.Rand, minute time.Time, origins []string) *wsfleetv1.TrafficSample {
	s := &wsfleetv1.TrafficSample{
		Minute: timestamppb.New(minute), PolicyPool: "default", PolicyRevision: 7,
		PeakConnections: uint32(1000 + rng.IntN(9000)), PeakConnectionsPerIp: uint32(1 + rng.IntN(50)),
		PeakHandshakesPerSecond: uint32(10 + rng.IntN(500)), PeakMessagesPerSecond: uint32(1 + rng.IntN(100)),
		PeakMessageBytes: uint32(100 + rng.IntN(60_000)),
	}
	s.Accepted = make([]*wsfleetv1.OriginCount, len(origins))
	for i, o := range origins {
		s.Accepted[i] = &wsfleetv1.OriginCount{Origin: o, Count: uint64(1 + rng.IntN(1000))}
	}
	return s
}

func benchOrigins(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://tenant%03d.apps.example.com", i)
	}
	return out
}

// BenchmarkTrafficSummary is the traffic half of a dry run: one pool's
// hour of traffic samples, 60 minutes × 1,000 nodes, each sample naming
// the same 256 origins (a node's default bound), added up. The samples
// go in through Ingest, one batch per node and minute. An op is
// Store.TrafficSummary (one replica's share; the fan-out and gRPC are
// in controlplane's BenchmarkDryRun). heap-B/minute is the traffic
// table's Go heap per retained pool-minute (256 origins, 1,000 nodes'
// peaks), est-B/minute the table's own estimate (MaxTrafficBytes counts
// that).
func BenchmarkTrafficSummary(b *testing.B) {
	minutes, nodes, origins := 60, shortOr(1000, 50), 256
	b.Run(fmt.Sprintf("minutes=%d/nodes=%d/origins=%d", minutes, nodes, origins), func(b *testing.B) {
		s, end, mem := filledTraffic(b, minutes, nodes, origins)
		b.ReportAllocs()
		cpu := benchcpu.Start()
		for b.Loop() {
			resp := s.TrafficSummary("default", end.Add(-time.Hour), end)
			if len(resp.GetAccepted()) != origins || int(resp.GetNodesReporting()) != nodes {
				b.Fatalf("%d origins from %d nodes, want %d from %d", len(resp.GetAccepted()), resp.GetNodesReporting(), origins, nodes)
			}
		}
		cpu.Report(b)
		mem.report(b)
	})
}

// trafficMemory is what a filled traffic table holds per pool-minute.
type trafficMemory struct{ heap, estimated float64 }

// report adds heap-B/minute and est-B/minute; call it after the loop
// (b.Loop's first call deletes metrics reported before).
func (m trafficMemory) report(b *testing.B) {
	b.ReportMetric(m.heap, "heap-B/minute")
	b.ReportMetric(m.estimated, "est-B/minute")
}

// filledTraffic is a store holding minutes × nodes samples of origins
// each, the last minute ending at end (the store's clock), and the memory
// it takes per minute.
func filledTraffic(b *testing.B, minutes, nodes, origins int) (*Store, time.Time, trafficMemory) {
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-time.Duration(minutes) * time.Minute)
	clock := newClock(start)
	rng := rand.New(rand.NewPCG(5, 6))
	names := benchOrigins(origins)
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%04d", i)
	}
	before := liveHeap()
	s := newStore(b, Config{Now: clock.Now})
	for m := range minutes {
		minute := start.Add(time.Duration(m) * time.Minute)
		clock.Set(minute.Add(59 * time.Second))
		for _, id := range ids {
			s.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: id, Pool: "default", Traffic: []*wsfleetv1.TrafficSample{trafficSample(rng, minute, names)}})
		}
	}
	clock.Set(end)
	st := s.Stats()
	if st.TrafficSamples != uint64(minutes*nodes) || st.TrafficMinutes != minutes {
		b.Fatalf("%d samples over %d minutes kept, want %d over %d", st.TrafficSamples, st.TrafficMinutes, minutes*nodes, minutes)
	}
	return s, end, trafficMemory{heap: float64(liveHeap()-before) / float64(minutes), estimated: float64(st.TrafficBytes) / float64(minutes)}
}

// BenchmarkIngestTrafficSample is what a traffic sample adds to a batch,
// side by side in one run: the same batch of 500 events from one of 16
// nodes, without a sample and with one sample of 256 origins (what a
// node sends once a minute). An op is one batch through Store.Ingest; the
// clock stays in one minute, so the sample's origins and node are found
// in the table (the steady state; a new minute's first batches also
// insert them).
func BenchmarkIngestTrafficSample(b *testing.B) {
	for _, withSample := range []bool{false, true} {
		name := "sample=none"
		if withSample {
			name = "sample=1x256origins"
		}
		b.Run("events=500/"+name, func(b *testing.B) {
			now := time.Now().Truncate(time.Minute).Add(30 * time.Second)
			s := newStore(b, Config{Now: func() time.Time { return now }})
			batches := benchBatches(16)
			rng := rand.New(rand.NewPCG(7, 8))
			samples := make([][]*wsfleetv1.TrafficSample, len(batches))
			if withSample {
				names := benchOrigins(256)
				for i := range samples {
					samples[i] = []*wsfleetv1.TrafficSample{trafficSample(rng, now.Truncate(time.Minute), names)}
				}
			}
			b.ReportAllocs()
			cpu := benchcpu.Start()
			i := 0
			for b.Loop() {
				src := batches[i%len(batches)]
				s.Ingest(&wsfleetv1.ReportTelemetryRequest{
					NodeId: src.NodeId, Pool: src.Pool, ReporterId: src.NodeId,
					Sequence: uint64(i/len(batches)) + 1, Events: src.Events, Traffic: samples[i%len(batches)],
				})
				i++
			}
			cpu.Report(b)
			if st := s.Stats(); withSample && st.TrafficSamples != uint64(b.N) {
				b.Fatalf("%d samples counted of %d", st.TrafficSamples, b.N)
			}
		})
	}
}
