package fanout

import (
	"math"
	"testing"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestTrafficAnswersFromAGarbledReplicaNeitherWrapNorSubtract(t *testing.T) {
	sane := &wsfleetv1.TrafficSummaryResponse{
		Accepted:       []*wsfleetv1.OriginCount{{Origin: "https://a.example", Count: 5}},
		AcceptedOther:  5,
		NodesReporting: 1,
	}
	cases := []struct {
		name     string
		garbled  *wsfleetv1.TrafficSummaryResponse
		accepted uint64
		other    int64
		nodes    int32
	}{
		{"counts past 2^64 saturate", &wsfleetv1.TrafficSummaryResponse{
			Accepted: []*wsfleetv1.OriginCount{{Origin: "https://a.example", Count: math.MaxUint64}}, AcceptedOther: math.MaxInt64, NodesReporting: math.MaxInt32,
		}, math.MaxUint64, math.MaxInt64, math.MaxInt32},
		{"negative counts add nothing", &wsfleetv1.TrafficSummaryResponse{AcceptedOther: -1000, NodesReporting: -7}, 5, 5, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := sumTraffic([]*wsfleetv1.TrafficSummaryResponse{sane, tc.garbled})
			if len(got.GetAccepted()) != 1 || got.GetAccepted()[0].GetCount() != tc.accepted {
				t.Fatalf("accepted %v, want a=%d", got.GetAccepted(), tc.accepted)
			}
			if got.GetAcceptedOther() != tc.other || got.GetNodesReporting() != tc.nodes {
				t.Fatalf("other %d nodes %d, want %d and %d", got.GetAcceptedOther(), got.GetNodesReporting(), tc.other, tc.nodes)
			}
		})
	}
}
