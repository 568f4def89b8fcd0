// Package backoff is the redial schedule shared by the SDK's long-lived
// streams (policy watch, telemetry): exponential with full jitter.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Ceiling is min(maxB, minB·2^attempt), computed without overflow
// for any attempt.
func Ceiling(minB, maxB time.Duration, attempt int) time.Duration {
	ceiling := minB
	for range attempt {
		if ceiling >= maxB/2 {
			return maxB
		}
		ceiling *= 2
	}
	return min(ceiling, maxB)
}

// FullJitter draws uniformly from [0, ceiling). Full jitter (rather than a
// fixed delay plus a little noise) is what keeps ten thousand nodes that
// lost the same control plane from redialling it in lock step when it
// returns.
func FullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling)))
}

// Delay is the wait before retry number attempt (0 for the first retry):
// FullJitter(Ceiling(minB, maxB, attempt)).
func Delay(minB, maxB time.Duration, attempt int) time.Duration {
	return FullJitter(Ceiling(minB, maxB, attempt))
}
