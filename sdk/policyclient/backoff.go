package policyclient

import (
	"math/rand/v2"
	"time"
)

// backoffCeiling is min(maxB, minB·2^attempt), computed without overflow
// for any attempt.
func backoffCeiling(minB, maxB time.Duration, attempt int) time.Duration {
	ceiling := minB
	for range attempt {
		if ceiling >= maxB/2 {
			return maxB
		}
		ceiling *= 2
	}
	return min(ceiling, maxB)
}

// fullJitter draws uniformly from [0, ceiling). Full jitter (rather than a
// fixed delay plus a little noise) is what keeps ten thousand nodes that
// lost the same control plane from redialling it in lock step when it
// returns.
func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling)))
}
