package backoff

import (
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestBackoffCeiling(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		attempt int
		want    time.Duration
	}{
		{"the first retry waits up to MinBackoff", 0, 500 * ms},
		{"each failure doubles the ceiling", 3, 4 * time.Second},
		{"the ceiling stops at MaxBackoff", 6, 30 * time.Second},
		{"a very long outage stays at MaxBackoff", 64, 30 * time.Second},
		{"an attempt count past any shift width does not overflow", 1 << 20, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ceiling(500*ms, 30*time.Second, tt.attempt); got != tt.want {
				t.Fatalf("Ceiling(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
	t.Run("a MaxBackoff near the largest duration does not overflow", func(t *testing.T) {
		maxB := time.Duration(math.MaxInt64)
		for attempt := range 80 {
			if got := Ceiling(time.Second, maxB, attempt); got <= 0 || got > maxB {
				t.Fatalf("attempt %d: ceiling %d", attempt, got)
			}
		}
	})
}

func TestFullJitterStaysBelowTheCeiling(t *testing.T) {
	var sum time.Duration
	const n = 2000
	for range n {
		d := FullJitter(time.Second)
		if d < 0 || d >= time.Second {
			t.Fatalf("FullJitter(1s) = %s", d)
		}
		sum += d
	}
	// Uniform on [0, 1s): the mean of 2000 draws is 500ms ± ~6.5ms (1σ);
	// 100ms off means the draw is not spread over the range.
	if mean := sum / n; mean < 400*time.Millisecond || mean > 600*time.Millisecond {
		t.Fatalf("mean of %d draws %s, want about 500ms", n, mean)
	}
	if FullJitter(0) != 0 {
		t.Fatal("FullJitter(0) is not 0")
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
