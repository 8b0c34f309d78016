package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records latencies in log-linear buckets, as HdrHistogram does:
// every power of two of nanoseconds is split into histSub equal buckets, so
// a recorded value is known to within 1/histSub (0.8 %) of itself, from 1 ns
// to histMax, in a fixed 64 KiB whatever the number of values. It is safe
// for concurrent use (atomic counters) and never allocates when recording.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	// histBuckets covers values up to 2^(63-histSubBits) ns: far beyond
	// any request's deadline.
	histBuckets = (64 - histSubBits) * histSub
	// histMax is the largest value recorded as itself; larger ones are
	// recorded as it.
	histMax = time.Duration(1)<<(63-histSubBits) - 1
)

// histIndex is the bucket of v ≥ 0 ns: values below 2·histSub have a
// bucket each; above, a bucket spans 2^shift values, shift growing by one
// every power of two.
func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histHighest is the highest value bucket i holds, as HdrHistogram reports
// a percentile: never below the value recorded.
func histHighest(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	mant := int64(i%histSub + histSub)
	return (mant+1)<<shift - 1
}

// record adds one latency; a negative one counts as 0.
func (h *histogram) record(d time.Duration) {
	d = max(0, min(d, histMax))
	h.counts[histIndex(int64(d))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// merge adds o's values to h.
func (h *histogram) merge(o *histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// count is the number of values recorded.
func (h *histogram) count() uint64 { return h.n.Load() }

// percentile is the p-th percentile (0 < p ≤ 100) within the bucket
// precision, the exact maximum for p = 100, and 0 when nothing was recorded.
func (h *histogram) percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	if p >= 100 {
		return time.Duration(h.max.Load())
	}
	// The rank of the value, 1-based, rounded up as HdrHistogram does.
	rank := uint64(float64(n)*p/100 + 0.999999)
	rank = max(1, min(rank, n))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(histHighest(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}
