package controlplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/internal/benchcpu"
)

// Issue 12's read paths end to end over loopback gRPC, as wsctl and the
// console call them: interceptors, auth (dev), the policy server and the
// fan-out's local path (one replica), the telemetry store filled at
// production sizes through its Ingest (gRPC ingest is
// BenchmarkReportTelemetry*). Sizes are in the names; with -short (make
// bench-smoke) they are smaller and the names say so. cpu-ns/op is the
// whole process's CPU per op: client and server, the garbage collector
// included.

func shortOr(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// BenchmarkDryRun is `wsctl policy apply --dry-run`: ApplyPolicy with
// dry_run over a pool whose last hour holds 60 minutes × 1,000 nodes'
// traffic samples of the same 256 origins each, and 1,000 origins'
// rejections (origin_rejected, one event per origin and minute). The
// head allows every accepted origin by a wildcard; the dry-run policy
// lists 246 of them (10 newly rejected) and admits 50 rejected ones. An
// op is the whole answer: validation, diff, TrafficSummary and TopErrors
// through the fan-out's local path, Compute, the response over gRPC.
// With replicas the fan-out adds one TrafficSummary and one TopErrors
// call per other replica, not measured here.
func BenchmarkDryRun(b *testing.B) {
	minutes, nodes, origins, rejected := 60, shortOr(1000, 50), 256, 1000
	b.Run(fmt.Sprintf("minutes=%d/nodes=%d/origins=%d", minutes, nodes, origins), func(b *testing.B) {
		srv := startServer(b, nil)
		pc := wsfleetv1.NewPolicyServiceClient(dial(b, srv))
		ctx := context.Background()
		head := proto.Clone(policy.Default()).(*wsfleetv1.Policy)
		head.Origins = &wsfleetv1.OriginPolicy{Allow: []string{"https://*.apps.example.com"}}
		if _, err := pc.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: head, Message: "bench head"}); err != nil {
			b.Fatal(err)
		}

		rng := rand.New(rand.NewPCG(9, 10))
		names := make([]string, origins)
		for i := range names {
			names[i] = fmt.Sprintf("https://tenant%03d.apps.example.com", i)
		}
		now := time.Now()
		last := now.Truncate(time.Minute)
		for m := range minutes {
			minute := last.Add(-time.Duration(minutes-1-m) * time.Minute)
			for n := range nodes {
				s := &wsfleetv1.TrafficSample{
					Minute: timestamppb.New(minute), PolicyPool: "default", PolicyRevision: 2,
					PeakConnections: uint32(1000 + rng.IntN(9000)), PeakConnectionsPerIp: uint32(1 + rng.IntN(50)),
					PeakHandshakesPerSecond: uint32(10 + rng.IntN(500)), PeakMessagesPerSecond: uint32(1 + rng.IntN(100)),
					PeakMessageBytes: uint32(100 + rng.IntN(60_000)),
				}
				for _, o := range names {
					s.Accepted = append(s.Accepted, &wsfleetv1.OriginCount{Origin: o, Count: uint64(1 + rng.IntN(1000))})
				}
				id := fmt.Sprintf("node-%04d", n)
				srv.events.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: id, Pool: "default", Traffic: []*wsfleetv1.TrafficSample{s}})
			}
			evs := make([]*wsfleetv1.ErrorEvent, rejected)
			for i := range evs {
				evs[i] = &wsfleetv1.ErrorEvent{
					Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
					HttpStatus: 403, NodeId: fmt.Sprintf("node-%04d", i%nodes), Pool: "default", PolicyRevision: 2,
					Origin: fmt.Sprintf("https://site%04d.example.net", i), Time: timestamppb.New(minute.Add(30 * time.Second)),
				}
			}
			srv.events.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "node-0000", Pool: "default", Events: evs})
		}

		next := proto.Clone(head).(*wsfleetv1.Policy)
		next.Origins.Allow = append(append([]string(nil), names[10:]...), "https://site0000.example.net")
		for i := 1; i < 50; i++ {
			next.Origins.Allow = append(next.Origins.Allow, fmt.Sprintf("https://site%04d.example.net", i))
		}
		req := &wsfleetv1.ApplyPolicyRequest{Policy: next, DryRun: true, Message: "bench dry run"}
		b.ReportAllocs()
		cpu := benchcpu.Start()
		for b.Loop() {
			resp, err := pc.ApplyPolicy(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			imp := resp.GetImpact()
			if int(imp.GetNodesReporting()) != nodes || len(imp.GetNewlyRejected()) != 10 || len(imp.GetNewlyAdmitted()) != 50 {
				b.Fatalf("impact: %d nodes, %d newly rejected, %d newly admitted; want %d, 10, 50",
					imp.GetNodesReporting(), len(imp.GetNewlyRejected()), len(imp.GetNewlyAdmitted()), nodes)
			}
		}
		cpu.Report(b)
	})
}

// BenchmarkErrorSeriesGRPC is the console's errors chart as it asks:
// FleetService.ErrorSeries over the last 24 hours at a one-minute step,
// unfiltered, over minutes of 500 distinct keys each (25 nodes × 4
// classes × 5 origins), ingested as one batch a minute. The same read at
// the full MaxKeysPerMinute bound is telemetry's BenchmarkErrorSeries
// (the store alone).
func BenchmarkErrorSeriesGRPC(b *testing.B) {
	minutes := shortOr(24*60, 60)
	b.Run(fmt.Sprintf("minutes=%d/keys_per_minute=500", minutes), func(b *testing.B) {
		srv := startServer(b, nil)
		fc := wsfleetv1.NewFleetServiceClient(dial(b, srv))
		classes := []wsfleetv1.ErrorClass{
			wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
			wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED,
		}
		end := time.Now().Truncate(time.Minute)
		for m := range minutes {
			at := timestamppb.New(end.Add(-time.Duration(minutes-m)*time.Minute + 30*time.Second))
			evs := make([]*wsfleetv1.ErrorEvent, 0, 500)
			for n := range 25 {
				for _, c := range classes {
					for o := range 5 {
						evs = append(evs, &wsfleetv1.ErrorEvent{
							Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: c, NodeId: fmt.Sprintf("node-%02d", n),
							Pool: "default", Origin: fmt.Sprintf("https://app%d.example.com", o), Time: at, PolicyRevision: 2,
						})
					}
				}
			}
			srv.events.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: "node-00", Pool: "default", Events: evs})
		}
		req := &wsfleetv1.ErrorSeriesRequest{Filter: &wsfleetv1.EventFilter{
			StartTime: timestamppb.New(end.Add(-time.Duration(minutes) * time.Minute)), EndTime: timestamppb.New(end),
		}}
		ctx := context.Background()
		b.ReportAllocs()
		cpu := benchcpu.Start()
		for b.Loop() {
			resp, err := fc.ErrorSeries(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if int(resp.GetBuckets()) != minutes || len(resp.GetSeries()) != len(classes) {
				b.Fatalf("%d buckets of %d classes, want %d of %d", resp.GetBuckets(), len(resp.GetSeries()), minutes, len(classes))
			}
		}
		cpu.Report(b)
	})
}
