package loadgen

import (
	"math/bits"
	"slices"
	"time"
)

// histogram records durations in log-linear buckets: 16 per power of two,
// so a quantile is within about 6% of the true value, in fixed memory. One
// per client goroutine (no locking), merged at the end.
type histogram struct {
	counts [64 * subBuckets]uint64
	n      uint64
}

const (
	subBits    = 4
	subBuckets = 1 << subBits
)

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 1))
	e := bits.Len64(v) - 1
	var sub uint64
	if e >= subBits {
		sub = (v >> (e - subBits)) & (subBuckets - 1)
	} else {
		sub = (v << (subBits - e)) & (subBuckets - 1)
	}
	h.counts[e*subBuckets+int(sub)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the lower bound of the bucket holding quantile q in
// [0, 1]; 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			e, sub := i/subBuckets, i%subBuckets
			// (1 + sub/16) * 2^e
			return time.Duration((float64(subBuckets+sub) / subBuckets) * float64(uint64(1)<<e))
		}
	}
	return 0
}

// exactQuantile returns quantile q of sorted durations.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// sortedCopy returns ds sorted, leaving ds alone.
func sortedCopy(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}
