package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHistogramPrecision records random latencies from 1 ns to a minute
// and checks every percentile against the exact one from the sorted
// values: never below it, and above it by at most 1/histSub (0.8 %).
func TestHistogramPrecision(t *testing.T) {
	for _, tc := range []struct {
		name string
		draw func(r *rand.Rand) time.Duration
	}{
		{name: "uniform below 1ms", draw: func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(time.Millisecond))) }},
		{name: "log-uniform 1ns to 1min", draw: func(r *rand.Rand) time.Duration {
			return time.Duration(float64(time.Minute) / float64(int64(1)<<r.IntN(36)) * r.Float64())
		}},
		{name: "small integers", draw: func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(300)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(7, 8))
			var h histogram
			vals := make([]time.Duration, 100_000)
			for i := range vals {
				vals[i] = tc.draw(r)
				h.record(vals[i])
			}
			slices.Sort(vals)
			if h.count() != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", h.count(), len(vals))
			}
			for _, p := range []float64{0.1, 1, 10, 50, 90, 99, 99.9, 99.99, 100} {
				rank := int(float64(len(vals))*p/100 + 0.999999)
				exact := vals[max(0, rank-1)]
				got := h.percentile(p)
				if got < exact || float64(got-exact) > float64(exact)/histSub+1 {
					t.Errorf("p%v = %v, exact %v: off by more than 1/%d", p, got, exact, histSub)
				}
			}
		})
	}
}

// TestHistogramBuckets checks that every bucket's highest value maps back
// to it and the next value to the next bucket: the buckets tile the range.
func TestHistogramBuckets(t *testing.T) {
	for i := 0; i < histBuckets-1; i++ {
		hi := histHighest(i)
		if hi >= int64(histMax) {
			break
		}
		if histIndex(hi) != i || histIndex(hi+1) != i+1 {
			t.Fatalf("bucket %d: highest %d maps to %d, %d to %d", i, hi, histIndex(hi), hi+1, histIndex(hi+1))
		}
	}
	var h, o histogram
	h.record(-time.Second)
	o.record(time.Hour * 1e6)
	h.merge(&o)
	if h.count() != 2 || h.percentile(50) != 0 || h.percentile(100) != histMax {
		t.Fatalf("clamping or merge: count %d, p50 %v, max %v", h.count(), h.percentile(50), h.percentile(100))
	}
}

// fakeTarget answers every request after delay, except request stallAt,
// which takes stall; it counts the requests and the clients made.
type fakeTarget struct {
	delay, stall time.Duration
	stallAt      int
	failAt       int // -1: none
	mu           sync.Mutex
	sent         []int
	clients      atomic.Int64
}

type fakeClient struct{ t *fakeTarget }

func (t *fakeTarget) newClient() openClient { t.clients.Add(1); return fakeClient{t} }

func (c fakeClient) do(i int) error {
	c.t.mu.Lock()
	c.t.sent = append(c.t.sent, i)
	c.t.mu.Unlock()
	switch i {
	case c.t.stallAt:
		time.Sleep(c.t.stall)
	case c.t.failAt:
		return errors.New("refused")
	default:
		time.Sleep(c.t.delay)
	}
	return nil
}

func (fakeClient) close() {}

// TestOpenLoopCountsAStallAgainstEveryRequestItDelays sends 500 req/s for
// 1 s through a single client that stalls 200 ms once: every request
// scheduled during the stall waits for it, so about 100 requests are late
// by up to 200 ms — where a closed loop measuring from each send would see
// one slow request. Every due request is sent, none skipped, in order.
func TestOpenLoopCountsAStallAgainstEveryRequestItDelays(t *testing.T) {
	ft := &fakeTarget{delay: 0, stall: 200 * time.Millisecond, stallAt: 100, failAt: 300}
	load := openLoop(context.Background(), ft, 500, time.Second, 1, 1000, 0)
	if load.Scheduled != 500 || len(ft.sent) != 500 {
		t.Fatalf("scheduled %d, sent %d; want 500 each", load.Scheduled, len(ft.sent))
	}
	for k, i := range ft.sent {
		if i != k {
			t.Fatalf("request %d sent as the %d-th: skipped or reordered", i, k)
		}
	}
	if load.Errors != 1 || load.Answered() != 499 {
		t.Errorf("errors %d, answered %d; want 1 and 499", load.Errors, load.Answered())
	}
	if ft.clients.Load() != 1 || load.Senders != 1 {
		t.Errorf("%d clients, %d senders; want 1 (maxSenders 1)", ft.clients.Load(), load.Senders)
	}
	// The stall's 200 ms hold the ~100 requests due meanwhile: the slowest
	// of them waits ~200 ms, the one due 100 ms into it ~100 ms. p90 of
	// 500 is the 50th slowest: within the stall.
	if p := load.Latency.percentile(90); p < 50*time.Millisecond {
		t.Errorf("p90 %v: the requests delayed by the stall were not counted from their schedule", p)
	}
	if m := load.Latency.percentile(100); m < 190*time.Millisecond {
		t.Errorf("max %v, want about the 200ms stall", m)
	}
	// The requests due during the stall were sent late, by the client's
	// stall: the generator's lateness is recorded apart too.
	if n, m := load.SendLag.count(), load.SendLag.percentile(100); n != 500 || m < 150*time.Millisecond {
		t.Errorf("send lag: %d recorded, max %v; want 500 and about the stall", n, m)
	}
}

// TestOpenLoopAddsSendersWhenBusy checks that a slow system gets more
// connections, as visitors arriving keep arriving, up to the cap.
func TestOpenLoopAddsSendersWhenBusy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxSenders int
		wantMin    int
	}{
		{name: "uncapped", maxSenders: 1000, wantMin: 5},
		{name: "capped at 3", maxSenders: 3, wantMin: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// 1,000 req/s answered in 10 ms each need about 10 senders.
			ft := &fakeTarget{delay: 10 * time.Millisecond, stallAt: -1, failAt: -1}
			load := openLoop(context.Background(), ft, 1000, 500*time.Millisecond, tc.maxSenders, 10, 3)
			if load.Scheduled != 500 || load.Answered() != 500 {
				t.Fatalf("scheduled %d, answered %d; want 500", load.Scheduled, load.Answered())
			}
			if load.Senders < tc.wantMin || load.Senders > tc.maxSenders {
				t.Errorf("senders %d, want %d to %d", load.Senders, tc.wantMin, tc.maxSenders)
			}
			if ft.sent[0] != 3 {
				t.Errorf("first request %d, want the offset 3", ft.sent[0])
			}
		})
	}
}

// TestParseRates checks the --rate list.
func TestParseRates(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []float64
		err      bool
	}{
		{name: "one", in: "1000", want: []float64{1000}},
		{name: "list", in: "1000, 3000,5000", want: []float64{1000, 3000, 5000}},
		{name: "fraction", in: "0.5", want: []float64{0.5}},
		{name: "zero", in: "0", err: true},
		{name: "word", in: "fast", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRates(tc.in)
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseRates(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

// TestPromQuantile checks the interpolation of the roles' histograms the
// bench prints, as PromQL's histogram_quantile does it.
func TestPromQuantile(t *testing.T) {
	// 100 values: 50 in (0, 1ms], 40 in (1ms, 2ms], 10 in (2ms, 4ms].
	h := promHist{upper: []float64{0.001, 0.002, 0.004}, counts: []uint64{50, 90, 100}, total: 100}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, time.Millisecond},
		{0.7, 1500 * time.Microsecond},
		{0.99, 3800 * time.Microsecond},
	} {
		if got := h.quantile(tc.q); got < tc.want-time.Microsecond || got > tc.want+time.Microsecond {
			t.Errorf("q%v = %v, want %v", tc.q, got, tc.want)
		}
	}
	d := diffHops([]promHist{{upper: h.upper, counts: []uint64{10, 20, 30}, total: 30}}, []promHist{h})
	if d[0].total != 70 || d[0].counts[0] != 40 {
		t.Errorf("diff: %+v", d[0])
	}
}

// TestRuntimeHists reads the scheduler's and the collector's histograms as
// cumulative buckets the hop report can diff.
func TestRuntimeHists(t *testing.T) {
	done := make(chan struct{})
	for range 100 {
		go func() { done <- struct{}{} }()
	}
	for range 100 {
		<-done
	}
	runtime.GC()
	hs := runtimeHists()
	for _, name := range []string{hopSched, hopGCPause} {
		h := hs[name]
		if h == nil || h.total == 0 {
			t.Fatalf("%s: no observations (%+v)", name, h)
		}
		if len(h.upper) != len(h.counts) || h.counts[len(h.counts)-1] != h.total {
			t.Fatalf("%s: %d bounds, %d counts, last %d, total %d", name, len(h.upper), len(h.counts), h.counts[len(h.counts)-1], h.total)
		}
		for i := 1; i < len(h.counts); i++ {
			if h.counts[i] < h.counts[i-1] || h.upper[i] < h.upper[i-1] {
				t.Fatalf("%s: not cumulative at bucket %d", name, i)
			}
		}
		if q := h.quantile(0.5); q < 0 {
			t.Fatalf("%s: p50 %s", name, q)
		}
	}
}
