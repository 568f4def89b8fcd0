package policyclient

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
			if got := backoffCeiling(500*ms, 30*time.Second, tt.attempt); got != tt.want {
				t.Fatalf("backoffCeiling(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
	t.Run("a MaxBackoff near the largest duration does not overflow", func(t *testing.T) {
		maxB := time.Duration(math.MaxInt64)
		for attempt := range 80 {
			if got := backoffCeiling(time.Second, maxB, attempt); got <= 0 || got > maxB {
				t.Fatalf("attempt %d: ceiling %d", attempt, got)
			}
		}
	})
}

func TestFullJitterStaysBelowTheCeiling(t *testing.T) {
	var sum time.Duration
	const n = 2000
	for range n {
		d := fullJitter(time.Second)
		if d < 0 || d >= time.Second {
			t.Fatalf("fullJitter(1s) = %s", d)
		}
		sum += d
	}
	// Uniform on [0, 1s): the mean of 2000 draws is 500ms ± ~6.5ms (1σ);
	// 100ms off means the draw is not spread over the range.
	if mean := sum / n; mean < 400*time.Millisecond || mean > 600*time.Millisecond {
		t.Fatalf("mean of %d draws %s, want about 500ms", n, mean)
	}
	if fullJitter(0) != 0 {
		t.Fatal("fullJitter(0) is not 0")
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"a short text is kept whole", "bad policy", 100, "bad policy"},
		{"a text at the bound is kept whole", strings.Repeat("a", 50), 50, strings.Repeat("a", 50)},
		{"a long text is cut and marked", strings.Repeat("a", 100), 50, strings.Repeat("a", 50-len(truncatedMark)) + truncatedMark},
		{"a cut never splits a character", strings.Repeat("é", 50), 51, strings.Repeat("é", 17) + truncatedMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("truncate = %q, want %q", got, tt.want)
			}
			if len(got) > tt.n || !utf8.ValidString(got) {
				t.Fatalf("truncate = %q: %d bytes or invalid UTF-8", got, len(got))
			}
		})
	}
}
