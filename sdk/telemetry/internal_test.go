package telemetry

import (
	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestRingKeepsOrderAcrossGrowthAndWrap(t *testing.T) {
	q := newRing(3000)
	next, want := 0, 0
	for round := range 50 {
		for range 40 + round*7 { // grows past its first 1024 slots while wrapped
			if q.n == q.limit {
				break
			}
			q.push(entry{ev: &wsfleetv1.ErrorEvent{MessagesIn: int64(next)}, size: next})
			next++
		}
		for range 30 {
			if q.n == 0 {
				break
			}
			if got := q.front().size; got != want {
				t.Fatalf("front is %d; want %d", got, want)
			}
			if got := q.pop(); got.size != want || got.ev.GetMessagesIn() != int64(want) {
				t.Fatalf("popped %d; want %d", got.size, want)
			}
			want++
		}
	}
	if len(q.buf) > q.limit {
		t.Fatalf("ring grew to %d slots past its limit %d", len(q.buf), q.limit)
	}
}

func TestBackoffIsFullJitterUnderAGrowingCeiling(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		ceiling time.Duration
	}{
		{"the first retry waits less than the minimum", 0, 100 * time.Millisecond},
		{"the ceiling doubles per attempt", 3, 800 * time.Millisecond},
		{"the ceiling stops at the maximum", 10, time.Second},
		{"a huge attempt count does not overflow", 200, time.Second},
	}
	// A minimum of 30s shifted 31 times would overflow int64.
	for range 100 {
		if d := backoff.Delay(30*time.Second, time.Hour, 31); d < 0 || d >= time.Hour {
			t.Fatalf("wait %s outside [0, 1h) for a large minimum", d)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var longest time.Duration
			for range 2000 {
				d := backoff.Delay(100*time.Millisecond, time.Second, tt.attempt)
				if d < 0 || d >= tt.ceiling {
					t.Fatalf("wait %s outside [0, %s)", d, tt.ceiling)
				}
				longest = max(longest, d)
			}
			if longest < tt.ceiling/2 {
				t.Fatalf("longest of 2000 waits is %s; jitter does not span [0, %s)", longest, tt.ceiling)
			}
		})
	}
}
