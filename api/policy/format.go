package policy

import (
	"math"
	"strconv"
	"time"
)

// FormatDuration renders a duration the way policy files and diffs write it:
// the shortest exact form among "1h", "5m", "1m30s", "10s", "500ms", falling
// back to time.Duration.String for anything finer. Every form it returns is
// accepted by time.ParseDuration, so a printed policy applies back unchanged.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d == math.MinInt64 {
		// -d would overflow back to d and recurse forever; this value only
		// appears as durationpb's saturation of a far-past duration.
		return d.String()
	}
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	if d%time.Second != 0 {
		if d%time.Millisecond == 0 && d < time.Second {
			return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
		}
		return d.String()
	}
	var out []byte
	if h := d / time.Hour; h > 0 {
		out = strconv.AppendInt(out, int64(h), 10)
		out = append(out, 'h')
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		out = strconv.AppendInt(out, int64(m), 10)
		out = append(out, 'm')
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 {
		out = strconv.AppendInt(out, int64(s), 10)
		out = append(out, 's')
	}
	return string(out)
}
