package impact

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/internal/benchcpu"
)

// BenchmarkCompute is Compute alone on what a dry run of a pool of 1,000
// nodes reads after an hour: a traffic summary of 256 accepted origins
// (the nodes' default bound; a summary is already added up, so its size
// is the origins', whatever the minutes and nodes) with the five peaks,
// and 1,000 origin_rejected groups by origin. The head allows every
// accepted origin by one wildcard; the next policy lists 246 of them
// exactly (10 newly rejected) and admits 50 of the rejected origins. The
// reads that feed it are telemetry's BenchmarkTrafficSummary and
// controlplane's BenchmarkDryRun (the whole dry run).
func BenchmarkCompute(b *testing.B) {
	const accepted, rejectedOrigins, dropped, admitted = 256, 1000, 10, 50
	b.Run(fmt.Sprintf("minutes=60/nodes=1000/origins=%d/rejected_origins=%d", accepted, rejectedOrigins), func(b *testing.B) {
		end := time.Now()
		traffic := &wsfleetv1.TrafficSummaryResponse{
			NodesReporting: 1000, AcceptedOther: 12, StartTime: timestamppb.New(end.Add(-Window)), EndTime: timestamppb.New(end),
		}
		var allow []string
		for i := range accepted {
			o := fmt.Sprintf("https://tenant%03d.apps.example.com", i)
			traffic.Accepted = append(traffic.Accepted, &wsfleetv1.OriginCount{Origin: o, Count: uint64(60_000 - i)})
			if i >= dropped {
				allow = append(allow, o)
			}
		}
		for i, m := range []string{"connections", "connections_per_ip", "handshakes_per_second", "messages_per_second", "message_bytes"} {
			traffic.Peaks = append(traffic.Peaks, &wsfleetv1.TrafficPeak{Measure: m, Value: int64(1000 * (i + 1)), NodeId: "node-0042", Minute: timestamppb.New(end.Truncate(time.Minute))})
		}
		rejected := &wsfleetv1.TopErrorsResponse{}
		for i := range rejectedOrigins {
			o := fmt.Sprintf("https://site%04d.example.net", i)
			rejected.Groups = append(rejected.Groups, &wsfleetv1.TopErrorsResponse_Group{Key: o, Count: int64(rejectedOrigins - i)})
			if i < admitted {
				allow = append(allow, o)
			}
		}
		head := pol(false, 10_000, "https://*.apps.example.com")
		next := pol(false, 2_000, allow...)
		b.ReportAllocs()
		cpu := benchcpu.Start()
		for b.Loop() {
			out, err := Compute(head, next, traffic, rejected)
			if err != nil {
				b.Fatal(err)
			}
			if len(out.GetNewlyRejected()) != dropped || len(out.GetNewlyAdmitted()) != admitted {
				b.Fatalf("%d newly rejected, %d newly admitted; want %d and %d", len(out.GetNewlyRejected()), len(out.GetNewlyAdmitted()), dropped, admitted)
			}
		}
		cpu.Report(b)
	})
}
