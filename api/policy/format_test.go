package policy_test

import (
	"math"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
)

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero reads 0s", 0, "0s"},
		{"whole seconds read in seconds", 10 * time.Second, "10s"},
		{"whole minutes drop the seconds", 5 * time.Minute, "5m"},
		{"minutes and seconds combine", 90 * time.Second, "1m30s"},
		{"whole hours drop minutes and seconds", time.Hour, "1h"},
		{"hours and seconds skip the zero minutes", time.Hour + time.Second, "1h1s"},
		{"hours, minutes and seconds combine", time.Hour + 2*time.Minute + 3*time.Second, "1h2m3s"},
		{"sub-second milliseconds read in ms", 500 * time.Millisecond, "500ms"},
		{"a fractional second over one falls back to String", 1500 * time.Millisecond, "1.5s"},
		{"microseconds fall back to String", 1500 * time.Microsecond, "1.5ms"},
		{"nanoseconds fall back to String", time.Nanosecond, "1ns"},
		{"negative durations get a minus sign", -90 * time.Second, "-1m30s"},
		{"the most negative duration does not recurse forever", math.MinInt64, "-2562047h47m16.854775808s"},
		{"the largest duration reads exactly", math.MaxInt64, "2562047h47m16.854775807s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.FormatDuration(tt.d)
			if got != tt.want {
				t.Errorf("FormatDuration(%d) = %q, want %q", int64(tt.d), got, tt.want)
			}
			back, err := time.ParseDuration(got)
			if err != nil || back != tt.d {
				t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.d)
			}
		})
	}
}

func FuzzFormatDuration(f *testing.F) {
	for _, d := range []int64{0, 1, -1, 1e9, 90e9, 3600e9, 5e8, 1500e6, math.MaxInt64, math.MinInt64} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		s := policy.FormatDuration(time.Duration(n))
		back, err := time.ParseDuration(s)
		if err != nil || back != time.Duration(n) {
			t.Errorf("FormatDuration(%d) = %q, which parses back as %v, %v", n, s, back, err)
		}
	})
}
