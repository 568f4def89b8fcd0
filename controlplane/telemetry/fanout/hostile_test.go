package fanout

import (
	"fmt"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

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

func TestSeriesAnswersFromAGarbledReplicaNeitherWrapNorSubtract(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	local := series(t0, 1, rejected, []int64{1, 0, 2})
	local.Buckets = 3
	huge := series(t0, math.MaxInt64, rejected, []int64{math.MaxInt64, 0, 0})
	negative := series(t0, -50, rejected, []int64{-10, -10, -10}, timeout, []int64{-1, 0, 0})
	farStep := series(t0, 0, rejected, []int64{7, 7, 7, 7})
	farStep.Step = durationpb.New(time.Duration(math.MaxInt64))
	got := sumSeries(local, []*wsfleetv1.ErrorSeriesResponse{huge, negative, farStep})
	if got.GetFolded() != math.MaxInt64 {
		t.Fatalf("folded %d, want it saturated", got.GetFolded())
	}
	want := fmt.Sprint([]int64{math.MaxInt64, 0, 2})
	for _, s := range got.GetSeries() {
		switch s.GetClass() {
		case rejected:
			if fmt.Sprint(s.GetCounts()) != want {
				// farStep's first bucket is t0 too: +7 saturates; its
				// later ones (centuries away) are left out.
				t.Fatalf("origin_rejected %v, want %s", s.GetCounts(), want)
			}
		case timeout:
			if fmt.Sprint(s.GetCounts()) != "[0 0 0]" {
				t.Fatalf("heartbeat_timeout %v, want nothing subtracted", s.GetCounts())
			}
		}
	}
}

// TopErrors' counts feed the dry run's "would newly admit".
func TestTopAnswersFromAGarbledReplicaNeitherWrapNorSubtract(t *testing.T) {
	const key = "https://a.example"
	sane := &wsfleetv1.TopErrorsResponse{Total: 5, Groups: []*wsfleetv1.TopErrorsResponse_Group{{Key: key, Count: 5, TopClass: rejected}}}
	huge := &wsfleetv1.TopErrorsResponse{Total: math.MaxInt64, Groups: []*wsfleetv1.TopErrorsResponse_Group{{Key: key, Count: math.MaxInt64, TopClass: rejected}}}
	negative := &wsfleetv1.TopErrorsResponse{Total: -100, Groups: []*wsfleetv1.TopErrorsResponse_Group{{Key: key, Count: -100, TopClass: rejected}}}
	t.Run("counts past 2^63 saturate", func(t *testing.T) {
		got := sumTop([]*wsfleetv1.TopErrorsResponse{sane, huge}, 10)
		if got.GetTotal() != math.MaxInt64 || got.GetGroups()[0].GetCount() != math.MaxInt64 {
			t.Fatalf("%v", got)
		}
	})
	t.Run("negative counts add nothing", func(t *testing.T) {
		got := sumTop([]*wsfleetv1.TopErrorsResponse{sane, negative}, 10)
		if got.GetTotal() != 5 || got.GetGroups()[0].GetCount() != 5 {
			t.Fatalf("%v", got)
		}
	})
}
