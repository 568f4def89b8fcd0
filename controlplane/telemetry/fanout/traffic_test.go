package fanout

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestTrafficAnswersAddUp(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(m int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(m) * time.Minute)) }
	a := &wsfleetv1.TrafficSummaryResponse{
		Accepted:       []*wsfleetv1.OriginCount{{Origin: "https://a.example", Count: 5}, {Origin: "https://b.example", Count: 1}},
		AcceptedOther:  2,
		NodesReporting: 2,
		StartTime:      at(5), EndTime: at(60),
		Peaks: []*wsfleetv1.TrafficPeak{
			{Measure: "connections", Value: 10, NodeId: "n1", Minute: at(7)},
			{Measure: "message_bytes", Value: 300, NodeId: "n2", Minute: at(9)},
		},
	}
	b := &wsfleetv1.TrafficSummaryResponse{
		Accepted:       []*wsfleetv1.OriginCount{{Origin: "https://b.example", Count: 7}},
		AcceptedOther:  1,
		NodesReporting: 1,
		StartTime:      at(0), EndTime: at(60),
		Peaks: []*wsfleetv1.TrafficPeak{
			{Measure: "connections", Value: 25, NodeId: "n9", Minute: at(30)},
			// A tie: the earlier minute wins.
			{Measure: "message_bytes", Value: 300, NodeId: "n8", Minute: at(3)},
			{Measure: "handshakes_per_second", Value: 4, NodeId: "n9", Minute: at(31)},
		},
	}
	got := sumTraffic([]*wsfleetv1.TrafficSummaryResponse{a, b})
	if len(got.GetAccepted()) != 2 || got.GetAccepted()[0].GetOrigin() != "https://b.example" || got.GetAccepted()[0].GetCount() != 8 || got.GetAccepted()[1].GetCount() != 5 {
		t.Fatalf("accepted %v, want b=8 then a=5", got.GetAccepted())
	}
	if got.GetAcceptedOther() != 3 || got.GetNodesReporting() != 3 {
		t.Fatalf("other %d nodes %d", got.GetAcceptedOther(), got.GetNodesReporting())
	}
	if !got.GetStartTime().AsTime().Equal(t0) || !got.GetEndTime().AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("range %v..%v: want the earliest start", got.GetStartTime().AsTime(), got.GetEndTime().AsTime())
	}
	want := map[string]string{"connections": "n9", "message_bytes": "n8", "handshakes_per_second": "n9"}
	if len(got.GetPeaks()) != len(want) {
		t.Fatalf("peaks %v", got.GetPeaks())
	}
	for _, p := range got.GetPeaks() {
		if want[p.GetMeasure()] != p.GetNodeId() {
			t.Errorf("%s: node %s, want %s", p.GetMeasure(), p.GetNodeId(), want[p.GetMeasure()])
		}
	}
}
