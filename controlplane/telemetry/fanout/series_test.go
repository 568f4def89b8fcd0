package fanout

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func series(start time.Time, folded int64, classes ...any) *wsfleetv1.ErrorSeriesResponse {
	r := &wsfleetv1.ErrorSeriesResponse{StartTime: timestamppb.New(start), Step: durationpb.New(time.Minute), Folded: folded}
	for i := 0; i < len(classes); i += 2 {
		counts := classes[i+1].([]int64)
		r.Buckets = int32(len(counts))
		r.Series = append(r.Series, &wsfleetv1.ErrorSeriesResponse_Series{Class: classes[i].(wsfleetv1.ErrorClass), Counts: counts})
	}
	return r
}

func TestSeriesAnswersAddUpPerBucket(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	local := series(t0, 1, rejected, []int64{1, 0, 2})
	local.Buckets = 3
	tests := []struct {
		name    string
		answers []*wsfleetv1.ErrorSeriesResponse
		want    string
		folded  int64
	}{
		{"alone, the local counts", nil, "[ORIGIN_REJECTED=[1 0 2]]", 1},
		{"the same class adds up bucket by bucket, a new class is added in class order", []*wsfleetv1.ErrorSeriesResponse{
			series(t0, 2, rejected, []int64{0, 5, 1}, timeout, []int64{1, 1, 1}),
			series(t0, 0, reset, []int64{0, 0, 7}),
		}, "[ORIGIN_REJECTED=[1 5 3] HEARTBEAT_TIMEOUT=[1 1 1] CONN_RESET=[0 0 7]]", 3},
		{"an answer starting a minute later lands in the later buckets, beyond the end is left out", []*wsfleetv1.ErrorSeriesResponse{
			series(t0.Add(time.Minute), 0, rejected, []int64{4, 4, 4}),
		}, "[ORIGIN_REJECTED=[1 4 6]]", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sumSeries(local, tt.answers)
			var out []string
			for _, s := range got.GetSeries() {
				out = append(out, fmt.Sprintf("%s=%v", s.GetClass().String()[len("ERROR_CLASS_"):], s.GetCounts()))
			}
			if fmt.Sprint(out) != tt.want || got.GetFolded() != tt.folded {
				t.Fatalf("got %v folded %d, want %s folded %d", out, got.GetFolded(), tt.want, tt.folded)
			}
			if local.GetSeries()[0].GetCounts()[1] != 0 {
				t.Fatal("the local answer was changed in place")
			}
		})
	}
}
